"""Connections, channels and consumers: GET ``/api/connections[/name]``,
``/api/vhosts/vh/connections``, ``/api/connections/name/channels``,
``/api/channels[/name]``, ``/api/vhosts/vh/channels``,
``/api/consumers[/vh]``, and DELETE ``/api/connections/name`` (closed
with 320 CONNECTION_FORCED and the ``X-Reason`` header's text, default
"Closed via management plugin", as rabbit_mgmt_wm_connection). Fields as
RabbitMQ 3.10 renders them. Management users see their own connections,
monitoring and administrator users all."""

from __future__ import annotations

import logging
import time

from broker.admin.audit import audit
from broker.control.queue_commands import field_json
from broker.management import figures
from broker.management.auth import check_vhost_read
from broker.management.http import answer, no_content, not_authorised, not_found
from broker.management.listing import listed
from broker.management.routing import Call, Routes
from broker.management.topology import node_name
from protocol import reply_codes
from protocol.errors import connection_error

log = logging.getLogger(__name__)

#: RabbitMQ's default reason for a close through the API
CLOSE_REASON = "Closed via management plugin"


def register(routes: Routes) -> None:
    routes.get("/connections", list_connections)
    routes.get("/connections/{name}", show_connection)
    routes.add("DELETE", "/connections/{name}", close_connection)
    routes.get("/connections/{name}/channels", connection_channels)
    routes.get("/vhosts/{vhost}/connections", vhost_connections)
    routes.get("/channels", list_channels)
    routes.get("/channels/{name}", show_channel)
    routes.get("/vhosts/{vhost}/channels", vhost_channels)
    routes.get("/consumers", list_consumers)
    routes.get("/consumers/{vhost}", list_consumers)


def api_name(connection) -> str:
    """RabbitMQ's connection name: ``"127.0.0.1:50000 -> 127.0.0.1:5672"``."""
    return connection.name.removeprefix("connection ")


def _open(call: Call) -> list:
    """The open (logged-in) connections the caller may see."""
    mine = not call.sees_all()
    return [c for c in list(call.server.connections)
            if c.vhost is not None and (not mine or c.username == call.user.name)]


def _ends(connection) -> tuple[str, int, str, int]:
    transport = connection.transport
    peer = transport.get_extra_info("peername") or ("", 0)
    local = transport.get_extra_info("sockname") or ("", 0)
    return peer[0], peer[1], local[0], local[1]


def connection_row(server, connection) -> dict:
    peer_host, peer_port, host, port = _ends(connection)
    handshake = connection.handshake
    started = getattr(connection, "connected_at", None)
    return {
        "name": api_name(connection), "node": node_name(server), "type": "network", "state": "running",
        "user": connection.username, "user_who_performed_action": connection.username,
        "vhost": connection.vhost.name, "protocol": "AMQP 0-9-1", "auth_mechanism": handshake.mechanism,
        "host": host, "port": port, "peer_host": peer_host, "peer_port": peer_port,
        "ssl": connection.transport.get_extra_info("ssl_object") is not None,
        "peer_cert_subject": None, "peer_cert_issuer": None, "peer_cert_validity": None,
        "ssl_protocol": None, "ssl_key_exchange": None, "ssl_cipher": None, "ssl_hash": None,
        "channels": len(connection.channels), "channel_max": connection.channel_max,
        "frame_max": connection.frame_max, "timeout": connection.heartbeat,
        "client_properties": field_json(handshake.client_properties),
        "connected_at": int((started or figures.STARTED) * 1000),
        "recv_oct": 0, "recv_oct_details": {"rate": 0.0}, "send_oct": 0, "send_oct_details": {"rate": 0.0},
        "recv_cnt": 0, "send_cnt": 0, "send_pend": 0, "reductions": 0, "reductions_details": {"rate": 0.0},
        "garbage_collection": {},
    }


def _connection(call: Call, name: str):
    for connection in _open(call):
        if api_name(connection) == name:
            return connection
    raise not_found()


async def list_connections(call: Call):
    return listed(call.query, [connection_row(call.server, c) for c in _open(call)])


async def show_connection(call: Call, name: str):
    return answer(connection_row(call.server, _connection(call, name)))


async def vhost_connections(call: Call, vhost: str):
    check_vhost_read(call, vhost)
    return listed(call.query, [connection_row(call.server, c) for c in _open(call) if c.vhost.name == vhost])


