"""The thread that owns the message database's SQLite connection.

Why one call per batch (``run(fn, ...)``) instead of one per statement
(aiosqlite): every hop between the event loop and a thread costs a wake-up
and a GIL hand-over, and while the loop is busy a thread waiting for the
GIL can wait a whole switch interval (5 ms) per hop. The writer therefore
hands the thread one function that decodes, resolves and writes a whole
batch (``database.apply_batch``); SQLite's C code releases the GIL meanwhile,
so the loop goes on reading the WAL files (follower.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable


class DatabaseThread:
    """One worker thread and the ``sqlite3.Connection`` it made
    (``connect``); ``await run(fn, *args)`` calls ``fn(connection, *args)``
    there and returns its result (its exception is raised in the caller).
    Calls run one at a time, in order."""

    def __init__(self, name: str = "leveret-mirror-db"):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.conn: sqlite3.Connection | None = None

    async def connect(self, opener: Callable[..., sqlite3.Connection], *args) -> Any:
        """``opener(*args)`` in the thread; it returns ``(connection, rest)``;
        keeps the connection and returns ``rest``. Raises what it raises."""
        loop = asyncio.get_running_loop()
        self.conn, rest = await loop.run_in_executor(self._executor, opener, *args)
        return rest

    async def run(self, fn: Callable[..., Any], *args) -> Any:
        """``fn(connection, *args)`` in the thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self.conn, *args)

    async def close(self) -> None:
        """Close the connection (in its thread) and stop the thread."""
        if self.conn is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self.conn.close)
            self.conn = None
        self._executor.shutdown(wait=True)
