"""GET exchanges, queues and bindings: ``/api/exchanges[/vh[/name]]``,
``/api/queues[/vh[/name]]``, ``/api/bindings[/vh]``, the bindings of one
exchange or queue (``/api/exchanges/vh/x/bindings/source|destination``,
``/api/queues/vh/q/bindings``) and ``/api/bindings/vh/e/src/q|e/dst``, with
the fields of RabbitMQ 3.10's management API (rabbit_mgmt_format,
rabbit_mgmt_wm_queue(s), rabbit_mgmt_wm_exchange(s), rabbit_mgmt_wm_bindings).
Queue depths are the broker's live figures; the rows are also the ones
the overview counts."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import quote_plus

from broker.control.queue_commands import field_json, unacked_by_queue
from broker.exchanges import Exchange
from broker.management import figures
from broker.management.auth import check_vhost_read
from broker.management.http import answer, not_found
from broker.management.listing import listed
from broker.management.routing import Call, Routes

#: the default exchange's name in the API (rabbitmqadmin's exchange=amq.default)
DEFAULT_EXCHANGE = "amq.default"


def register(routes: Routes) -> None:
    routes.get("/exchanges", list_exchanges)
    routes.get("/exchanges/{vhost}", list_exchanges)
    routes.get("/exchanges/{vhost}/{name}", show_exchange)
    routes.get("/exchanges/{vhost}/{name}/bindings/source", exchange_bindings_source)
    routes.get("/exchanges/{vhost}/{name}/bindings/destination", exchange_bindings_destination)
    routes.get("/queues", list_queues)
    routes.get("/queues/{vhost}", list_queues)
    routes.get("/queues/{vhost}/{name}", show_queue)
    routes.get("/queues/{vhost}/{name}/bindings", queue_bindings)
    routes.get("/bindings", list_bindings)
    routes.get("/bindings/{vhost}", list_bindings)
    routes.get("/bindings/{vhost}/e/{source}/{kind}/{destination}", bindings_between)


def node_name(server) -> str:
    """The node name every object names (RabbitMQ's ``rabbit@host``)."""
    return server.server_properties()["cluster_name"]


def vhosts_of(call: Call, vhost: str | None) -> list[str]:
    """The vhosts a list route covers: one (checked: 404, 401) or every visible one."""
    if vhost is not None:
        check_vhost_read(call, vhost)
        return [vhost]
    return [name for name in call.visible_vhosts() if name in call.server.vhosts]


# ---- exchanges ----------------------------------------------------------------

def exchange_row(server, vhost_name: str, exchange: Exchange) -> dict:
    """One exchange as /api/exchanges renders it."""
    return {"name": exchange.name, "vhost": vhost_name, "type": exchange.type_name,
            "durable": exchange.durable, "auto_delete": exchange.auto_delete, "internal": exchange.internal,
            "arguments": field_json(exchange.arguments), "user_who_performed_action": "",
            "message_stats": figures.message_stats(server, exchange)}


def find_exchange(call: Call, vhost: str, name: str) -> Exchange:
    """The exchange ``name`` ("amq.default" is the default one) or 404."""
    check_vhost_read(call, vhost)
    exchange = call.server.vhosts[vhost].exchanges.get("" if name == DEFAULT_EXCHANGE else name)
    if exchange is None:
        raise not_found()
    return exchange


async def list_exchanges(call: Call, vhost: str | None = None):
    rows = [exchange_row(call.server, name, exchange) for name in vhosts_of(call, vhost)
            for exchange in sorted(call.server.vhosts[name].exchanges.values(), key=lambda e: e.name)]
    return listed(call.query, rows)


async def show_exchange(call: Call, vhost: str, name: str):
    return answer(exchange_row(call.server, vhost, find_exchange(call, vhost, name)))


# ---- queues -------------------------------------------------------------------

def queue_row(server, vhost_name: str, queue, unacked: dict[int, int]) -> dict:
    """One queue as /api/queues renders it: the depths (messages_ready,
    messages_unacknowledged, messages), consumers, the message_stats
    rates and the keys RabbitMQ always gives."""
    ready = queue.message_count
    unacknowledged = unacked.get(id(queue), 0)
    consumers = queue.consumer_count
    exclusive = queue.exclusive_owner is not None
    row = {
        "name": queue.name, "vhost": vhost_name, "durable": queue.durable, "auto_delete": queue.auto_delete,
        "exclusive": exclusive, "arguments": field_json(queue.arguments),
        "type": str(field_json(queue.arguments.get("x-queue-type", "classic"))),
        "node": node_name(server), "state": "running", "policy": None, "operator_policy": None,
        "effective_policy_definition": {}, "exclusive_consumer_tag": None, "single_active_consumer_tag": None,
        "owner_pid_details": {"name": queue.exclusive_owner.name} if exclusive else None,
        "messages": ready + unacknowledged, "messages_details": {"rate": 0.0},
        "messages_ready": ready, "messages_ready_details": {"rate": 0.0},
        "messages_unacknowledged": unacknowledged, "messages_unacknowledged_details": {"rate": 0.0},
        "messages_ram": ready + unacknowledged, "messages_ready_ram": ready,
        "messages_unacknowledged_ram": unacknowledged, "messages_persistent": 0, "messages_paged_out": 0,
        "message_bytes": 0, "message_bytes_ready": 0, "message_bytes_unacknowledged": 0,
        "message_bytes_ram": 0, "message_bytes_persistent": 0, "message_bytes_paged_out": 0,
        "consumers": consumers, "consumer_capacity": 1.0 if consumers else 0,
        "consumer_utilisation": 1.0 if consumers else 0, "memory": 0, "reductions": 0,
        "reductions_details": {"rate": 0.0}, "garbage_collection": {}, "head_message_timestamp": None,
        "recoverable_slaves": None, "backing_queue_status": {"mode": "default", "len": ready},
        "message_stats": figures.message_stats(server, queue),
    }
    if not consumers:
        # Leveret does not track a queue's last activity: the time of the
        # start of the broker stands for it (rabbit_mgmt_format's format)
        row["idle_since"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(figures.STARTED))
    return row


def find_queue(call: Call, vhost: str, name: str):
    check_vhost_read(call, vhost)
    queue = call.server.vhosts[vhost].queues.get(name)
    if queue is None:
        raise not_found()
    return queue


async def list_queues(call: Call, vhost: str | None = None):
    unacked = unacked_by_queue(call.server.connections)
    rows = [queue_row(call.server, name, queue, unacked) for name in vhosts_of(call, vhost)
            for queue in sorted(call.server.vhosts[name].queues.values(), key=lambda q: q.name)]
    return listed(call.query, rows)


async def show_queue(call: Call, vhost: str, name: str):
    queue = find_queue(call, vhost, name)
    return answer(queue_row(call.server, vhost, queue, unacked_by_queue(call.server.connections)))


# ---- bindings -----------------------------------------------------------------

def properties_key(routing_key: str, arguments: dict) -> str:
    """The binding's identity in a URL (rabbit_mgmt_format:pack_binding_props):
    the quoted routing key ("~" when empty), then "~" and a hash of the
    arguments when there are any."""
    key = quote_plus(routing_key).replace("~", "%7E") if routing_key else ""
    if not arguments:
        return key or "~"
    digest = hashlib.sha1(json.dumps(field_json(arguments), sort_keys=True).encode()).digest()
    return f"{key}~{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"


def binding_row(vhost_name: str, source: str, destination, routing_key: str, arguments: dict) -> dict:
    kind = "exchange" if isinstance(destination, Exchange) else "queue"
    return {"source": source, "vhost": vhost_name, "destination": destination.name, "destination_type": kind,
            "routing_key": routing_key, "arguments": field_json(arguments or {}),
            "properties_key": properties_key(routing_key, arguments or {})}


def binding_rows(vhost_name: str, vhost) -> list[dict]:
    """Every binding of ``vhost``: the default exchange's implicit one for
    each queue first (RabbitMQ lists them), then the declared ones."""
    rows = [binding_row(vhost_name, "", queue, queue.name, {})
            for queue in sorted(vhost.queues.values(), key=lambda q: q.name)]
    for source_name in sorted(vhost.exchanges):
        if source_name:
            rows.extend(binding_row(vhost_name, source_name, destination, key, arguments)
                        for destination, key, arguments in vhost.exchanges[source_name].bindings())
    return rows


async def list_bindings(call: Call, vhost: str | None = None):
    rows = [row for name in vhosts_of(call, vhost) for row in binding_rows(name, call.server.vhosts[name])]
    return listed(call.query, rows)


async def exchange_bindings_source(call: Call, vhost: str, name: str):
    exchange = find_exchange(call, vhost, name)
    rows = [r for r in binding_rows(vhost, call.server.vhosts[vhost]) if r["source"] == exchange.name]
    return listed(call.query, rows)


async def exchange_bindings_destination(call: Call, vhost: str, name: str):
    exchange = find_exchange(call, vhost, name)
    rows = [r for r in binding_rows(vhost, call.server.vhosts[vhost])
            if r["destination_type"] == "exchange" and r["destination"] == exchange.name]
    return listed(call.query, rows)


async def queue_bindings(call: Call, vhost: str, name: str):
    find_queue(call, vhost, name)
    rows = [r for r in binding_rows(vhost, call.server.vhosts[vhost])
            if r["destination_type"] == "queue" and r["destination"] == name]
    return listed(call.query, rows)


async def bindings_between(call: Call, vhost: str, source: str, kind: str, destination: str):
    """``/api/bindings/vh/e/src/q/dst`` (or ``/e/dst``): the bindings from
    exchange ``source`` to that queue or exchange; 404 when an end is missing."""
    rows = matching_bindings(call, vhost, source, kind, destination)
    return listed(call.query, rows)


def matching_bindings(call: Call, vhost: str, source: str, kind: str, destination: str) -> list[dict]:
    exchange = find_exchange(call, vhost, source)
    if kind not in ("q", "e"):
        raise not_found()
    ends = call.server.vhosts[vhost].queues if kind == "q" else call.server.vhosts[vhost].exchanges
    if destination not in ends:
        raise not_found()
    destination_type = "queue" if kind == "q" else "exchange"
    return [r for r in binding_rows(vhost, call.server.vhosts[vhost])
            if r["source"] == exchange.name and r["destination_type"] == destination_type
            and r["destination"] == destination]
