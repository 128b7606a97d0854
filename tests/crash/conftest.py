"""Fixtures for the crash tests: ``fresh_broker`` and ``unique`` are the
interop suite's (a private broker process per test, stopped by pid at the
end); ``SMALL_SEGMENTS`` makes the WAL roll over every few messages."""

from __future__ import annotations

from tests.interop.conftest import fresh_broker, unique  # noqa: F401  (fixtures)

#: ``--wal-segment-size`` for tests that need several WAL segments
SMALL_SEGMENTS = ("--wal-segment-size", str(64 * 1024))
