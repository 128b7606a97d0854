"""Message deduplication as the plugin
https://github.com/noxdafox/rabbitmq-message-deduplication does it, keyed on
the ``x-deduplication-header`` message header (a message without it is
never a duplicate).

* Exchange level (type ``x-message-deduplication``,
  broker/exchanges/deduplication.py): a message whose header value the
  exchange has seen within the TTL (per-message ``x-cache-ttl`` header, else
  the ``x-cache-ttl`` argument, else forever) routes nowhere: a mandatory
  publish gets basic.return 312 NO_ROUTE (the plugin's ``route`` returns no
  queues), a confirming publisher gets basic.ack. ``DedupCache``: at most
  ``x-cache-size`` values, the oldest evicted first, expired values dropped
  when looked up. With ``x-cache-persistence=disk`` on a durable exchange
  the cache survives a restart (broker/persistence/dedup_journal.py).
* Queue level (queue argument ``x-message-deduplication`` = true): a
  message is not enqueued when a message with the same header value is
  still in the queue (ready or unacknowledged). ``QueueDedup`` maps each
  value to the id of the message that carries it and checks, when a value
  comes again, that this message is still in the queue: through the WAL's
  live index for stored messages (exact, whatever removed it), by looking
  through the queue and the unacked deliveries of its consumers' channels
and of channels that took from it with basic.get (``note_get``) otherwise. It is
  built lazily from the queue's content, so it is right after a restart.

A dropped duplicate is recorded in the message database: a persistent one
is appended to the WAL under a fresh message id, then closed with an ACK
record of reason REASON_DEDUPLICATED ("deduplicated") naming the queue, or
``amq.x-deduplication:<exchange>`` for the exchange type.
"""

from __future__ import annotations

import ast
import logging
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING

import broker.model.message
from broker.exchanges.deduplication import positive_int
from broker.model.message_headers import headers_or_none
from protocol.hot_methods import delivery_mode
from broker.model.reasons import REASON_DEDUPLICATED

if TYPE_CHECKING:
    from broker.model.message import Message
    from broker.queues.queue import Queue

log = logging.getLogger(__name__)

HEADER = "x-deduplication-header"
EXCHANGE_HOLDER = "amq.x-deduplication:"
_MISSING = object()
#: deduplicating queue -> its QueueDedup (goes with the queue object)
_QUEUES: "weakref.WeakKeyDictionary[Queue, QueueDedup]" = weakref.WeakKeyDictionary()
#: deduplicating queue -> channels that took messages from it with basic.get
_GETTERS: "weakref.WeakKeyDictionary[Queue, weakref.WeakSet]" = weakref.WeakKeyDictionary()


