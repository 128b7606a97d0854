"""Turning WAL records into database rows (pure Python, no I/O).

``BatchDecoder.decode_batch`` decodes fed records into *ops* (one per
MESSAGE / ACK / DELIVERED / REQUEUED record, and one per message of an
ACK_MANY / DELIVERED_MANY record, in WAL order). ``resolve``
then turns ops into the rows to insert and the state updates, given what
the database already knows about the messages the batch touches (see the
state rule in ``schema.py``). Both are generators that yield every few
hundred records, so the mirror's task can run them on the event loop in
slices (a worker thread would be starved of the GIL by a busy loop).
"""

from __future__ import annotations

import logging
import struct

from storage.mirror.properties import fast_properties
from storage.mirror.schema import MESSAGE_COLUMNS, READY_EVENTS, UNACKED_EVENTS
from storage.wal.batch_record import decode_ack_many, decode_delivered_many
from storage.wal.errors import RecordError
from storage.wal.record import (ACK, ACK_MANY, DELIVERED, DELIVERED_MANY, MESSAGE, REASON_NAMES, REQUEUED,
                                decode_ack, decode_delivered, decode_message, header_and_body_at)

log = logging.getLogger("storage.mirror")

OP_MESSAGE = 0
OP_EVENT = 1
_NO_PROPERTIES = ((None,) * 13, 0)
_CACHE_MAX = 4096
#: (AMQP property flag bit, mask bit of its column in schema.PROPERTY_COLUMNS)
_FLAG_COLUMNS = ((0x0080, 1 << 0), (0x0400, 1 << 1), (0x8000, 1 << 2), (0x4000, 1 << 3),
                 (0x0020, 1 << 4), (0x0008, 1 << 5), (0x0010, 1 << 6), (0x0040, 1 << 7),
                 (0x0800, 1 << 8), (0x0100, 1 << 9), (0x1000, 1 << 10), (0x0200, 1 << 11),
                 (0x2000, 1 << 12))
_ID_AT = struct.Struct(">QQ").unpack_from
_U32 = struct.Struct(">I").unpack_from
_STATE = MESSAGE_COLUMNS.index("state")
_PUBLISHED = MESSAGE_COLUMNS.index("published_at")


