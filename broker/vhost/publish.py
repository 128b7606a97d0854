"""The publish pipeline (docs/architecture.md, "One publish"): ``publish`` is the one
way a message enters queues, whoever sends it: basic.publish (general path
and route cache), tx.commit, a dead-lettered copy, a message falling due at
a delayed-message exchange, a publish without any channel (management).

Like RabbitMQ's queue-type "actions" (rabbit_queue_type: deliver returns
actions that the channel then carries out), it never talks to a channel: it
returns an outcome, a small int of bit flags, and the session layer turns
that into basic.return and the publisher confirm
(broker/session/publish_answer.py). 0 is the common case: routed, not
written to the WAL, nobody refused it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from broker.model.message_headers import has_delivery_mode
from broker.queues import limits as queue_limits
from broker.queues.dead_letter import REJECTED, is_cycle
from broker.vhost import deduplication, delayed_scheduler, sender_selected
from broker.vhost.delayed_copies import hold_copies
from protocol.hot_methods import delivery_mode

if TYPE_CHECKING:
    from broker.exchanges import Exchange
    from broker.model.message import Message

log = logging.getLogger(__name__)

#: no queue took the message after routing and deduplication (a queue
#: refusing it by its length limit still counts as routed), or a delayed
#: exchange it was published to holds it: a mandatory publish gets
#: basic.return 312 NO_ROUTE (spec §1.8.3.8)
UNROUTABLE = 1
#: written to the WAL: a publisher confirm waits for the fsync
STORED = 2
#: a queue refused it (x-overflow reject-publish or reject-publish-dlx,
#: rabbitmq.com/maxlength.html): the publisher confirm is basic.nack, and
#: tx.commit fails 406
REFUSED = 4
#: held at a delayed-message exchange (published to one, or met on the way)
HELD = 8


class CachedRoute(Protocol):
    """A route computed earlier for the same exchange and routing key
    (broker.session.route_cache.Route): ``queues`` is what ``VHost.route``
    would answer (a tuple, each queue once; no CC/BCC, alternate or
    delayed-message exchange involved); ``plain`` is True when no queue has
    per-publish rules (x-message-deduplication, x-overflow); ``stored``
    is True when a queue keeps persistent messages."""

    queues: tuple
    plain: bool
    stored: bool


def publish(vhost, exchange: "Exchange | None", message: "Message", cached: CachedRoute | None = None,
            keys: list[str] | None = None, death: tuple[str, str, list] | None = None) -> int:
    """Route ``message`` from ``exchange`` (None: the exchange named
    ``message.exchange``; a missing one drops the message, as RabbitMQ
    drops a copy whose dead-letter exchange is gone) and enqueue it; return
    the outcome flags (UNROUTABLE | STORED | REFUSED | HELD).

    ``cached``: the route cache's answer, so that routing is skipped (for a
    plain route, everything but persisting and enqueueing is). ``keys``:
    extra routing keys already known (a dead-lettered copy's CC/BCC keys)
    instead of the message's CC/BCC headers. ``death``: ``(reason, queue it
    left, its x-death list)`` for a dead-lettered copy
    (broker/queues/dead_letter.copy_message).

    Steps, in order: a message with ``x-delay`` published to a
    delayed-message exchange is held there (not a dead-lettered copy, which
    meets the exchange on its way instead); routing (CC/BCC keys,
    rabbitmq.com/sender-selected.html; delayed-message exchanges on the way
    collect held copies, broker/vhost/delayed_copies.py); a duplicate at an
    x-message-deduplication exchange is dropped whole; copies are held;
    deduplicating queues drop duplicates (broker/vhost/deduplication.py); a
    dead-lettered copy skips the queues it would cycle into unless it was
    rejected (rabbitmq.com/dlx.html); queues whose x-overflow refuses it are
    left out (broker/queues/limits.admit); it is persisted once for the
    stored queues, then enqueued. Raises 406 PRECONDITION_FAILED (channel
    error) for a CC or BCC header that is not an array."""
    if cached is not None:
        queues = cached.queues
        if cached.plain:
            if not queues:
                return UNROUTABLE
            # delivery-mode present (property flag 0x1000) before persist looks at it
            outcome = (STORED if cached.stored and has_delivery_mode(message.header) and persist(vhost, message, queues)
                       else 0)
            for queue in queues:
                queue.enqueue(message)
            return outcome
        outcome = 0
    else:
        if exchange is None:
            exchange = vhost.exchanges.get(message.exchange)
            if exchange is None:
                log.debug("vhost '%s': exchange '%s' missing, message%s dropped", vhost.name, message.exchange,
                          f" dead-lettered from queue '{death[1]}'" if death else "")
                return UNROUTABLE
        if exchange.delays and death is None:
            stored = delayed_scheduler.hold(vhost, exchange, message)
            if stored is not None:
                # the plugin's route returns no queues for a held message
                return (UNROUTABLE | HELD | STORED) if stored else (UNROUTABLE | HELD)
        held: list = []
        if keys is None:
            queues = vhost.route(exchange, message, held)
        else:
            queues = sender_selected.route(vhost, exchange, message, keys, held)
        if deduplication.exchange_duplicate(vhost, exchange, message):
            return UNROUTABLE  # copies held on the way are dropped too
        outcome = 0
        if held:
            outcome = (HELD | STORED) if hold_copies(vhost, message, held) else HELD
    if queues:
        queues = deduplication.drop_queue_duplicates(vhost, message, queues)
    if queues and death is not None and death[0] != REJECTED:
        queues = _without_cycles(vhost, queues, death)
    if not queues:
        return outcome | UNROUTABLE
    queues, refused = queue_limits.admit(queues, message)
    if refused:
        outcome |= REFUSED
    if queues and persist(vhost, message, queues):
        outcome |= STORED
    for queue in queues:
        queue.enqueue(message)
    return outcome


def _without_cycles(vhost, queues, death: tuple[str, str, list]) -> list:
    """``queues`` without those a dead-lettered copy would cycle into
    (rabbit_dead_letter:detect_cycles; dlx.html: a fully automatic cycle is
    dropped)."""
    reason, from_queue, deaths = death
    kept = []
    for queue in queues:
        if is_cycle(queue.name, deaths):
            log.warning("vhost '%s': dead-letter cycle detected, message from queue '%s' not republished "
                        "to queue '%s'", vhost.name, from_queue, queue.name)
        else:
            kept.append(queue)
    return kept


def persist(vhost, message: "Message", queues) -> bool:
    """Append a persistent message (delivery-mode 2) to the WAL once, naming
    the durable queues among ``queues`` (docs/architecture.md, "One publish", step 4.6);
    True when it was written (its confirm must then wait for the fsync)."""
    if delivery_mode(message.header) != 2 or vhost.storage is None:
        return False
    names = [queue.name for queue in queues if queue.stored]
    if not names:
        return False
    vhost.storage.persist_message(message.id, vhost.name, message.exchange, message.routing_key,
                                  names, message.header, message.body)
    message.stored = True
    return True
