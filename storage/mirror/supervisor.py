"""The broker's side of the message database process (process.py).

Why a process of its own: decoding records and driving SQLite is CPU work
that, on the broker's single event loop, halved the persistent publish
rate. The process reads the WAL segment files itself; the broker's loop
only tells it, at most once per ``SEND_INTERVAL``, how far the WAL is
durable (a line of ~20 bytes on a pipe), and reads back its deletion
floor. An asyncio subprocess (``python -m storage.mirror.process``) rather
than multiprocessing: its pipes are ordinary non-blocking transports on the
broker's loop (uvloop included), its exit is an awaitable, nothing is
pickled and no broker module is re-imported into it (multiprocessing's
spawn would re-run the broker's ``__main__`` imports and add a resource
tracker process).

::

    supervisor = MirrorSupervisor(db_path, wal, options, log_level="info")
    await supervisor.start()      # before the WAL is opened: holds every segment
    ...                           # wal.on_durable -> supervisor.durable(segment, end)
    wal.close()                   # the final durable end is reported
    await supervisor.stop()       # the process applies up to it and exits (<= STOP_TIMEOUT)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

from storage.wal import WriteAheadLog

log = logging.getLogger("storage.mirror")

#: seconds between two durable-end messages to the process (coalesced)
SEND_INTERVAL = 0.002
#: seconds a clean stop waits for the process to apply everything and exit
STOP_TIMEOUT = 10.0
#: seconds before restarting a crashed process: doubles per crash up to the max
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
#: a process that ran this long before crashing resets the delay
STABLE_SECONDS = 60.0
#: niceness added to the process: when other work keeps every core busy, the
#: broker's loop gets the CPU first and the database lags instead (it may:
#: docs/architecture.md, "Durability contract"; see --mirror-max-backlog)
NICE = 5
_ROOT = str(Path(__file__).resolve().parents[2])


class MirrorSupervisor:
    """Runs and watches the message database process for the WAL ``wal``
    and the database ``db_path``; ``options`` are ``MessageMirror`` keyword
    arguments, ``log_level`` / ``log_format`` the broker's logging.

    Deletion floor: from ``start`` until the process reports its own, the
    WAL keeps every segment (floor 0); then the process's floor. When the
    process dies unexpectedly the floor is released (an error is logged,
    the broker goes on) and it is restarted after RESTART_DELAY seconds,
    doubling per crash; it resumes from its database's watermark.
    ``pid``: the running process's, or None; ``crashes``: unexpected exits
    so far; ``mode`` (``full``, ``metadata-only``, None before the first
    report) and ``bodies_missing`` (messages stored without their body):
    what the process reported last, for a metric."""

    def __init__(self, db_path: Path | str, wal: WriteAheadLog, options: dict, *,
                 log_level: str = "info", log_format: str | None = None):
        self.wal = wal
        self._config = json.dumps({"db_path": str(db_path), "wal_dir": str(wal.directory),
                                   "segment_size": wal.segment_size, "broker_pid": os.getpid(),
                                   "log_level": log_level,
                                   "log_format": log_format, "nice": NICE,
                                   "options": options})
        self._proc: asyncio.subprocess.Process | None = None
        self._durable: tuple[int, int] | None = None
        self._sent: tuple[int, int] | None = None
        self._send_handle: asyncio.TimerHandle | None = None
        self._watch: asyncio.Task | None = None
        self._stopping = False
        self.mode: str | None = None
        self.bodies_missing = 0
        self._started_at = 0.0
        self._delay = RESTART_DELAY
        self.crashes = 0

    @property
    def pid(self) -> int | None:
        """The running process's pid, or None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self) -> None:
        """Hold every WAL segment, start the process and its watcher, and
        hook ``wal.on_durable``. Raises OSError when it cannot be spawned."""
        try:
            await self._spawn()
        except OSError:
            self.wal.set_deletion_floor(None)
            raise
        self.wal.on_durable = self.durable
        end = self.wal.durable_end()
        if end is not None:
            # what became durable before the hook (a sync while the broker
            # was still starting) is not reported again
            self.durable(*end)
        self._watch = asyncio.create_task(self._watch_forever(), name="leveret-mirror-watch")

    async def _spawn(self) -> None:
        self.wal.set_deletion_floor(0)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "storage.mirror.process", self._config,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        self._started_at = time.monotonic()
        self._sent = None
        log.info("message database process started (pid %d)", self._proc.pid)
        if self._durable is not None:
            self._send()

    def durable(self, segment: int, end: int) -> None:
        """``WriteAheadLog.on_durable``: note the durable end and send it
        within SEND_INTERVAL (one message for many syncs)."""
        self._durable = (segment, end)
        if self._send_handle is None and not self._stopping:
            self._send_handle = asyncio.get_running_loop().call_later(SEND_INTERVAL, self._send)

    def _send(self, verb: bytes = b"D") -> None:
        self._send_handle = None
        proc = self._proc
        if proc is None or proc.returncode is not None or self._durable is None:
            return
        if verb == b"D" and self._durable == self._sent:
            return
        transport = proc.stdin.transport
        if transport.is_closing():
            return
        if verb == b"D" and transport.get_write_buffer_size():
            # the pipe is full: the process is busy; the newest end goes later
            self._send_handle = asyncio.get_running_loop().call_later(SEND_INTERVAL, self._send)
            return
        self._sent = self._durable
        transport.write(b"%s %d %d\n" % (verb, *self._durable))

    async def _read_floor(self, proc: asyncio.subprocess.Process) -> None:
        while True:
            line = await proc.stdout.readline()
            if not line:
                return
            parts = line.split()
            if (len(parts) == 2 and parts[0] == b"F" and proc is self._proc
                    and not self._stopping):
                self.wal.set_deletion_floor(int(parts[1]))
            elif len(parts) == 3 and parts[0] == b"M":
                self.mode, self.bodies_missing = parts[1].decode(), int(parts[2])

    async def _watch_forever(self) -> None:
        while True:
            proc = self._proc
            await self._read_floor(proc)
            code = await proc.wait()
            if self._stopping:
                return
            self.crashes += 1
            self.wal.set_deletion_floor(None)
            if time.monotonic() - self._started_at > STABLE_SECONDS:
                self._delay = RESTART_DELAY
            log.error("message database process (pid %d) exited unexpectedly with status %s; "
                      "the broker goes on without it (WAL segments are no longer held for "
                      "it) and restarts it in %.0f s", proc.pid, code, self._delay)
            await asyncio.sleep(self._delay)
            self._delay = min(RESTART_DELAY_MAX, self._delay * 2)
            if self._stopping:
                return
            try:
                await self._spawn()
            except OSError as exc:
                log.error("message database process cannot be restarted: %s", exc)
                return

    async def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Send the final durable end, wait up to ``timeout`` seconds for the
        process to apply everything and exit (killed after that, with a
        warning; the database catches up at the next start), release the
        deletion floor. Returns its exit status (None: none was running).
        Idempotent."""
        if self._stopping:
            return None
        self._stopping = True
        if self._send_handle is not None:
            self._send_handle.cancel()
            self._send_handle = None
        if self.wal.on_durable == self.durable:
            self.wal.on_durable = None
        proc = self._proc
        code = None
        if proc is not None and proc.returncode is None:
            self._send(b"S")
            proc.stdin.close()
            t0 = time.monotonic()
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
                log.info("message database process (pid %d) stopped in %.2f s", proc.pid,
                         time.monotonic() - t0)
            except asyncio.TimeoutError:
                log.warning("message database process (pid %d) did not finish within %.0f s: "
                            "killed; it catches up from the WAL at the next start", proc.pid,
                            timeout)
                proc.kill()
                code = await proc.wait()
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        self.wal.set_deletion_floor(None)
        return code
