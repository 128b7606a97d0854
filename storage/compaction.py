"""WAL compaction: keep disk use proportional to live data (issue 3).

A segment is deleted as soon as nothing in it is live. A segment pinned by a
few survivors (a slow queue's messages among acked ones) is compacted: its
live messages are appended again at the head of the log and the segment is
deleted. Compaction works on the oldest sealed segments as a prefix, because
an ACK record may only disappear together with (or after) the MESSAGE
record it acknowledges (see storage/wal/retention.py): deleting a prefix
deletes every older MESSAGE record an ACK inside it could refer to.

Bound reached: after a pass no prefix of sealed segments is less than
``LIVE_RATIO`` live, so sealed segments hold at most live bytes / LIVE_RATIO
(twice the live data at 0.5), plus the current segment (``segment_size``),
16 bytes per tombstone, and whatever died since the last pass.
"""

from __future__ import annotations

import asyncio
import logging
import time

from storage.live_index import DELIVERED as DELIVERED_IN, WHERE, moved, pack_position, queue_names, segment_of, \
    unpack_position
from storage.wal import DELIVERED, MESSAGE, WriteAheadLog, decode_message, encode_delivered, encode_message

log = logging.getLogger(__name__)

#: a prefix of sealed segments less live than this is compacted
LIVE_RATIO = 0.5
#: seconds of copying between two yields to the event loop: a pass may copy
#: hundreds of thousands of messages (seconds of CPU), and must not hold up
#: deliveries, confirms or due delayed messages meanwhile (bench/delayed_exchange.py:
#: 8.6 s late at 1M waiting when it yielded only every 20,000 entries)
SLICE = 0.002
#: seconds it then pauses, at least: at most a third of the loop's time
#: goes to a pass (it may take longer; the WAL is bounded all the same, a
#: pass later)
PAUSE = 2 * SLICE
#: a pause that ends this much later than asked means the loop is busy:
#: the next pause doubles, up to MAX_PAUSE (a saturated broker gets ~2 % of
#: its loop taken by compaction, not a third)
BUSY_LATE = 0.002
MAX_PAUSE = 0.1
#: index entries examined between two looks at the clock
_CLOCK_EVERY = 128


def prefix_to_compact(usage: list[tuple[int, int, int]], ratio: float = LIVE_RATIO) -> int | None:
    """The newest segment number N such that the sealed segments up to N
    (``usage``: ``(number, live bytes, record bytes)``, oldest first) are
    together less than ``ratio`` live; None when no prefix is."""
    live = size = 0
    best = None
    for number, seg_live, seg_size in usage:
        live += seg_live
        size += seg_size
        if size and live < ratio * size:
            best = number
    return best


async def compact(wal: WriteAheadLog, live: dict[int, tuple], ratio: float = LIVE_RATIO,
                  delivery_counts: dict | None = None) -> int:
    """One compaction pass; returns the number of segments deleted (0 when
    nothing was worth it). Copies each live message of the prefix to the
    head with only the queues it is still in, plus a DELIVERED record per
    queue where it is out for delivery (with its count from
    ``delivery_counts``: (message id, queue) -> count, 1 when absent), then
    deletes the prefix (the WAL deletes only after the copies are fsynced). Pauses ``PAUSE`` seconds
    (longer while the loop is busy, up to ``MAX_PAUSE``) after every
    ``SLICE`` seconds of work, so deliveries, confirms and due delayed
    messages keep most of the loop."""
    last = prefix_to_compact(wal.segment_usage(), ratio)
    if last is None:
        return 0
    started = time.monotonic()
    segments = [number for number, _live, _size in wal.segment_usage() if number <= last]
    copied = 0
    counts = delivery_counts or {}
    clock = time.monotonic
    until = clock() + SLICE
    pause = PAUSE
    for n, message_id in enumerate(list(live)):
        if not n % _CLOCK_EVERY and clock() > until:
            asked = clock()
            await asyncio.sleep(pause)
            busy = clock() - asked - pause > BUSY_LATE
            pause = min(MAX_PAUSE, pause * 2) if busy else max(PAUSE, pause / 2)
            until = clock() + SLICE
        entry = live.get(message_id)
        if entry is not None and segment_of(entry[WHERE]) <= last:
            live[message_id] = _copy(wal, message_id, entry, counts)
            copied += 1
    present = set(wal.segments)
    for number in segments:
        if number in present:  # it may have died on its own meanwhile
            wal.delete_segment(number)
    log.info("WAL compaction: %d segments (up to %d) replaced by %d live messages copied to the head in %.2f s",
             len(segments), last, copied, time.monotonic() - started)
    return len(segments)


def _copy(wal: WriteAheadLog, message_id: int, entry: tuple, delivery_counts: dict) -> tuple:
    """Append a copy of the message with the queues it is still in; returns
    its new index entry."""
    record = decode_message(wal.read(unpack_position(entry[WHERE])))
    names = queue_names(entry)
    payload = encode_message(message_id, record.vhost, record.exchange, record.routing_key, names,
                             record.header, record.body, at_ms=record.at_ms)
    where = pack_position(wal.append(MESSAGE, payload))
    for queue in entry[DELIVERED_IN] or ():
        count = delivery_counts.get((message_id, queue), 1)
        position = wal.append(DELIVERED, encode_delivered(message_id, queue, delivery_count=count, restated=True))
        wal.release(position, after_segment=segment_of(where))
    return moved(entry, where, names)
