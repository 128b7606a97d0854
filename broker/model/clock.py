"""The broker's wall clock: milliseconds since the Unix epoch, the unit of
message TTL deadlines, delayed-message due times and the WAL's publish
time stamps (``at_ms``), so that deadlines computed before a restart keep
counting after it (rabbitmq.com/ttl.html; docs/architecture.md, glossary
"deadline")."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch (an int)."""
    return time.time_ns() // 1_000_000
