"""POST ``/api/exchanges/vh/x/publish`` and ``/api/queues/vh/q/get``, as
rabbit_mgmt_wm_exchange_publish and rabbit_mgmt_wm_queue_get.

A publish goes through the vhost's one publish pipeline
(broker/vhost/publish.py), exactly as a basic.publish; the answer
``{"routed": bool}`` comes after the WAL fsync when the message was
stored (the durability contract of docs/architecture.md). A get takes up
to ``count`` messages as basic.get does, then per ``ackmode``
(``ack_requeue_true``, ``reject_requeue_true``: all put back, redelivered;
``ack_requeue_false``: gone; ``reject_requeue_false``: dead-lettered, or
gone) after the WAL fsync of the delivery records."""

from __future__ import annotations

import base64
import binascii

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.admin.audit import audit
from broker.control.queue_commands import field_json
from broker.management import http
from broker.management.auth import require
from broker.management.routing import Call, Routes
from broker.management.topology import DEFAULT_EXCHANGE, find_exchange, find_queue
from broker.model.message import Message
from broker.model.reasons import REASON_REJECTED
from broker.vhost.publish import STORED, UNROUTABLE

#: API property name -> pamqp's (the AMQP ``type`` property is message_type there)
_PROPERTY_NAMES = {name: name for name in Basic.Properties.attributes()}
_PROPERTY_NAMES["type"] = "message_type"
del _PROPERTY_NAMES["message_type"]
_ACKMODES = ("ack_requeue_true", "ack_requeue_false", "reject_requeue_true", "reject_requeue_false")


def register(routes: Routes) -> None:
    routes.add("POST", "/exchanges/{vhost}/{name}/publish", publish)
    routes.add("POST", "/queues/{vhost}/{name}/get", get)


def _properties(document: dict) -> Basic.Properties:
    """pamqp properties from the API's ``properties`` object (400 for an
    unknown or badly typed one; delivery_mode and priority as strings too)."""
    given = http.table(document, "properties")
    values = {}
    for key, value in given.items():
        name = _PROPERTY_NAMES.get(key)
        if name is None:
            raise http.bad_request(f"unknown message property '{key}'")
        if name in ("delivery_mode", "priority", "timestamp"):
            value = http.integer(given, key, 0)
        values[name] = value
    try:
        return Basic.Properties(**values)
    except (TypeError, ValueError) as exc:
        raise http.bad_request(f"invalid message properties: {exc}") from None


def _payload(document: dict) -> bytes:
    payload = http.text(document, "payload", "")
    encoding = http.text(document, "payload_encoding", "string")
    if encoding == "string":
        return payload.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise http.bad_request("payload is not valid base64") from None
    raise http.bad_request(f"payload_encoding must be string or base64, not '{encoding}'")


async def publish_message(server, vhost_name: str, exchange, routing_key: str, properties: Basic.Properties,
                          body: bytes) -> bool:
    """Publish one message to ``exchange`` of ``vhost_name`` through the
    publish pipeline; True when it was routed. Returns once a stored
    message is fsynced."""
    vhost = server.vhosts[vhost_name]
    header = ContentHeader(0, len(body), properties).marshal()
    message = Message(exchange.name, routing_key, header, body)
    outcome = vhost.publish(exchange, message)
    if outcome & STORED:
        await vhost.storage.sync()
    return not outcome & UNROUTABLE


async def publish(call: Call, vhost: str, name: str):
    document = await http.body(call.request)
    exchange = find_exchange(call, vhost, name)
    require(call, vhost, "write", "exchange", exchange.name)
    if exchange.internal:
        raise http.bad_request(f"cannot publish to internal exchange '{name}' in vhost '{vhost}'")
    routing_key = http.text(document, "routing_key")
    routed = await publish_message(call.server, vhost, exchange, routing_key, _properties(document),
                                   _payload(document))
    audit(call.actor, "publish", f"vhost '{vhost}' exchange '{name or DEFAULT_EXCHANGE}' routing key "
                                 f"'{routing_key}' (routed: {routed})")
    return http.answer({"routed": routed})


def render_properties(message: Message) -> dict:
    """The message's properties with the API's names, the unset ones left out."""
    properties = message.properties
    rendered = {}
    for key, name in _PROPERTY_NAMES.items():
        value = getattr(properties, name, None)
        if value is None or (name == "cluster_id" and not value):  # pamqp's default ""
            continue
        if hasattr(value, "timestamp"):
            value = int(value.timestamp())
        rendered[key] = field_json(value)
    return rendered


def render_body(body: bytes, encoding: str) -> dict:
    """``{"payload", "payload_encoding"}``: UTF-8 text when ``encoding`` is
    "auto" and the body is valid UTF-8, else base64."""
    if encoding == "auto":
        try:
            return {"payload": body.decode("utf-8"), "payload_encoding": "string"}
        except UnicodeDecodeError:
            pass
    return {"payload": base64.b64encode(body).decode(), "payload_encoding": "base64"}


def _rendered(entry, left: int, redelivered: bool, encoding: str, truncate: int | None) -> dict:
    message = entry.message
    body = message.body or b""
    row = {"payload_bytes": len(body), "redelivered": redelivered, "exchange": message.exchange,
           "routing_key": message.routing_key, "message_count": left, "properties": render_properties(message)}
    row.update(render_body(body if truncate is None else body[:truncate], encoding))
    return row


async def take_messages(server, queue, count: int, ackmode: str) -> list:
    """Up to ``count`` (entry, messages left, redelivered flag as taken) of ``queue`` settled per
    ``ackmode``; returns once their WAL records are fsynced."""
    taken = []
    stored = False
    if queue.lifecycle is not None:
        queue.lifecycle.used()  # x-expires
    no_ack = ackmode == "ack_requeue_false"
    while len(taken) < count:
        entry = queue.get()
        if entry is None:
            break
        stored |= queue.delivered(entry, "", no_ack)
        taken.append((entry, queue.message_count, entry.redelivered))
    entries = [entry for entry, _left, _redelivered in taken]
    if ackmode in ("ack_requeue_true", "reject_requeue_true"):
        queue.requeue(entries)
        queue.schedule_drain()
    elif ackmode == "reject_requeue_false":
        for entry in entries:
            if queue.lifecycle is None or not queue.lifecycle.rejected(entry):
                queue.removed(entry, REASON_REJECTED)
    if stored and queue.vhost.storage is not None:
        await queue.vhost.storage.sync()
    return taken


async def get(call: Call, vhost: str, name: str):
    document = await http.body(call.request)
    queue = find_queue(call, vhost, name)
    require(call, vhost, "read", "queue", name)
    count = http.integer(document, "count", 1)
    ackmode = http.text(document, "ackmode", "ack_requeue_true")
    if ackmode not in _ACKMODES:
        raise http.bad_request(f"ackmode must be one of {', '.join(_ACKMODES)}")
    encoding = http.text(document, "encoding", "auto")
    if encoding not in ("auto", "base64"):
        raise http.bad_request("encoding must be auto or base64")
    truncate = http.integer(document, "truncate", 0) if "truncate" in document else None
    if count < 1:
        raise http.bad_request("count must be greater than 0")
    taken = await take_messages(call.server, queue, count, ackmode)
    audit(call.actor, "get", f"vhost '{vhost}' queue '{name}': {len(taken)} messages ({ackmode})")
    return http.answer([_rendered(entry, left, redelivered, encoding, truncate)
                        for entry, left, redelivered in taken])
