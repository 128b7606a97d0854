"""``Store``: the adapter through which the broker writes to and reads from
its storage (``storage.Storage``, storage/facade.py). ``VHost.storage``
holds one (None for a broker without storage), so the lower layers
(vhosts, queues, exchanges, sessions) never import ``storage``
(docs/architecture.md, "Layers"); they see it through
``broker.model.message_store.MessageStore``.

Per-message operations are the storage's own bound methods, set as
attributes: the adapter adds no call layer on the publish, delivery and
ack paths. Topology writes take broker objects and build the
``storage.topology`` rows here.

At import the module checks that ``broker.model.reasons`` names the WAL's
removal reasons with the WAL's own values (ImportError otherwise): the
broker hands those values to the WAL as they are."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import storage.wal
from broker.exchanges import Exchange
from broker.model import reasons
from storage import Storage
from storage.live_index import queue_names
from storage.topology import BindingRow, ExchangeRow, QueueRow
from storage.wal import WalCorruptError, WalError

if TYPE_CHECKING:
    from broker.queues.queue import Queue

__all__ = ["Store", "WalError", "WalCorruptError", "check_reasons"]


def check_reasons(ours: ModuleType, wal: ModuleType) -> None:
    """Raise ImportError naming every ``REASON_*`` (and ``REASON_NAMES``)
    of ``ours`` (broker.model.reasons) whose value differs from, or is
    missing in, ``wal`` (storage.wal), and every one ``wal`` has that
    ``ours`` lacks."""
    names = {name for module in (ours, wal) for name in vars(module) if name.startswith("REASON_")}
    missing = object()
    wrong = sorted(name for name in names if getattr(ours, name, missing) != getattr(wal, name, missing))
    if wrong:
        details = ", ".join(f"{name} = {getattr(ours, name, '(absent)')!r} in broker.model.reasons, "
                            f"{getattr(wal, name, '(absent)')!r} in storage.wal" for name in wrong)
        raise ImportError(f"removal reasons disagree between broker.model.reasons and storage.wal: {details}")


check_reasons(reasons, storage.wal)


class Store:
    """The broker's handle on one ``storage.Storage`` (``backend``: for
    ``broker.persistence`` only). Messages are named by their broker
    message id, queues by name; ``reason`` is a ``broker.model.reasons``
    REASON_* value.

    The per-message operations are the storage's bound methods (same
    contracts as storage/facade.py; reads raise KeyError for a message no
    durable queue holds any more):

    * ``persist_message(message_id, vhost, exchange, routing_key, queues,
      header, body)``: durable once a later ``sync_soon`` callback runs;
    * ``record_delivered(message_id, queue, consumer_tag="",
      delivery_count=1)``, ``record_requeued(message_id, queue)``,
      ``record_removed(message_id, queue, reason)``, and
      ``forget_queue(message_id, queue)`` (recovery: the queue is gone);
    * ``read_message(message_id)`` (a ``MessageRecord``: exchange,
      routing_key, header, body, at_ms...), ``read_messages(message_ids)``
      (one pread per run of neighbouring records),
      ``read_for_delivery(message_ids)`` (``(exchange, routing_key,
      exchange_routing_key, header, body)`` per id);
    * ``delivery_count(message_id, queue)``: times the unsettled message
      was handed out from ``queue`` (>= 1), across restarts;
    * ``sync_soon(callback)``: ``callback()`` once everything recorded so
      far is fsynced.

    ``fsync``: False when the WAL never fsyncs (benchmarks only)."""

    def __init__(self, storage: Storage):
        self.backend = storage
        self.fsync = storage.fsync
        # per-message paths (publish, delivery, ack, requeue, expiry): the
        # storage's bound methods, so the adapter adds no call layer
        self.persist_message = storage.persist_message
        self.record_delivered = storage.record_delivered
        self.record_requeued = storage.record_requeued
        self.record_removed = storage.record_removed
        self.forget_queue = storage.forget_queue
        self.read_message = storage.read_message
        self.read_messages = storage.read_messages
        self.read_for_delivery = storage.read_for_delivery
        self.delivery_count = storage.delivery_count
        self.sync_soon = storage.sync_soon

    @classmethod
    def in_directory(cls, data_dir: Path, *, fsync: bool = True, segment_size: int = 64 << 20) -> "Store":
        """A store on ``<data_dir>/wal`` and ``<data_dir>/topology.db``
        (not opened yet: broker.persistence.recovery opens it).
        ``segment_size``: WAL segment size in bytes."""
        return cls(Storage(data_dir, fsync=fsync, segment_size=segment_size))

    # ---- messages --------------------------------------------------------

    def queues_holding(self, message_id: int) -> tuple[str, ...] | None:
        """The names of the durable queues (and holders) that still hold
        the stored message ``message_id``; None when it is not stored or
        every queue has let it go."""
        entry = self.backend.live.get(message_id)
        return None if entry is None else queue_names(entry)

    async def sync(self) -> None:
        """Wait until everything recorded so far is fsynced. Raises
        WalError when the disk write fails."""
        await self.backend.sync()

    async def compact(self) -> int:
        """One WAL compaction pass; the number of segments deleted. Raises
        WalError."""
        return await self.backend.compact()

    def wal_stats(self) -> dict:
        """The WAL's counters (storage.wal.log.WriteAheadLog.stats: bytes
        written, fsyncs, the fsync latency buckets, the deletion floor the
        message database holds) for the metrics."""
        return self.backend.wal.stats

    def close(self) -> None:
        """Append the clean-shutdown record, fsync the WAL, close the
        topology database. Raises WalError when the last write fails."""
        self.backend.close()

    # ---- topology (durable exchanges, queues, bindings) -----------------

    def save_exchange(self, vhost: str, exchange: Exchange) -> None:
        """Store the declaration of the durable ``exchange`` of ``vhost``
        (rabbitmq.com/exchanges.html, durability). Raises sqlite3.Error."""
        self.backend.topology.save_exchange(ExchangeRow(vhost, exchange.name, exchange.type_name,
                                                        exchange.auto_delete, exchange.internal,
                                                        exchange.arguments))

    def delete_exchange(self, vhost: str, name: str) -> None:
        """Forget the stored exchange ``name`` of ``vhost``."""
        self.backend.topology.delete_exchange(vhost, name)

    def save_queue(self, vhost: str, queue: "Queue") -> None:
        """Store the declaration of the durable ``queue`` of ``vhost``
        (rabbitmq.com/queues.html#durability). Raises sqlite3.Error."""
        self.backend.topology.save_queue(QueueRow(vhost, queue.name, queue.auto_delete, queue.arguments))

    def delete_queue(self, vhost: str, name: str) -> None:
        """Forget the stored queue ``name`` of ``vhost``."""
        self.backend.topology.delete_queue(vhost, name)

    def save_binding(self, vhost: str, source: Exchange, destination, binding_key: str,
                     arguments: dict) -> None:
        """Store a binding from ``source`` to ``destination`` (a queue or,
        exchange-to-exchange, an exchange). Raises sqlite3.Error."""
        self.backend.topology.save_binding(_binding_row(vhost, source, destination, binding_key, arguments))

    def delete_binding(self, vhost: str, source: Exchange, destination, binding_key: str,
                       arguments: dict) -> None:
        """Forget a stored binding (same arguments as ``save_binding``)."""
        self.backend.topology.delete_binding(_binding_row(vhost, source, destination, binding_key, arguments))


def _binding_row(vhost: str, source: Exchange, destination, binding_key: str, arguments: dict) -> BindingRow:
    kind = "exchange" if isinstance(destination, Exchange) else "queue"
    return BindingRow(vhost, source.name, destination.name, kind, binding_key, arguments)