class BatchDecoder:
    """Decodes batches of fed records; keeps a small cache of decoded
    properties keyed by the property bytes of the content header (many
    messages share them). Not thread-safe: use from one thread at a time.
    ``errors`` / ``header_errors`` count skipped records / undecodable
    content headers."""

    def __init__(self):
        self._cache: dict[bytes, tuple] = {}
        self._masks: dict[int, int] = {}
        self._hits = 0
        self._uncached = 0
        self._routes: dict[bytes, tuple] = {}
        self.errors = 0
        self.header_errors = 0

    def properties(self, header: bytes) -> tuple[tuple, int]:
        """(the 13 property columns, mask of the present ones: bit k for
        column k) of a content header, cached by its property bytes. When
        headers hardly repeat (a distinct message-id each, the usual case)
        the cache is left alone for a while: its upkeep cost more than its
        hits saved."""
        if self._uncached:
            self._uncached -= 1
            return self._decode(header)
        key = header[12:]              # class id, weight, body size come first
        found = self._cache.get(key)
        if found is not None:
            self._hits += 1
            return found
        found = self._decode(header)
        if len(self._cache) >= _CACHE_MAX:
            if self._hits < _CACHE_MAX // 4:
                self._uncached = 8 * _CACHE_MAX
            self._cache.clear()
            self._hits = 0
        self._cache[key] = found
        return found

    def _decode(self, header: bytes) -> tuple[tuple, int]:
        try:
            props = fast_properties(header)
        except Exception as exc:   # pamqp raises ValueError, struct.error, IndexError...
            self.header_errors += 1
            if self.header_errors <= 10:
                log.warning("message database: undecodable content header (%r); "
                            "properties left empty", exc)
            return _NO_PROPERTIES
        flags = header[12] << 8 | header[13]
        if flags & 1:                  # a second flag word: go by the values
            return props, sum(1 << k for k, v in enumerate(props) if v is not None)
        mask = self._masks.get(flags)
        if mask is None:
            mask = self._masks[flags] = sum(col for bit, col in _FLAG_COLUMNS if flags & bit)
        return props, mask

    def message(self, payload: bytes) -> tuple[int, int, tuple, bytes, int, int]:
        """(message id, at_ms, (vhost, exchange, routing key, queues),
        content header, body offset, body length) of a MESSAGE payload
        (layout: storage/wal/record.py). The route part is decoded by
        ``decode_message`` once per distinct route and cached: a stream of
        publishes repeats a few routes. Raises RecordError if malformed."""
        try:
            mid, at = _ID_AT(payload, 0)
            p = 16
            p += 1 + payload[p]
            p += 1 + payload[p]
            p += 1 + payload[p]
            count = _U32(payload, p)[0]
            p += 4
            for _ in range(count):
                p += 1 + payload[p]
            route = self._routes.get(payload[16:p])
            if route is None:
                m = decode_message(payload, with_body=False)
                route = (m.vhost, m.exchange, m.routing_key, m.queues)
                if len(self._routes) >= _CACHE_MAX:
                    self._routes.clear()
                self._routes[payload[16:p]] = route
            header, offset, length = header_and_body_at(payload, p)
        except (IndexError, struct.error) as exc:
            raise RecordError(f"malformed message payload: {exc}") from None
        if offset + length != len(payload):
            raise RecordError("malformed message payload: lengths do not add up")
        return mid, at, route, header, offset, length

    def decode_batch(self, batch, store_bodies: bool, body_limit: int, ops: list,
                     step: int = 64):
        """Generator: append to ``ops`` the ops for ``batch`` (a sequence of
        ``(type, payload, position, t)``), yielding after every ``step``
        records. An op is ``(OP_MESSAGE, id, row, queues, at_ms)`` with
        ``row`` a list in ``schema.MESSAGE_COLUMNS`` order (state and
        finished_at still None) followed by the mask of the present
        property columns (``BatchDecoder.properties``) and the queue (None
        unless exactly one), or ``(OP_EVENT, id, queue, event, at_ms,
        consumer_tag, delivery_count)``; a batched record gives one event op
        per message, so timelines read as with single records. Other record
        types are skipped; a malformed payload is skipped with a warning
        (``errors`` counts)."""
        append = ops.append
        countdown = step
        for rtype, payload, _position, _t in batch:
            countdown -= 1
            if not countdown:
                countdown = step
                yield
            try:
                if rtype == MESSAGE:
                    mid, at, route, header, offset, length = self.message(payload)
                    body = None
                    if store_bodies and length <= body_limit:
                        # a bytearray: the sqlite3 module binds it without the
                        # adaptation lookup that bytes (and None) cost
                        body = bytearray(memoryview(payload)[offset:])
                    props, mask = self.properties(header)
                    queues = route[3]
                    row = [mid, route[0], route[1], route[2], len(queues),
                           *props, length, body, at, None, None, mask,
                           queues[0] if len(queues) == 1 else None]
                    append((OP_MESSAGE, mid, row, route[3], at))
                elif rtype == ACK:
                    e = decode_ack(payload)
                    name = REASON_NAMES.get(e.reason, f"reason-{e.reason}")
                    append((OP_EVENT, e.message_id, e.queue, name, e.at_ms, None, None))
                elif rtype == DELIVERED:
                    e = decode_delivered(payload)
                    append((OP_EVENT, e.message_id, e.queue, "delivered", e.at_ms,
                            e.consumer_tag, e.delivery_count))
                elif rtype == REQUEUED:
                    e = decode_ack(payload)
                    append((OP_EVENT, e.message_id, e.queue, "requeued", e.at_ms, None, None))
                elif rtype == DELIVERED_MANY:
                    e = decode_delivered_many(payload)
                    queue, at, tag = e.queue, e.at_ms, e.consumer_tag
                    ops.extend([(OP_EVENT, mid, queue, "delivered", at, tag, count)
                                for mid, count in zip(e.message_ids, e.delivery_counts)])
                elif rtype == ACK_MANY:
                    e = decode_ack_many(payload)
                    queue, at = e.queue, e.at_ms
                    name = REASON_NAMES.get(e.reason, f"reason-{e.reason}")
                    ops.extend([(OP_EVENT, mid, queue, name, at, None, None) for mid in e.message_ids])
            except (RecordError, UnicodeDecodeError, ValueError) as exc:
                self.errors += 1
                if self.errors <= 10:
                    log.warning("message database: skipping malformed WAL record of type %s: %s",
                                rtype, exc)
        return ops


