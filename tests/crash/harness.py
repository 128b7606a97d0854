"""Client side of the crash tests. ``Client``: a process running one of
this package's scripts (``python -m tests.crash.<name>``) against a broker,
reporting what it did on stdout, one flushed line per event (a line is
trusted only once complete; the process exits when the broker's socket
goes away). ``publish`` and ``drain``: in-process, for the checks."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from tests.crash.corpus import expected_body, expected_properties, mismatch, number_of
from tests.interop.server_process import REPO_ROOT
from tests.interop.test_durability import _connect


class Client:
    """One script process. Its stdout is read as it comes (``lines``:
    the complete lines so far), so a test can wait for an event
    (``wait_for``) instead of sleeping; ``finish()`` waits for the exit."""

    def __init__(self, module: str, *args: object):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        self.name = module
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", f"tests.crash.{module}", *map(str, args)],
                                     cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self._stderr: list[bytes] = []
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=lambda: self._stderr.append(self.proc.stderr.read()),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            if raw.endswith(b"\n"):       # a last line without "\n" was cut by the exit
                self.lines.append(raw.decode().rstrip("\n"))

    def wait_for(self, predicate, timeout: float) -> None:
        """Wait until ``predicate(lines)`` is true. Raises AssertionError
        (with the script's stderr) when the script exits or ``timeout``
        seconds (a hang guard) pass first."""
        deadline = time.monotonic() + timeout
        while not predicate(self.lines):
            if self.proc.poll() is not None:
                self._readers[0].join()
                if predicate(self.lines):
                    return
                raise AssertionError(f"{self.name} exited {self.proc.returncode} before the event; "
                                     f"last lines {self.lines[-5:]}:\n{self.stderr()}")
            assert time.monotonic() < deadline, f"{self.name}: no event within {timeout} s: {self.lines[-5:]}"
            time.sleep(0.01)

    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")[-2000:]

    def finish(self, timeout: float = 15.0) -> list[str]:
        """Wait for the exit (SIGKILL by pid after ``timeout``); return the
        complete stdout lines. Raises AssertionError if it failed."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not exit after the broker died:\n{self.stderr()}")
        for reader in self._readers:
            reader.join()
        assert self.proc.returncode == 0, f"{self.name} exited {self.proc.returncode}:\n{self.stderr()}"
        return list(self.lines)

    def stop(self) -> None:
        """SIGKILL it if still running (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def publish(proc, queue: str, numbers) -> None:
    """Publish corpus messages ``numbers`` to the durable ``queue``, each
    confirmed (so each is fsynced) before the call returns."""
    with _connect(proc) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for n in numbers:
            channel.basic_publish("", queue, expected_body(n), expected_properties(n))


def drain(proc, queue: str) -> list[tuple[int, bool, str]]:
    """Take every message left in ``queue`` (basic.get, auto-ack) as
    ``(number, redelivered, "ok" or what differs from the corpus)``."""
    out = []
    with _connect(proc) as connection:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            problem = mismatch(properties, body)
            out.append((number_of(properties), method.redelivered, problem or "ok"))
