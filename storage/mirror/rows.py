"""Turning WAL records into database rows (pure Python, no I/O).

``decode_batch`` runs in the mirror's worker thread: it decodes a batch of
fed records into *ops* (one per MESSAGE / ACK / DELIVERED / REQUEUED record,
in WAL order). ``resolve`` then turns ops into the rows to insert and the
state updates, given what the database already knows about the messages
the batch touches (see the state rule in ``schema.py``).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import logging

from pamqp.header import ContentHeader

from storage.mirror.schema import READY_EVENTS, UNACKED_EVENTS
from storage.wal.errors import RecordError
from storage.wal.record import (ACK, DELIVERED, MESSAGE, REASON_NAMES, REQUEUED, decode_ack,
                                decode_delivered, decode_message)

log = logging.getLogger("storage.mirror")

OP_MESSAGE = 0
OP_EVENT = 1
_NO_PROPERTIES = (None,) * 13
_CACHE_MAX = 4096


def _json_default(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, decimal.Decimal):
        return str(value)
    return repr(value)


def headers_json(headers: dict | None) -> str | None:
    """The headers table as JSON text (see ``schema.py`` for the mapping of
    AMQP field types), or None for no headers."""
    if headers is None:
        return None
    return json.dumps(headers, default=_json_default, ensure_ascii=False, separators=(",", ":"))


def decode_properties(header: bytes) -> tuple:
    """The 13 property columns (``schema.PROPERTY_COLUMNS`` order) decoded
    from an AMQP content-header payload with pamqp. Raises ValueError (or
    another pamqp/struct error) for a malformed header."""
    ch = ContentHeader()
    ch.unmarshal(header)
    p = ch.properties
    ts = p.timestamp
    if isinstance(ts, datetime.datetime):
        ts = int(ts.timestamp())
    return (p.message_id, p.correlation_id, p.content_type, p.content_encoding, p.message_type,
            p.app_id, p.user_id, ts, p.priority, p.expiration, p.delivery_mode, p.reply_to,
            headers_json(p.headers))


class BatchDecoder:
    """Decodes batches of fed records; keeps a small cache of decoded
    properties keyed by the property bytes of the content header (many
    messages share them). Not thread-safe: use from one thread at a time.
    ``errors`` / ``header_errors`` count skipped records / undecodable
    content headers."""

    def __init__(self):
        self._cache: dict[bytes, tuple] = {}
        self.errors = 0
        self.header_errors = 0

    def properties(self, header: bytes) -> tuple:
        key = header[12:]              # class id, weight, body size come first
        props = self._cache.get(key)
        if props is None:
            try:
                props = decode_properties(header)
            except Exception as exc:   # pamqp raises ValueError, struct.error, IndexError...
                self.header_errors += 1
                if self.header_errors <= 10:
                    log.warning("message database: undecodable content header (%r); "
                                "properties left empty", exc)
                return _NO_PROPERTIES
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = props
        return props

    def decode_batch(self, batch, store_bodies: bool, body_limit: int) -> list[tuple]:
        """Ops for ``batch`` (a sequence of ``(type, payload, position, t)``):
        ``(OP_MESSAGE, id, row, queues, at_ms)`` with ``row`` a list in
        ``schema.MESSAGE_COLUMNS`` order (state and finished_at still None),
        or ``(OP_EVENT, id, queue, event, at_ms, consumer_tag,
        delivery_count)``. Other record types are skipped; a malformed
        payload is skipped with a warning (``errors`` counts them)."""
        ops = []
        append = ops.append
        for rtype, payload, _position, _t in batch:
            try:
                if rtype == MESSAGE:
                    m = decode_message(payload, with_body=False)
                    body = None
                    if store_bodies and m.body_length <= body_limit:
                        body = bytes(payload[m.body_offset:])
                    row = [m.message_id, m.vhost, m.exchange, m.routing_key, len(m.queues),
                           *self.properties(m.header), m.body_length, body, m.at_ms, None, None]
                    append((OP_MESSAGE, m.message_id, row, m.queues, m.at_ms))
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
    ``events`` (message_events rows without id), ``updates`` ((state,
    finished_at, id) for messages already in the database), and the
    counts ``duplicates`` (MESSAGE records for ids already known: a
    compaction copy) and ``orphans`` (events for unknown messages)."""

    __slots__ = ("messages", "events", "updates", "duplicates", "orphans")

    def __init__(self):
        self.messages: list[list] = []
        self.events: list[tuple] = []
        self.updates: list[tuple] = []
        self.duplicates = 0
        self.orphans = 0


def resolve(ops: list[tuple], known: dict[int, int], history: list[tuple]) -> Resolved:
    """Rows and state updates for ``ops``.

    ``known``: {id: queue_count} of the messages the batch references that
    are already in the database. ``history``: (message, queue, event, at)
    rows, in id order, of the known multi-queue messages the batch touches
    (single-queue messages need none: their last event decides)."""
    out = Resolved()
    counts = dict(known)
    status: dict[int, dict] = {}
    seq = 0
    for message, queue, event, at in history:
        seq += 1
        status.setdefault(message, {})[queue] = (event, at, seq)
    new_rows: dict[int, list] = {}
    touched: dict[int, None] = {}
    events = out.events
    for op in ops:
        seq += 1
        mid = op[1]
        if op[0] == OP_MESSAGE:
            if mid in counts:
                out.duplicates += 1
                continue
            row, queues, at = op[2], op[3], op[4]
            counts[mid] = len(queues)
            new_rows[mid] = row
            out.messages.append(row)
            st = status[mid] = {}
            for q in queues:
                events.append((mid, q, "routed", at, None, None))
                st[q] = ("routed", at, seq)
            touched[mid] = None
        else:
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
    for mid in touched:
        state, finished = derive_state(status[mid])
        row = new_rows.get(mid)
        if row is not None:
            if state == "unrouted":
                finished = row[-3]          # published_at
            row[-2], row[-1] = state, finished
        else:
            out.updates.append((state, finished, mid))
    return out
