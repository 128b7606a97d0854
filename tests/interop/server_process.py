"""Start and stop a real Leveret server process for integration tests.

The server runs as ``python -m broker`` on 127.0.0.1 and a free port, with its
log in a file the test can read. Only the process this module started is ever
signalled, by its pid.

Every ``BrokerProcess`` that started is listed in ``BrokerProcess.started``,
and a stop that went wrong (no exit within the shutdown timeout after
SIGTERM, or a non-zero exit status) is written to its ``problems``: the
broker-log guard (tests/log_guard.py) fails the test on both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(proc: subprocess.Popen, host: str, port: int, timeout: float) -> bool:
    """Poll until ``host:port`` accepts a TCP connection (True); False when
    ``proc`` exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(proc: subprocess.Popen | None, timeout: float) -> int | None:
    """SIGTERM ``proc`` if it runs, wait up to ``timeout`` seconds, then
    SIGKILL it; returns its exit status (None: no process)."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class BrokerProcess:
    """One broker process: ``start()``, ``stop()``, ``kill()``, ``restart()``.

    ``extra_args`` are passed to the ``leveret`` command line (for example
    ``["--heartbeat", "1"]``). ``url`` is the AMQP URL for pika/aio-pika.
    ``wrapper`` is a command the broker runs under (``["strace", "-f", ...]``):
    the broker is then that command's child, and ``pid`` and the signals of
    ``stop`` and ``kill`` go to the broker itself, not to the wrapper.
    ``problems``: what went wrong when stopping (read by tests/log_guard.py).
    """

    #: every instance that was started, in start order (the log guard's list)
    started: list["BrokerProcess"] = []

    def __init__(self, data_dir: Path, extra_args: list[str] | None = None, port: int | None = None,
                 wrapper: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args or [])
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-broker.log"
        self.proc: subprocess.Popen | None = None
        self.wrapper = list(wrapper or [])
        self.problems: list[str] = []

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    def start(self, timeout: float = 15.0) -> "BrokerProcess":
        """Start the process and wait until it accepts TCP connections.

        Raises RuntimeError with the log's tail if it exits or does not listen
        within ``timeout`` seconds.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "broker", "--host", self.host, "--port", str(self.port),
               "--data-dir", str(self.data_dir), "--log-level", "debug", *self.extra_args]
        # the management API and Prometheus on any free port: parallel brokers
        # must not fight over 15672 and 15692
        env = {"LEVERET_MANAGEMENT_PORT": "0", "LEVERET_PROMETHEUS_PORT": "0", **os.environ,
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([*self.wrapper, *cmd], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=REPO_ROOT, env=env)
        log.close()
        if self not in BrokerProcess.started:
            BrokerProcess.started.append(self)
        if wait_listening(self.proc, self.host, self.port, timeout):
            return self
        if self.proc.poll() is not None:
            raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        self.kill()
        raise RuntimeError(f"broker did not listen within {timeout}s:\n{self.log_text()[-3000:]}")

    @property
    def pid(self) -> int | None:
        """The broker's pid (with a ``wrapper``: the wrapper's child), None
        when it is not running."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        if not self.wrapper:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:     # the wrapper forks the broker at its start
            pids = children.read_text().split()
            if pids:
                return int(pids[0])
            time.sleep(0.01)
        return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the broker and wait up to ``timeout`` seconds; SIGKILL it
        if it does not exit. Returns the exit status (None: not running). A
        late exit or a non-zero status is added to ``problems``."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        if self.wrapper:
            self._signal_broker(signal.SIGTERM)
            try:
                status = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                status = None
        else:
            before = time.monotonic()
            status = stop_process(self.proc, timeout)
            if time.monotonic() - before >= timeout:
                status = None
        if status is None:
            self.problems.append(f"broker on port {self.port} did not exit within {timeout:g} s "
                                 "of SIGTERM: SIGKILLed")
        elif status != 0:
            self.problems.append(f"broker on port {self.port} exited with status {status} after SIGTERM")
        return status

    def kill(self) -> None:
        """SIGKILL the broker (crash simulation) and reap it (and its wrapper)."""
        if self.proc is not None and self.proc.poll() is None:
            if self.wrapper:
                self._signal_broker(signal.SIGKILL)
            else:
                self.proc.kill()
            self.proc.wait()

    def _signal_broker(self, signum: int) -> None:
        pid = self.pid
        if pid is not None:
            os.kill(pid, signum)
        else:                                  # no child: the wrapper itself
            self.proc.send_signal(signum)

    def restart(self) -> "BrokerProcess":
        """Stop gracefully and start again on the same port and data dir."""
        self.stop()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
