"""The servers a scenario runs against: a fresh Leveret process, the
reference RabbitMQ (started by ``../shared/tools/reference-rabbitmq``, never
by us), or the sink (``bench.sink``). Each has ``name``, ``host``, ``port``,
``pid`` (for CPU and RSS from /proc; None if unknown), ``start()`` and ``stop()``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from bench.amqp_client import Connection
from bench.sink import SinkProcess
from tests.interop.server_process import BrokerProcess

REFERENCE_URL = "amqp://guest:guest@127.0.0.1:5682/%2F"
REFERENCE_PID_FILE = Path("/tmp/reference-rabbitmq/reference.pid")
REFERENCE_TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "reference-rabbitmq"


class Leveret:
    """A Leveret broker (``python -m broker``) on a free port and a fresh
    temporary data dir, removed by ``stop()``. ``fsync``: "always" or "never"."""

    name = "leveret"

    def __init__(self, fsync: str = "always", extra_args: list[str] | None = None):
        self.fsync = fsync
        self.tmp = Path(tempfile.mkdtemp(prefix="leveret-bench-"))
        self.proc = BrokerProcess(self.tmp / "data", ["--fsync", fsync, "--log-level", "warning",
                                                      *(extra_args or [])])
        self.host, self.port = self.proc.host, self.proc.port

    @property
    def pid(self) -> int | None:
        return self.proc.proc.pid if self.proc.proc else None

    def start(self) -> "Leveret":
        self.proc.start()
        return self

    def alive(self) -> bool:
        return self.proc.proc is not None and self.proc.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        return self.proc.log_text()[-chars:]

    def stop(self) -> None:
        try:
            self.proc.stop()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


class Reference:
    """The reference RabbitMQ at ``url``; its pid comes from the pid file the
    reference tool's RabbitMQ writes. ``available()`` says whether it answers."""

    name = "rabbitmq"

    def __init__(self, url: str = REFERENCE_URL):
        parsed = urlparse(url)
        self.url = url
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 5672
        self.vhost = unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
        self.pid = self._find_pid()

    @staticmethod
    def _find_pid() -> int | None:
        """The beam.smp pid from the reference tool's pid file, if it is running."""
        try:
            pid = int(REFERENCE_PID_FILE.read_text().strip())
            if "beam" in Path(f"/proc/{pid}/comm").read_text():
                return pid
        except (OSError, ValueError):
            pass
        return None

    def available(self) -> tuple[bool, str]:
        """(True, "") when an AMQP handshake succeeds, else (False, why)."""
        try:
            Connection(self.host, self.port, timeout=5).close()
        except Exception as exc:  # refused, timed out, or not speaking AMQP
            return False, f"reference RabbitMQ not reachable at {self.url} ({exc}); start it with {REFERENCE_TOOL} start"
        self.pid = self._find_pid()
        return True, ""

    def max_connections(self) -> int | None:
        """Connections RabbitMQ will accept: its socket limit is about
        0.9 x (open-file soft limit - 100) (rabbit's file handle cache); None if unknown."""
        try:
            for line in Path(f"/proc/{self.pid}/limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    return int((int(line.split()[3]) - 100) * 0.9)
        except (OSError, ValueError, IndexError, TypeError):
            pass
        return None

    def start(self) -> "Reference":
        return self

    def stop(self) -> None:
        pass


class Sink:
    """``bench.sink`` as a subprocess: the load generator's ceiling.
    ``size``: body bytes of the deliveries it streams."""

    name = "sink"

    def __init__(self, size: int = 16):
        self.proc = SinkProcess(size)
        self.host, self.port = self.proc.host, self.proc.port

    @property
    def pid(self) -> int | None:
        return self.proc.proc.pid if self.proc.proc else None

    def start(self) -> "Sink":
        self.proc.start()
        return self

    def stop(self) -> None:
        self.proc.stop()
