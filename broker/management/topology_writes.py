"""The topology writes: PUT/DELETE ``/api/exchanges/vh/x`` and
``/api/queues/vh/q``, POST ``/api/bindings/vh/e/src/q|e/dst`` (201 with
the new binding's properties key in ``Location``), DELETE
``/api/bindings/vh/e/src/q|e/dst/props``, DELETE
``/api/queues/vh/q/contents`` (purge), with the checks of the AMQP
methods they stand for (AMQP 0-9-1 §1.6, §1.7; RabbitMQ 3.10's
rabbit_mgmt_wm_exchange, rabbit_mgmt_wm_queue, rabbit_mgmt_wm_binding,
rabbit_mgmt_wm_queue_purge): the caller's configure/write/read permission
(401), reserved ``amq.`` names, unknown types and invalid arguments, an
inequivalent re-declare (400 with the AMQP text). A PUT answers 201 when
it created the object, 204 when it existed; every change writes one audit
line (broker/admin/audit.py)."""

from __future__ import annotations

from broker.admin.audit import audit
from broker.control.queue_commands import field_json
from broker.exchanges import EXCHANGE_TYPES
from broker.management import http
from broker.management.auth import require, vhost_grant
from broker.management.routing import Call, Routes
from broker.management.topology import (DEFAULT_EXCHANGE, find_exchange, find_queue, matching_bindings,
                                         properties_key)
from broker.queues import arguments as queue_arguments
from broker.queues.queue import Queue
from protocol.errors import AMQPError


def register(routes: Routes) -> None:
    routes.add("PUT", "/exchanges/{vhost}/{name}", put_exchange)
    routes.add("DELETE", "/exchanges/{vhost}/{name}", delete_exchange)
    routes.add("PUT", "/queues/{vhost}/{name}", put_queue)
    routes.add("DELETE", "/queues/{vhost}/{name}", delete_queue)
    routes.add("DELETE", "/queues/{vhost}/{name}/contents", purge_queue)
    routes.add("POST", "/bindings/{vhost}/e/{source}/{kind}/{destination}", add_binding)
    routes.add("DELETE", "/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}", delete_binding)


def _query_flag(call: Call, key: str) -> bool:
    return call.query.get(key, "false").lower() == "true"


# ---- exchanges ----------------------------------------------------------------

async def put_exchange(call: Call, vhost: str, name: str):
    document = await http.body(call.request)
    if name in ("", DEFAULT_EXCHANGE):
        raise http.ApiError(403, "access_refused", "operation not permitted on the default exchange")
    require(call, vhost, "configure", "exchange", name)
    type_name = http.text(document, "type", "direct")
    cls = EXCHANGE_TYPES.get(type_name)
    if cls is None:
        raise http.bad_request(f"invalid exchange type '{type_name}'")
    durable = http.flag(document, "durable", True)
    auto_delete = http.flag(document, "auto_delete", False)
    internal = http.flag(document, "internal", False)
    arguments = http.table(document, "arguments")
    namespace = call.server.vhosts[vhost]
    existing = namespace.exchanges.get(name)
    if existing is not None:
        field = existing.equivalent(type_name, durable, auto_delete, internal, arguments)
        if field is not None:
            raise http.bad_request(f"inequivalent arg '{field}' for exchange '{name}' in vhost '{vhost}'")
        return http.no_content()
    if name.startswith("amq."):
        raise http.ApiError(403, "access_refused", f"exchange name '{name}' contains reserved prefix 'amq.*'")
    try:
        exchange = cls(name, durable, auto_delete, internal, arguments)
    except AMQPError as exc:
        raise http.bad_request(exc.text) from None
    namespace.add_exchange(exchange)
    audit(call.actor, "declare_exchange", f"vhost '{vhost}' exchange '{name}' ({type_name}, durable={durable} "
                                          f"auto_delete={auto_delete} internal={internal})")
    return http.created()


async def delete_exchange(call: Call, vhost: str, name: str):
    exchange = find_exchange(call, vhost, name)
    if exchange.name == "" or exchange.name.startswith("amq."):
        raise http.ApiError(403, "access_refused",
                            f"deletion of system exchange '{name}' in vhost '{vhost}' not allowed")
    require(call, vhost, "configure", "exchange", exchange.name)
    if _query_flag(call, "if-unused") and exchange.has_bindings():
        raise http.bad_request(f"exchange '{name}' in vhost '{vhost}' in use")
    call.server.vhosts[vhost].delete_exchange(exchange)
    audit(call.actor, "delete_exchange", f"vhost '{vhost}' exchange '{name}'")
    return http.no_content()


# ---- queues -------------------------------------------------------------------

def _inequivalent(queue, durable: bool, auto_delete: bool, arguments: dict) -> str | None:
    if queue.durable != durable:
        return "durable"
    if queue.auto_delete != auto_delete:
        return "auto_delete"
    mine, theirs = field_json(queue.arguments), field_json(arguments)
    for key in sorted(set(mine) | set(theirs)):
        if mine.get(key) != theirs.get(key):
            return key
    return None


