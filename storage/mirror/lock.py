"""One writer per message database: an flock on ``<db>.lock``.

Why: a message database process orphaned by a SIGKILLed broker finishes
its batch in hand before it exits, while the restarted broker already
starts a new one. Were both writing, the new one would resume from a
watermark the old one then moves, and apply those records twice. So the
process (and ``leveret db rebuild``) holds this lock while it writes.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("storage.mirror")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def lock_path(db_path: Path | str) -> Path:
    """The lock file next to the database."""
    db_path = Path(db_path)
    return db_path.with_name(db_path.name + ".lock")


def try_lock(db_path: Path | str) -> int | None:
    """The fd holding the writer lock of ``db_path`` (close it to release),
    or None when another process holds it. Raises OSError when the file
    cannot be created."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


async def wait_lock(db_path: Path | str, timeout: float, poll: float = 0.05) -> int | None:
    """``try_lock`` until it succeeds or ``timeout`` seconds have passed
    (None then), logging once that it waits."""
    deadline = time.monotonic() + timeout
    fd = try_lock(db_path)
    if fd is None:
        log.info("message database %s: waiting for the previous writer (an earlier message "
                 "database process) to exit", db_path)
    while fd is None and time.monotonic() < deadline:
        await asyncio.sleep(poll)
        fd = try_lock(db_path)
    return fd