async def close_connection(call: Call, name: str):
    """320 CONNECTION_FORCED with the X-Reason text; a management user may
    close its own connections only (401 otherwise)."""
    connection = _connection(call, name)
    if "administrator" not in call.tags and connection.username != call.user.name:
        raise not_authorised("Not administrator user")
    reason = call.request.headers.get("X-Reason") or CLOSE_REASON
    connection.close(connection_error(reply_codes.CONNECTION_FORCED, reason))
    audit(call.actor, "close_connection", f"'{name}' (user '{connection.username}' vhost "
                                          f"'{connection.vhost.name}'): {reason}")
    return no_content()


# ---- channels -----------------------------------------------------------------

def channel_name(connection, channel) -> str:
    return f"{api_name(connection)} ({channel.number})"


def channel_details(server, connection, channel) -> dict:
    peer_host, peer_port, _host, _port = _ends(connection)
    return {"name": channel_name(connection, channel), "number": channel.number, "user": connection.username,
            "connection_name": api_name(connection), "peer_host": peer_host, "peer_port": peer_port,
            "node": node_name(server)}


def channel_row(server, connection, channel) -> dict:
    peer_host, peer_port, _host, _port = _ends(connection)
    unconfirmed = 0
    if channel.confirms is not None:
        unconfirmed = max(0, channel.confirms.last_seq - channel.confirms.acked_upto)
    return {
        "name": channel_name(connection, channel), "number": channel.number, "node": node_name(server),
        "user": connection.username, "user_who_performed_action": connection.username,
        "vhost": connection.vhost.name,
        "connection_details": {"name": api_name(connection), "peer_host": peer_host, "peer_port": peer_port},
        "state": "running", "consumer_count": len(channel.consumers),
        "messages_unacknowledged": len(channel.unacked), "messages_unconfirmed": unconfirmed,
        "messages_uncommitted": len(channel.tx.publishes) if channel.tx is not None else 0,
        "acks_uncommitted": len(channel.tx.settlements) if channel.tx is not None else 0,
        "prefetch_count": channel.prefetch_count, "global_prefetch_count": channel.global_prefetch,
        "confirm": channel.confirms is not None, "transactional": channel.tx is not None,
        "idle_since": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(figures.STARTED)),
        "reductions": 0, "reductions_details": {"rate": 0.0}, "garbage_collection": {},
        "message_stats": figures.message_stats(server, channel),
    }


def _channels(call: Call, connections=None) -> list[tuple]:
    return [(c, ch) for c in (connections if connections is not None else _open(call))
            for ch in sorted(list(c.channels.values()), key=lambda ch: ch.number)]


async def list_channels(call: Call):
    return listed(call.query, [channel_row(call.server, c, ch) for c, ch in _channels(call)])


async def show_channel(call: Call, name: str):
    for connection, channel in _channels(call):
        if channel_name(connection, channel) == name:
            return answer(channel_row(call.server, connection, channel))
    raise not_found()


async def connection_channels(call: Call, name: str):
    connection = _connection(call, name)
    return listed(call.query, [channel_row(call.server, c, ch) for c, ch in _channels(call, [connection])])


async def vhost_channels(call: Call, vhost: str):
    check_vhost_read(call, vhost)
    return listed(call.query, [channel_row(call.server, c, ch) for c, ch in _channels(call)
                               if c.vhost.name == vhost])


# ---- consumers ----------------------------------------------------------------

def consumer_rows(call: Call, vhost: str | None = None) -> list[dict]:
    """Every consumer of the visible connections (of ``vhost`` only when given)."""
    rows = []
    for connection, channel in _channels(call):
        if vhost is not None and connection.vhost.name != vhost:
            continue
        for tag, consumer in list(channel.consumers.items()):
            rows.append({
                "consumer_tag": tag, "queue": {"name": consumer.queue.name, "vhost": connection.vhost.name},
                "channel_details": channel_details(call.server, connection, channel),
                "ack_required": not consumer.no_ack, "exclusive": consumer.exclusive,
                "prefetch_count": consumer.prefetch, "arguments": field_json(consumer.arguments),
                "active": True, "activity_status": "up",
            })
    return rows


async def list_consumers(call: Call, vhost: str | None = None):
    if vhost is not None:
        check_vhost_read(call, vhost)
    return listed(call.query, consumer_rows(call, vhost))
