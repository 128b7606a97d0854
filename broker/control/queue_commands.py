"""``queues.list``: every queue of the running broker with its depth, as
``rabbitmqctl list_queues name type messages_ready
messages_unacknowledged consumers arguments`` shows them
(rabbitmq.com/docs/cli, rabbitmqctl list_queues)."""

from __future__ import annotations

import base64
import datetime
import decimal

from broker.control.registry import Registry, argument
from broker.control.wire import NOT_FOUND, ControlError


def register(registry: Registry) -> None:
    """Add the queue commands to ``registry``."""
    registry.add("queues.list", list_queues,
                 "queues with vhost, type, ready, unacked, consumers, arguments; args: vhost (optional)")


def list_queues(context, args: dict) -> list[dict]:
    """``[{"vhost", "name", "type", "durable", "auto_delete", "exclusive",
    "ready", "unacked", "consumers", "arguments"}]`` sorted by vhost and
    name. ``context`` has ``vhosts`` (name -> VHost) and ``connections``
    (whose channels' ``unacked`` maps count the unacknowledged
    deliveries). Args: ``vhost`` (str, optional: only that one; 404 when it
    does not exist)."""
    vhost_name = argument(args, "vhost", str, None)
    vhosts = context.vhosts
    if vhost_name is not None:
        if vhost_name not in vhosts:
            raise ControlError(f"no vhost {vhost_name!r}", NOT_FOUND)
        vhosts = {vhost_name: vhosts[vhost_name]}
    unacked = _unacked_by_queue(context.connections)
    rows = []
    for name, vhost in sorted(vhosts.items()):
        for queue in sorted(vhost.queues.values(), key=lambda q: q.name):
            rows.append({
                "vhost": name, "name": queue.name,
                "type": field_json(queue.arguments.get("x-queue-type", "classic")),
                "durable": queue.durable, "auto_delete": queue.auto_delete,
                "exclusive": queue.exclusive_owner is not None,
                "ready": queue.message_count, "unacked": unacked.get(id(queue), 0),
                "consumers": queue.consumer_count, "arguments": field_json(queue.arguments),
            })
    return rows


def _unacked_by_queue(connections) -> dict[int, int]:
    """id(queue) -> deliveries waiting for an ack on any channel."""
    counts: dict[int, int] = {}
    for connection in list(connections):
        for channel in list(connection.channels.values()):
            for _entry, queue, _consumer in channel.unacked.values():
                counts[id(queue)] = counts.get(id(queue), 0) + 1
    return counts


def field_json(value: object) -> object:
    """An AMQP field value (pamqp's decoding, AMQP 0-9-1 §4.2.5.5) as a JSON
    value: tables and arrays recursively, bytes as UTF-8 text (else
    ``{"base64": ...}``), decimals as strings, timestamps as ISO-8601."""
    if isinstance(value, dict):
        return {str(k): field_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [field_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    return value
