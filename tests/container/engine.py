"""Drive the container engine (podman, with Docker's command line) for the
container tests: build the image, run containers and volumes under names no
other test uses, and remove them afterwards.

Only what this module created is ever stopped or removed, by its own name.
The engine and the base image come from ``../shared/tools/container-engine``
(``setup`` installs podman and builds a local Debian + Python 3.11 base;
``base`` prints its name); docs/docker.md gives the commands for users.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_TOOL = REPO_ROOT.parent / "shared" / "tools" / "container-engine"
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
#: set by .ci/run after it built the image; else the tests build their own
IMAGE_VARIABLE = "LEVERET_IMAGE"
#: the tag the tests build when IMAGE_VARIABLE is not set
TEST_IMAGE = "localhost/leveret:test"
#: the broker's port inside the container (EXPOSE 5672)
AMQP_PORT = 5672


class EngineError(RuntimeError):
    """A podman command failed; the message has its command line and output."""


def podman_path() -> str | None:
    """The podman binary on PATH, or None."""
    return shutil.which("podman")


def unique_name(prefix: str) -> str:
    """``leveret-test-<prefix>-<12 hex digits>``: a container, volume or
    compose project name no other test (or engineer) uses."""
    return f"leveret-test-{prefix}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``podman ARGS``; returns the finished process (text output).

    Raises EngineError when it exits non-zero and ``check`` is true;
    subprocess.TimeoutExpired after ``timeout`` seconds.
    """
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise EngineError(f"podman {' '.join(args)} exited {result.returncode}:\n"
                          f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def image_exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def base_image() -> str | None:
    """The local base image the shared tool built (``container-engine base``),
    or None when the tool is missing or has not built it yet."""
    if not ENGINE_TOOL.is_file():
        return None
    name = subprocess.run(["bash", str(ENGINE_TOOL), "base"], capture_output=True, text=True,
                          timeout=30).stdout.strip()
    return name if name and image_exists(name) else None


def build_image(tag: str, base: str, timeout: float = 900) -> None:
    """``podman build`` docker/Dockerfile from the repository into ``tag``.

    ``--format docker`` keeps the HEALTHCHECK (the OCI format has none);
    ``--network host`` lets pip reach the package index from the build.
    Raises EngineError when the build fails.
    """
    podman("build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={base}",
           "-f", str(DOCKERFILE), "-t", tag, str(REPO_ROOT), timeout=timeout)


def wait_amqp(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Wait until ``host:port`` answers the AMQP protocol header with a frame
    (the published port of a container accepts TCP before the broker inside
    listens, so a bare connect proves nothing). Raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                if sock.recv(1) == b"\x01":  # frame type 1: connection.start
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no AMQP answer on {host}:{port} within {timeout}s")
        time.sleep(0.1)


class Container:
    """One container of ``image``, its port 5672 published on
    127.0.0.1:``host_port``, its data on the named ``volume``.

    ``env``: LEVERET_* settings (docs/docker.md); ``container_port``: the
    broker's port inside, when LEVERET_PORT moves it. ``run()`` creates and
    starts it, ``stop()`` is ``podman stop`` (SIGTERM), ``kill()`` is
    ``podman kill`` (SIGKILL), ``start()`` starts it again, ``remove()``
    removes it (not the volume).
    """

    def __init__(self, image: str, volume: str, env: dict[str, str] | None = None,
                 container_port: int = AMQP_PORT):
        self.image = image
        self.volume = volume
        self.env = dict(env or {})
        self.container_port = container_port
        self.name = unique_name("broker")
        self.host_port = free_port()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.host_port}/%2F"

    def run(self) -> "Container":
        """Create and start the container; returns when the broker answers
        on the published port. Raises EngineError / TimeoutError (with the
        container's log)."""
        env_args = [arg for key, value in self.env.items() for arg in ("--env", f"{key}={value}")]
        podman("run", "--detach", "--name", self.name, "--volume", f"{self.volume}:/var/lib/leveret",
               "--publish", f"127.0.0.1:{self.host_port}:{self.container_port}", *env_args, self.image)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        try:
            wait_amqp(self.host_port, timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()[-3000:]}") from None

    def start(self) -> "Container":
        podman("start", self.name)
        self.wait_ready()
        return self

    def stop(self, timeout: int = 20) -> None:
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 30)

    def kill(self) -> None:
        podman("kill", "--signal", "KILL", self.name)
        podman("wait", self.name)

    def remove(self) -> None:
        podman("rm", "--force", self.name, check=False)

    def exit_code(self) -> int:
        return int(self.inspect("{{.State.ExitCode}}"))

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def exec(self, *command: str) -> subprocess.CompletedProcess:
        """Run ``command`` in the running container as its user."""
        return podman("exec", self.name, *command)

    def health_status(self) -> str:
        """``healthy``/``unhealthy``/``starting`` as the engine records it."""
        return self.inspect("{{.State.Health.Status}}")

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Run the image's HEALTHCHECK until it passes (podman's own timer
        needs systemd, which these machines lack, so the check is run on
        demand, as the timer would). Returns the seconds waited; raises
        TimeoutError with the log when it never passes."""
        started = time.monotonic()
        while podman("healthcheck", "run", self.name, check=False).returncode != 0:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{self.name} not healthy within {timeout}s:\n{self.logs()[-3000:]}")
            time.sleep(0.2)
        return time.monotonic() - started

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr


def remove_volume(volume: str) -> None:
    podman("volume", "rm", "--force", volume, check=False)


def engine_env() -> dict[str, str]:
    """The environment for engine subprocesses: this one, without
    PYTHONPATH (tools like podman-compose must not see the repository)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