def derive_state(queues: dict) -> tuple[str, int | None]:
    """(state, finished_at) from ``{queue: (event, at_ms, seq)}`` (the last
    event per queue; ``seq`` orders events), by the rule in ``schema.py``."""
    if not queues:
        return "unrouted", None
    last = None
    unacked = False
    for entry in queues.values():
        event = entry[0]
        if event in READY_EVENTS:
            return "queued", None
        if event in UNACKED_EVENTS:
            unacked = True
        elif last is None or entry[2] > last[2]:
            last = entry
    if unacked:
        return "delivered", None
    return last[0], last[1]


class Resolved:
    """What one batch writes: ``messages`` (new rows, complete),
    ``events`` (message_events rows without id), ``updates`` ((id, state,
    finished_at) for messages already in the database), ``queues``
    ((message, queue, published_at) for the new messages routed to
    several queues), and
    the counts
    ``duplicates`` (MESSAGE records for ids already known, and the
    DELIVERED records that come with them: a WAL compaction copy) and
    ``orphans`` (events for unknown messages). ``copy_of``: the id of the
    compaction copy the last op belonged to, or None; carried from one
    batch to the next."""

    __slots__ = ("messages", "events", "updates", "queues", "duplicates", "orphans", "copy_of")

    def __init__(self, copy_of: int | None = None):
        self.messages: list[list] = []
        self.events: list[tuple] = []
        self.updates: list[tuple] = []
        self.queues: list[tuple] = []
        self.duplicates = 0
        self.orphans = 0
        self.copy_of = copy_of


def resolve(ops: list[tuple], known: dict[int, int], history: list[tuple], out: Resolved,
            step: int = 512):
    """Generator: fill ``out`` with the rows and state updates for ``ops``,
    yielding after every ``step`` ops.

    ``known``: {id: queue_count} of the messages the batch references that
    are already in the database. ``history``: (message, queue, event, at)
    rows, in id order, of the known multi-queue messages the batch touches
    (single-queue messages need none: their last event decides).

    WAL compaction (storage/compaction.py) appends a live message again,
    with the queues it is still in, followed by a DELIVERED record (consumer
    tag "", delivery count 1) for each queue where it is out for delivery.
    A MESSAGE op for an id already known is such a copy: it is ignored,
    and so are the DELIVERED ops of that id with tag "" and count 1 right
    after it (they restate a delivery already recorded)."""
    counts = dict(known)
    status: dict[int, dict] = {}
    seq = 0
    for message, queue, event, at in history:
        seq += 1
        status.setdefault(message, {})[queue] = (event, at, seq)
    new_rows: dict[int, list] = {}
    touched: dict[int, None] = {}
    events = out.events
    copy_of = out.copy_of
    for op in ops:
        seq += 1
        if not seq % step:
            yield
        mid = op[1]
        if op[0] == OP_MESSAGE:
            if mid in counts:
                out.duplicates += 1
                copy_of = mid
                continue
            copy_of = None
            row, queues, at = op[2], op[3], op[4]
            counts[mid] = len(queues)
            new_rows[mid] = row
            out.messages.append(row)
            if len(queues) > 1:
                out.queues.extend([(mid, q, at) for q in queues])
            st = status[mid] = {}
            for q in queues:
                events.append((mid, q, "routed", at, None, None))
                st[q] = ("routed", at, seq)
            touched[mid] = None
        else:
            if mid == copy_of and op[3] == "delivered" and op[5] == "" and op[6] == 1:
                out.duplicates += 1
                continue
            copy_of = None
            if mid not in counts:
                out.orphans += 1
                continue
            _, _, queue, event, at, tag, count = op
            events.append((mid, queue, event, at, tag, count))
            st = status.get(mid)
            if st is None or counts[mid] <= 1:
                st = status[mid] = {}        # single queue: the last event decides
            st[queue] = (event, at, seq)
            touched[mid] = None
    out.copy_of = copy_of
    for n, mid in enumerate(touched):
        if n and not n % step:
            yield
        state, finished = derive_state(status[mid])
        row = new_rows.get(mid)
        if row is not None:
            if state == "unrouted":
                finished = row[_PUBLISHED]
            row[_STATE], row[_STATE + 1] = state, finished
        else:
            out.updates.append((mid, state, finished))
