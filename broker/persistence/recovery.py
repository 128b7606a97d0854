"""Start-up recovery: durable exchanges, queues and bindings from the
topology store, then every persistent message still queued, in its original
order, from the WAL (docs/architecture.md, "Durability contract")."""

from __future__ import annotations

import logging
from typing import Callable

from broker.vhost import delayed_scheduler
from broker.vhost.delayed_scheduler import HOLDER_PREFIX
from broker.exchanges import EXCHANGE_TYPES
from broker.model.message import continue_ids_after
from broker.queues.queue import Queue
from broker.persistence.replay_keeper import replay_keeper
from broker.persistence.store import Store
from broker.vhost.namespace import VHost
from storage.live_index import DELIVERED, VHOST, queue_names

log = logging.getLogger(__name__)


def recover(vhosts: dict[str, VHost], store: Store, make_vhost: Callable[[str], VHost]) -> None:
    """Open ``store`` and rebuild the broker state in ``vhosts``; a vhost
    named in the topology but not in ``vhosts`` is made with
    ``make_vhost(name)`` (the server's factory: it gives the vhost the
    store, flow control and deduplication journal) and added.

    Messages delivered but unacknowledged come back with redelivered=true
    (a delivery is sent only once its DELIVERED record is fsynced, see
    Connection.hold_for_sync); messages for queues that no longer exist are dropped
    from the WAL. Raises storage.wal.WalCorruptError (the caller exits
    non-zero) when the log is damaged other than at its tail.
    """
    storage = store.backend
    recovery = storage.open(keep=replay_keeper(storage))
    replayed = storage.replayed
    exchanges, queues, bindings = storage.topology.load()
    for row in exchanges:
        vhost = _vhost(vhosts, row.vhost, make_vhost)
        cls = EXCHANGE_TYPES.get(row.type)
        if cls is None:
            log.error("vhost '%s': stored exchange '%s' has unknown type '%s', skipped", row.vhost, row.name, row.type)
            continue
        vhost.add_exchange(cls(row.name, True, row.auto_delete, row.internal, row.arguments), store=False)
    for row in queues:
        vhost = _vhost(vhosts, row.vhost, make_vhost)
        vhost.add_queue(Queue(vhost, row.name, True, None, row.auto_delete, row.arguments), store=False)
    for row in bindings:
        vhost = _vhost(vhosts, row.vhost, make_vhost)
        source = vhost.exchanges.get(row.source)
        destination = (vhost.queues if row.destination_kind == "queue" else vhost.exchanges).get(row.destination)
        if source is None or destination is None:
            log.warning("vhost '%s': stored binding %s -> %s skipped, an end is missing", row.vhost, row.source,
                        row.destination)
            continue
        vhost.bind(source, destination, row.routing_key, row.arguments, store=False)
    restored = 0
    live = storage.live
    held: list[tuple[str, str, int]] = []  # (vhost, holder, message id): broker/vhost/delayed_scheduler.py
    queue_of: dict[tuple, Queue | None] = {}  # (vhost, name) -> stored queue, looked up once
    for message_id in recovery.message_ids:
        entry = live.get(message_id)
        if entry is None:
            continue
        delivered = entry[DELIVERED] or ()
        for name in queue_names(entry):
            if name.startswith(HOLDER_PREFIX):  # held by an x-delayed-message exchange
                held.append((entry[VHOST], name, message_id))
                continue
            key = (entry[VHOST], name)
            queue = queue_of.get(key, False)
            if queue is False:
                vhost = vhosts.get(entry[VHOST])
                queue = queue_of[key] = vhost.queues.get(name) if vhost is not None else None
            if queue is None or not queue.stored:
                storage.forget_queue(message_id, name)
                continue
            queue.restore(message_id, name in delivered, replayed.get(message_id))
            restored += 1
    replayed.clear()
    delayed_scheduler.restore(vhosts, store, held)
    continue_ids_after(recovery.max_message_id)
    log.info("recovery: %d messages in %d queues from %d WAL segments (%d records) in %.2f s; "
             "%d exchanges, %d bindings; previous shutdown %s", restored, len(queues), recovery.segments,
             recovery.records, recovery.seconds, len(exchanges), len(bindings),
             "clean" if recovery.clean else "unclean (crash or kill)")


def _vhost(vhosts: dict[str, VHost], name: str, make_vhost: Callable[[str], VHost]) -> VHost:
    vhost = vhosts.get(name)
    if vhost is None:
        vhost = vhosts[name] = make_vhost(name)
    return vhost
