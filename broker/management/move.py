"""POST ``/api/queues/vh/q/move``: move ready messages from a queue to
another queue or an exchange (e.g. from a dead-letter queue back to work),
losing none. Body: ``{"destination": NAME, "destination_type": "queue" |
"exchange", "count": N}`` (count: at most that many; default all that are
ready when the move starts). Answer ``{"moved": n, "routed": r}``.

The order that loses nothing, per batch of BATCH messages: each message
is taken as basic.get takes it (its delivery recorded in the WAL), its copy
is published to the destination through the publish pipeline, the WAL is
fsynced, and only then are the originals removed (fsynced again before the
answer). A crash between the two fsyncs leaves a message in both places:
the original comes back flagged redelivered, as any delivery not acked
before a crash. A copy to a queue goes through the default exchange with
the queue's name as routing key (as a shovel moves messages); a copy to an
exchange is routed by the original routing key. The originals are
recorded as acknowledged (the message database shows them ``acked``, their
copies as new messages). A missing destination is refused (404) before anything moves; a destination
that is the source is 400."""

from __future__ import annotations

from broker.admin.audit import audit
from broker.management import http
from broker.management.auth import require
from broker.management.routing import Call, Routes
from broker.management.topology import find_exchange, find_queue
from broker.model.message import Message
from broker.model.reasons import REASON_ACKED
from broker.vhost.publish import UNROUTABLE

#: messages per fsync pair
BATCH = 200


def register(routes: Routes) -> None:
    routes.add("POST", "/queues/{vhost}/{name}/move", move)


async def move(call: Call, vhost: str, name: str):
    document = await http.body(call.request)
    source = find_queue(call, vhost, name)
    require(call, vhost, "read", "queue", name)
    kind = http.text(document, "destination_type", "queue")
    target = http.text(document, "destination")
    namespace = call.server.vhosts[vhost]
    if kind == "queue":
        destination_queue = find_queue(call, vhost, target)
        if destination_queue is source:
            raise http.bad_request("the destination is the source queue")
        require(call, vhost, "write", "queue", target)
        exchange = namespace.exchanges[""]
    elif kind == "exchange":
        destination_queue = None
        exchange = find_exchange(call, vhost, target)
        require(call, vhost, "write", "exchange", exchange.name)
    else:
        raise http.bad_request("destination_type must be queue or exchange")
    limit = http.integer(document, "count", source.message_count)
    if limit < 0:
        raise http.bad_request("count must not be negative")
    moved = routed = 0
    while moved < limit:
        batch = []
        while len(batch) < min(BATCH, limit - moved):
            entry = source.get()
            if entry is None:
                break
            source.delivered(entry, "", False)
            batch.append(entry)
        if not batch:
            break
        try:
            for entry in batch:
                original = entry.message
                routing_key = target if destination_queue is not None else original.routing_key
                copy = Message(exchange.name, routing_key, original.header, original.body)
                routed += not namespace.publish(exchange, copy) & UNROUTABLE
            if namespace.storage is not None:
                await namespace.storage.sync()  # the copies are durable before the originals go
        except BaseException:
            # a failed fsync or a cancelled request: the originals go back,
            # flagged redelivered (some may have a copy: duplicated, not lost)
            source.requeue(batch)
            source.schedule_drain()
            raise
        for entry in batch:
            source.removed(entry, REASON_ACKED)
        if namespace.storage is not None:
            await namespace.storage.sync()
        moved += len(batch)
    audit(call.actor, "move", f"vhost '{vhost}' queue '{name}' -> {kind} '{target}': {moved} messages "
                              f"({routed} routed)")
    return http.answer({"moved": moved, "routed": routed})