def key_of(value):
    """A hashable cache key for a header value; a long string is the same
    key whether it arrived as str or bytes."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (list, dict)):
        return ("repr", repr(value))
    return value


class DedupCache:
    """Header values seen by one exchange: at most ``size`` of them (the
    oldest inserted goes first), each until its TTL (ms; None: no expiry).
    ``on_insert(key, expires_ms)`` (optional) is told each value taken,
    with its expiry in ms since the Unix epoch (None: never)."""

    def __init__(self, size: int, ttl_ms: int | None = None, on_insert=None):
        self.size = size
        self.ttl_ms = ttl_ms
        self.on_insert = on_insert
        self._entries: OrderedDict = OrderedDict()  # key -> expiry (monotonic s) or None

    def __len__(self) -> int:
        return len(self._entries)

    def seen(self, key, ttl_ms: int | None = None, now: float | None = None) -> bool:
        """True when ``key`` is a duplicate; otherwise remember it (for
        ``ttl_ms``, else the cache's TTL) and return False."""
        now = time.monotonic() if now is None else now
        entries = self._entries
        expiry = entries.get(key, _MISSING)
        if expiry is not _MISSING:
            if expiry is None or expiry > now:
                return True
            del entries[key]
        ttl = ttl_ms or self.ttl_ms
        entries[key] = now + ttl / 1000.0 if ttl else None
        if len(entries) > self.size:
            entries.popitem(last=False)
        if self.on_insert is not None:
            self.on_insert(key, time.time_ns() // 1_000_000 + ttl if ttl else None)
        return False

    def restore(self, saved: list[tuple[str, int | None]]) -> int:
        """Take back values saved by broker/persistence/dedup_journal.py (``(repr of
        the value, expires_ms or None)``, oldest first), leaving out the
        expired ones and any that cannot be read back; returns how many."""
        now_wall, now = time.time_ns() // 1_000_000, time.monotonic()
        entries = self._entries
        for text, expires_ms in saved:
            if expires_ms is not None and expires_ms <= now_wall:
                continue
            try:
                key = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                continue
            entries.pop(key, None)
            entries[key] = None if expires_ms is None else now + (expires_ms - now_wall) / 1000.0
        while len(entries) > self.size:
            entries.popitem(last=False)
        return len(entries)


def cache_for(vhost, exchange) -> DedupCache:
    """The cache of the deduplication ``exchange``, created on first use;
    saved to disk (``vhost.dedup_journal``) when the exchange is durable
    with ``x-cache-persistence`` = ``disk``."""
    cache = exchange.cache
    if cache is None:
        journal = vhost.dedup_journal
        saved = journal is not None and exchange.durable and exchange.cache_persistence == "disk"
        cache = exchange.cache = DedupCache(exchange.cache_size, exchange.cache_ttl,
                                            _saver(journal, vhost.name, exchange) if saved else None)
    return cache


def _saver(journal, vhost_name: str, exchange):
    """The ``on_insert`` of a cache saved by ``journal``."""
    name, size = exchange.name, exchange.cache_size

    def on_insert(key, expires_ms):
        journal.add(vhost_name, name, repr(key), expires_ms, size)
    return on_insert


class QueueDedup:
    """Header values of the messages in one queue (see module docstring)."""

    def __init__(self, queue: "Queue"):
        self.queue = queue
        self.keys: dict = {}  # key -> message id
        self._rebuild()

    def _rebuild(self) -> None:
        """Index the queue's current content (ready, cold: read back from
        the WAL, unacked at its consumers)."""
        queue = self.queue
        keys = self.keys = {}
        messages = [entry.message for entry in queue.ready if entry.message is not None]  # None: expired
        ids = []
        for item in queue.cold:
            if type(item) is int:
                ids.append(abs(item))
            else:
                messages.append(broker.model.message.cold_message(item))
        for channel in _channels(queue):
            messages.extend(e.message for e, q, _c in channel.unacked.values() if q is queue)
        for message in messages:
            key = _header_key(message)
            if key is not None:
                keys[key] = message.id
        if ids:
            storage = queue.vhost.storage
            for message_id, record in zip(ids, storage.read_messages(ids)):
                key = _header_key(broker.model.message.Message("", "", record.header, None, message_id))
                if key is not None:
                    keys[key] = message_id

    def duplicate(self, key, message_id: int) -> bool:
        """True when a message with ``key`` is still in the queue; else
        remember ``message_id`` for it."""
        held = self.keys.get(key)
        if held is not None and self._present(held):
            return True
        self.keys[key] = message_id
        if len(self.keys) > 2 * self.queue.message_count + 1024:
            self._rebuild()  # values of transient messages that left
        return False

    def _present(self, message_id: int) -> bool:
        queue = self.queue
        storage = queue.vhost.storage
        if queue.stored and storage is not None:
            holding = storage.queues_holding(message_id)
            if holding is not None:
                return queue.name in holding
        for entry in queue.ready:
            if entry.message is not None and entry.message.id == message_id:  # None: expired
                return True
        for item in queue.cold:
            if broker.model.message.cold_message_id(item) == message_id:
                return True
        for channel in _channels(queue):
            for entry, q, _c in channel.unacked.values():
                if q is queue and entry.message.id == message_id:
                    return True
        return False


def note_get(queue: "Queue", channel) -> None:
    """basic.get hook: ``channel`` holds an unacked message of the
    deduplicating ``queue`` (looked through by ``QueueDedup._present``)."""
    getters = _GETTERS.get(queue)
    if getters is None:
        getters = _GETTERS[queue] = weakref.WeakSet()
    getters.add(channel)


def _channels(queue: "Queue") -> set:
    """Channels that may hold unacked messages of ``queue``."""
    out = {consumer.channel for consumer in queue.consumers}
    out.update(_GETTERS.get(queue, ()))
    return out


def _header_key(message: "Message"):
    headers = headers_or_none(message)
    if headers is None:
        return None
    value = headers.get(HEADER)
    return None if value is None else key_of(value)


def _record(vhost, message: "Message", holder: str) -> None:
    """Append a persistent duplicate to the WAL under a fresh id and close
    it as deduplicated (it shows up in the message database)."""
    storage = vhost.storage
    if storage is None or delivery_mode(message.header) != 2 or len(holder.encode()) > 255:
        return
    record_id = next(broker.model.message._ids)
    storage.persist_message(record_id, vhost.name, message.exchange, message.routing_key, [holder],
                            message.header, message.body)
    storage.record_removed(record_id, holder, REASON_DEDUPLICATED)


def exchange_duplicate(vhost, exchange, message: "Message") -> bool:
    """True when ``exchange`` is of type x-message-deduplication and has
    seen ``message``'s ``x-deduplication-header`` (the message is then
    dropped whole, copies held at delayed exchanges on the way included,
    and recorded when the exchange is durable); else remember the key."""
    if exchange.type_name != "x-message-deduplication":
        return False
    key = _header_key(message)
    if key is None:
        return False
    ttl = positive_int(message.headers().get("x-cache-ttl"))
    if not cache_for(vhost, exchange).seen(key, ttl):
        return False
    log.debug("vhost '%s' exchange '%s': duplicate %r dropped", vhost.name, exchange.name, key)
    if exchange.durable:
        _record(vhost, message, EXCHANGE_HOLDER + exchange.name)
    return True


def drop_queue_duplicates(vhost, message: "Message", queues):
    """``queues`` without the deduplicating queues (argument
    x-message-deduplication) that still hold a message with the same key."""
    kept = None
    for i, queue in enumerate(queues):
        if queue.arguments.get("x-message-deduplication") is not True:
            if kept is not None:
                kept.append(queue)
            continue
        key = _header_key(message)
        dedup = _QUEUES.get(queue)
        if key is not None and dedup is None:
            dedup = _QUEUES[queue] = QueueDedup(queue)
        if key is not None and dedup.duplicate(key, message.id):
            log.debug("vhost '%s' queue '%s': duplicate %r dropped", vhost.name, queue.name, key)
            if queue.stored:
                _record(vhost, message, queue.name)
            if kept is None:
                kept = list(queues[:i])
        elif kept is not None:
            kept.append(queue)
    return queues if kept is None else kept
