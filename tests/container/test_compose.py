"""``docker/compose.yaml`` under podman-compose (PyPI, a test extra): ``up``
brings the broker up on the published port, a client outside reaches it,
``down -v`` removes the container and the volume (docs/docker.md, "Compose")."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from tests.container import engine

pytestmark = pytest.mark.timeout(300)  # the first test may wait for the image build

COMPOSE_FILE = engine.REPO_ROOT / "docker" / "compose.yaml"


def podman_compose() -> str:
    """podman-compose beside this Python (the test extras install it), else on PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    found = str(beside) if beside.is_file() else shutil.which("podman-compose")
    if found is None:
        pytest.fail("podman-compose not found: install the test extras (make install)")
    return found


def compose(project: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([podman_compose(), "--project-name", project, "--file", str(COMPOSE_FILE), *args],
                          env=env, capture_output=True, text=True, timeout=120)


def remove_leftovers(project: str) -> None:
    """What ``down -v`` did not remove (it failed, or never ran): this
    project's containers and volumes, found by podman-compose's label."""
    label = f"label=io.podman.compose.project={project}"
    for kind in ("container", "volume"):
        names = engine.podman(kind, "ls", "--quiet", "--filter", label, check=False).stdout.split()
        if names:
            engine.podman(kind, "rm", "--force", *names, check=False)


def test_compose_up_serves_a_client_and_down_removes_it(image):
    project = engine.unique_name("compose")
    port = engine.free_port()
    env = dict(engine.engine_env(), LEVERET_IMAGE=image, LEVERET_PUBLISH_PORT=str(port))
    try:
        up = compose(project, env, "up", "--detach")
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        engine.wait_amqp(port, timeout=60)
        with pika.BlockingConnection(pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{port}/%2F")) as conn:
            channel = conn.channel()
            channel.queue_declare("compose-check", durable=True)
            channel.confirm_delivery()
            channel.basic_publish("", "compose-check", b"through compose", mandatory=True)
            assert channel.basic_get("compose-check", auto_ack=True)[2] == b"through compose"
        volumes = engine.podman("volume", "ls", "--quiet", "--filter",
                                f"label=io.podman.compose.project={project}").stdout.split()
        assert volumes == [f"{project}_leveret-data"]
        down = compose(project, env, "down", "--volumes")
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        assert engine.podman("volume", "exists", volumes[0], check=False).returncode == 1
    finally:
        remove_leftovers(project)
