"""The message database process: ``python -m storage.mirror.process CONFIG``.

Started by the broker (supervisor.py) with its stdin and stdout as pipes;
stderr is the broker's, so its log lines land in the broker's log. CONFIG
is a JSON object: db_path, wal_dir, segment_size (bytes), broker_pid,
log_level, log_format, nice (added to its niceness), options (``MessageMirror``
keyword arguments).

Protocol, one ASCII line per message:

* broker -> process (stdin): ``D <segment> <end>``: the WAL is durable up to
  byte ``end`` of ``segment``; ``S <segment> <end>``: the same, and stop once
  everything up to there is applied.
* process -> broker (stdout): ``F <segment>``: the lowest WAL segment it
  still needs (its deletion floor); ``M <mode> <bodies missing>``: the
  database's mode (``full`` or ``metadata-only``) and how many messages it
  stored without their body so far, at start and whenever either changes.

End of stdin without ``S`` (the broker died, e.g. SIGKILL), or the parent
process changing, makes it finish the batch in hand and exit: it never
outlives the broker. It writes holding ``<db>.lock`` (lock.py), waiting up
to LOCK_TIMEOUT seconds for a previous process to let go. It runs at the
niceness the broker asks for. SIGINT and SIGTERM are ignored: a Ctrl-C in
a terminal, or a service manager signalling the whole group, reaches the
broker too, which then stops it with ``S`` after its final WAL write.
Exit status: 0 after a stop, 1 when the database or reading the WAL
failed (the broker restarts it), 2 for a bad command line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

from storage.mirror.follower import WalFollower
from storage.mirror.lock import wait_lock
from storage.mirror.writer import MessageMirror

log = logging.getLogger("storage.mirror")

#: seconds between two checks that the parent process is still the broker
PARENT_CHECK = 1.0
#: seconds it waits for a previous process to release the database
LOCK_TIMEOUT = 30.0


class _Control:
    """What the broker said: ``stop`` (S received, or the broker is gone),
    ``orphaned`` (gone without S)."""

    def __init__(self, follower: WalFollower):
        self.follower = follower
        self.stop = False
        self.orphaned = False

    def line(self, text: bytes) -> None:
        parts = text.split()
        if len(parts) == 3 and parts[0] in (b"D", b"S"):
            self.follower.tell(int(parts[1]), int(parts[2]))
            if parts[0] == b"S":
                self.stop = True
                self.follower.wake()
        elif parts:
            log.warning("message database process: unknown message %r from the broker", text)

    def gone(self, why: str) -> None:
        if not self.stop:
            log.warning("message database process: %s; exiting", why)
            self.stop = self.orphaned = True
        self.follower.wake()


async def _read_commands(control: _Control) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        text = await reader.readline()
        if not text:
            control.gone("the broker closed the pipe (it stopped or died)")
            return
        control.line(text)


async def _watch_parent(control: _Control, parent: int) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK)
    control.gone(f"the broker (pid {parent}) is gone")


def _writer(template: bytes):
    """A function writing ``template % args`` to the broker (stdout)."""
    out = sys.stdout.buffer

    def report(*args) -> None:
        try:
            out.write(template % args)
            out.flush()
        except OSError:          # the broker is gone: stdin's end tells the loop
            pass
    return report


class _ModeReport:
    """Sends ``M <mode> <bodies missing>`` when either changed."""

    def __init__(self, mirror: MessageMirror):
        self.mirror = mirror
        self.write = _writer(b"M %s %d\n")
        self.last = None

    def __call__(self) -> None:
        stats = self.mirror.stats
        now = (stats["mode"].encode(), stats["bodies_missing"])
        if now != self.last:
            self.last = now
            self.write(*now)


async def follow(config: dict) -> int:
    """Take the writer lock, open the database, follow the WAL as told on
    stdin, stop as told. Returns the exit status."""
    lock = await wait_lock(config["db_path"], LOCK_TIMEOUT)
    if lock is None:
        log.error("message database %s is still locked by another process after %.0f s; "
                  "giving up", config["db_path"], LOCK_TIMEOUT)
        return 1
    try:
        return await _follow(config)
    finally:
        os.close(lock)


async def _follow(config: dict) -> int:
    mirror = MessageMirror(config["db_path"], **config.get("options", {}))
    await mirror.start()
    report = _writer(b"F %d\n")
    mode = _ModeReport(mirror)
    mode()
    follower = WalFollower(mirror, config["wal_dir"], config.get("segment_size", 64 << 20),
                           floor_moved=report)
    report(follower.floor)
    control = _Control(follower)
    # the broker's pid from its config: by now the broker may be gone already
    parent = int(config.get("broker_pid") or os.getppid())
    tasks = [asyncio.create_task(_read_commands(control)),
             asyncio.create_task(_watch_parent(control, parent))]
    status = 0
    try:
        while not mirror.stats["failed"]:
            if control.orphaned:
                break
            if follower.caught_up():
                if control.stop:
                    break
                await follower.wait()
                continue
            await follower.step()
            mode()
        await mirror.flush()
        mode()
    except Exception:              # e.g. WalCorruptError: the broker restarts it
        if control.orphaned or os.getppid() != parent:
            # the broker is gone (SIGKILL): what it left may be being
            # inspected or repaired; the next broker's process reads it again
            log.warning("message database process: the broker is gone and reading the WAL "
                        "after %s failed; exiting", tuple(follower.read_to or ()) or "the start")
        else:
            log.exception("message database process: following the WAL after %s failed",
                          tuple(follower.read_to or ()) or "the start")
        status = 1
    finally:
        for task in tasks:
            task.cancel()
        await mirror.stop()
    stats = mirror.stats
    log.info("message database: %d records applied, %d messages, worst lag %.3f s, mode %s",
             stats["applied"], stats["rows"], stats["max_lag"], stats["mode"])
    return 1 if stats["failed"] else status


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` = [CONFIG JSON]."""
    if len(argv) != 1:
        print("usage: python -m storage.mirror.process CONFIG-JSON", file=sys.stderr)
        return 2
    config = json.loads(argv[0])
    try:
        os.nice(int(config.get("nice", 0)))
    except OSError:
        pass
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(config.get("log_format")))
    level = getattr(logging, str(config.get("log_level", "INFO")).upper(), logging.INFO)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(follow(config))
    return uvloop.run(follow(config))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
