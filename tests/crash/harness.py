"""Client side of the crash tests. ``Client``: a process running one of
this package's scripts (``python -m tests.crash.<name>``) against a broker,
reporting what it did on stdout, one flushed line per event (a line is
trusted only once complete; the process exits when the broker's socket
goes away). ``publish`` and ``drain``: in-process, for the checks."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.crash.corpus import expected_body, expected_properties, mismatch, number_of
from tests.interop.server_process import REPO_ROOT
from tests.interop.test_durability import _connect


class Client:
    """One script process; ``finish()`` waits for it and returns its lines."""

    def __init__(self, module: str, *args: object):
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
        self.name = module
        self.proc = subprocess.Popen([sys.executable, "-m", f"tests.crash.{module}", *map(str, args)],
                                     cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)

    def finish(self, timeout: float = 15.0) -> list[str]:
        """Wait for the exit (SIGKILL by pid after ``timeout``); return the
        complete stdout lines. Raises AssertionError if it failed."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"{self.name} did not exit after the broker died:\n{err.decode()[-2000:]}")
        assert self.proc.returncode == 0, f"{self.name} exited {self.proc.returncode}:\n{err.decode()[-2000:]}"
        text = out.decode()
        return text.split("\n")[:-1]    # a last line without "\n" was cut by the exit

    def stop(self) -> None:
        """SIGKILL it if still running (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


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
