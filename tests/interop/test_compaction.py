"""WAL compaction through the real broker (issue 3: "a segment that is
mostly dead is compacted; disk use stays proportional to live data"): a few
survivors among acked messages must not pin whole segments, and compacted
messages must come back intact, in order, after a crash."""

from __future__ import annotations

import time
from pathlib import Path

import pika

from storage.compaction import prefix_to_compact
from tests.interop.pika_helpers import pika_connection

SEGMENT = 1 << 16  # 64 KiB segments: many of them with a few hundred messages
COUNT = 1200


def _wal_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in (data_dir / "wal").iterdir())


def _segments(data_dir: Path) -> int:
    return sum(1 for path in (data_dir / "wal").iterdir() if path.stat().st_size > 16)


def _body(i: int) -> bytes:
    return b"%06d" % i + b"x" * 1018


def test_prefix_to_compact_picks_the_longest_mostly_dead_prefix():
    """Pure rule: the newest N whose prefix is under the live ratio."""
    assert prefix_to_compact([]) is None
    assert prefix_to_compact([(1, 90, 100), (2, 80, 100)]) is None
    assert prefix_to_compact([(1, 10, 100), (2, 95, 100)]) == 1
    assert prefix_to_compact([(1, 10, 100), (2, 50, 100), (3, 20, 100)]) == 3
    assert prefix_to_compact([(1, 60, 100), (2, 10, 100)]) == 2


def test_survivors_are_compacted_and_recovered(fresh_broker, unique):
    """1 message in 8 stays queued, the rest are acked: compaction copies
    the survivors forward and deletes the old segments; after SIGKILL the
    survivors come back byte-equal and in publish order."""
    proc = fresh_broker("--wal-segment-size", str(SEGMENT), "--compact-interval", "0.2")
    keep, drop = unique("keep"), unique("drop")
    with pika_connection(proc) as connection:
        ch = connection.channel()
        for name in (keep, drop):
            ch.queue_declare(name, durable=True)
        ch.confirm_delivery()
        for i in range(COUNT):
            ch.basic_publish("", keep if i % 8 == 0 else drop, _body(i),
                             properties=pika.BasicProperties(delivery_mode=2, message_id=str(i)))
        before = _wal_bytes(proc.data_dir)
        assert before > 8 * SEGMENT
        while True:
            method, _props, _body_ = ch.basic_get(drop, auto_ack=True)
            if method is None:
                break
        ch.basic_publish("", keep, _body(COUNT), properties=pika.BasicProperties(delivery_mode=2,
                                                                                  message_id=str(COUNT)))
        live = (COUNT // 8 + 1) * 1100
        deadline = time.monotonic() + 120     # a hang guard: compaction runs in the background, slower under load
        while _wal_bytes(proc.data_dir) > 2 * live + 2 * SEGMENT and time.monotonic() < deadline:
            time.sleep(0.1)
        after = _wal_bytes(proc.data_dir)
        assert after <= 2 * live + 2 * SEGMENT, (before, after, _segments(proc.data_dir))
    assert "WAL compaction:" in proc.log_text()
    proc.kill()
    proc.start()
    expected = [i for i in range(COUNT) if i % 8 == 0] + [COUNT]
    with pika_connection(proc) as connection:
        ch = connection.channel()
        got = []
        while True:
            method, props, body = ch.basic_get(keep, auto_ack=True)
            if method is None:
                break
            got.append((body, props.message_id, method.redelivered))
        assert got == [(_body(i), str(i), False) for i in expected]
        assert ch.queue_declare(drop, passive=True).method.message_count == 0