async def put_queue(call: Call, vhost: str, name: str):
    document = await http.body(call.request)
    require(call, vhost, "configure", "queue", name)
    durable = http.flag(document, "durable", True)
    auto_delete = http.flag(document, "auto_delete", False)
    arguments = http.table(document, "arguments")
    namespace = call.server.vhosts[vhost]
    existing = namespace.queues.get(name)
    if existing is not None:
        field = _inequivalent(existing, durable, auto_delete, arguments)
        if field is not None:
            raise http.bad_request(f"inequivalent arg '{field}' for queue '{name}' in vhost '{vhost}'")
        return http.no_content()
    if not name:
        raise http.bad_request("queue name must not be empty")
    if name.startswith("amq."):
        raise http.ApiError(403, "access_refused", f"queue name '{name}' contains reserved prefix 'amq.*'")
    try:
        queue_arguments.validate(name, vhost, arguments)
        call.server.access.check_queue_limit(vhost, len(namespace.queues), name)
    except AMQPError as exc:
        raise http.bad_request(exc.text) from None
    namespace.add_queue(Queue(namespace, name, durable, None, auto_delete, arguments))
    audit(call.actor, "declare_queue", f"vhost '{vhost}' queue '{name}' (durable={durable} "
                                       f"auto_delete={auto_delete} arguments={field_json(arguments)})")
    return http.created()


async def delete_queue(call: Call, vhost: str, name: str):
    queue = find_queue(call, vhost, name)
    require(call, vhost, "configure", "queue", name)
    if queue.exclusive_owner is not None:
        raise http.bad_request(f"cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'")
    if _query_flag(call, "if-unused") and queue.consumers:
        raise http.bad_request(f"queue '{name}' in vhost '{vhost}' in use")
    if _query_flag(call, "if-empty") and queue.message_count:
        raise http.bad_request(f"queue '{name}' in vhost '{vhost}' not empty")
    namespace = call.server.vhosts[vhost]
    count = namespace.delete_queue(queue)
    if queue.stored:
        await namespace.storage.sync()
    audit(call.actor, "delete_queue", f"vhost '{vhost}' queue '{name}' ({count} messages dropped)")
    return http.no_content()


async def purge_queue(call: Call, vhost: str, name: str):
    """Drop the ready messages; answered once the purge records are fsynced
    (purged messages do not come back after a crash, as queue.purge-ok)."""
    queue = find_queue(call, vhost, name)
    require(call, vhost, "read", "queue", name)
    count = queue.purge()
    if queue.stored and count:
        await queue.vhost.storage.sync()
    audit(call.actor, "purge_queue", f"vhost '{vhost}' queue '{name}' ({count} messages dropped)")
    return http.no_content()


# ---- bindings -----------------------------------------------------------------

def _ends(call: Call, vhost: str, source: str, kind: str, destination: str):
    """(source exchange, destination, its kind name) after the permission
    checks of queue.bind / exchange.bind (read on the source, write on the
    destination; 401), 404 for a missing end, 403 for the default exchange."""
    vhost_grant(call, vhost)
    if source in ("", DEFAULT_EXCHANGE):
        raise http.ApiError(403, "access_refused", "operation not permitted on the default exchange")
    exchange = find_exchange(call, vhost, source)
    if kind not in ("q", "e"):
        raise http.not_found()
    namespace = call.server.vhosts[vhost]
    target = (namespace.queues if kind == "q" else namespace.exchanges).get(destination)
    if target is None:
        raise http.not_found()
    kind_name = "queue" if kind == "q" else "exchange"
    require(call, vhost, "write", kind_name, destination)
    require(call, vhost, "read", "exchange", source)
    return exchange, target, kind_name


async def add_binding(call: Call, vhost: str, source: str, kind: str, destination: str):
    document = await http.body(call.request)
    exchange, target, kind_name = _ends(call, vhost, source, kind, destination)
    routing_key = http.text(document, "routing_key", "")
    arguments = http.table(document, "arguments")
    try:
        call.server.vhosts[vhost].bind(exchange, target, routing_key, arguments)
    except AMQPError as exc:
        raise http.bad_request(exc.text) from None
    audit(call.actor, "bind", f"vhost '{vhost}' exchange '{source}' -> {kind_name} '{destination}' "
                              f"(routing key '{routing_key}')")
    response = http.created()
    response.headers["Location"] = properties_key(routing_key, arguments)
    return response


async def delete_binding(call: Call, vhost: str, source: str, kind: str, destination: str, props: str):
    exchange, target, kind_name = _ends(call, vhost, source, kind, destination)
    for row in matching_bindings(call, vhost, source, kind, destination):
        if row["properties_key"] == props:
            break
    else:
        raise http.not_found()
    arguments = next((arguments for dest, key, arguments in exchange.bindings()
                      if dest is target and key == row["routing_key"]
                      and field_json(arguments or {}) == row["arguments"]), {})
    call.server.vhosts[vhost].unbind(exchange, target, row["routing_key"], arguments)
    audit(call.actor, "unbind", f"vhost '{vhost}' exchange '{source}' -> {kind_name} '{destination}' "
                                f"(routing key '{row['routing_key']}')")
    return http.no_content()
