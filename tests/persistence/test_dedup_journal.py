"""broker/persistence/dedup_journal.py: a journal whose file cannot be
opened (or that is closed) keeps nothing, instead of queueing writes for
a file that will never be written; values added before ``open`` are
written once it is."""

from __future__ import annotations

import asyncio
import threading

import aiosqlite
import pytest

from broker.persistence.dedup_journal import DedupJournal


async def _aiosqlite_threads_done() -> None:
    """aiosqlite stops the worker thread of a failed connect without
    waiting: let it finish on this loop before the loop closes (at most 5 s)."""
    for _ in range(500):
        if not any(thread.name.endswith("(_connection_worker_thread)") for thread in threading.enumerate()):
            return
        await asyncio.sleep(0.01)


def test_a_journal_that_cannot_open_becomes_a_no_op(tmp_path):
    async def scenario():
        journal = DedupJournal(tmp_path)  # a directory: SQLite cannot open it
        with pytest.raises((aiosqlite.Error, OSError)):
            await journal.open()
        await journal.close()
        await _aiosqlite_threads_done()
        for i in range(1000):
            journal.add("/", "dedup", repr(i), None, 10)
        journal.forget("/", "dedup")
        return journal._ops, journal._sizes
    assert asyncio.run(scenario()) == ([], {})


def test_values_added_before_open_are_saved_and_none_after_close(tmp_path):
    path = tmp_path / "dedup-cache.db"

    async def first_run():
        journal = DedupJournal(path)
        journal.add("/", "dedup", repr("early"), None, 10)
        await journal.open()
        journal.add("/", "dedup", repr("late"), None, 10)
        await journal.close()
        journal.add("/", "dedup", repr("after close"), None, 10)
        return journal._ops

    async def second_run():
        journal = DedupJournal(path)
        saved = await journal.open()
        await journal.close()
        return saved
    assert asyncio.run(first_run()) == []
    assert asyncio.run(second_run()) == {("/", "dedup"): [("'early'", None), ("'late'", None)]}
