"""What deleting a vhost or a user does to the running broker: close their
connections (320 CONNECTION_FORCED, as RabbitMQ's
rabbit_connection_tracking), and for a vhost, delete its queues (their
stored messages released from the WAL, reason deleted), exchanges and
bindings. The durable rows are already gone (AccessControl.remove_vhost,
one transaction)."""

from __future__ import annotations

import logging
from typing import Callable

from protocol import reply_codes
from protocol.errors import AMQPError, connection_error

log = logging.getLogger(__name__)


def close_connections(server, which: Callable[[object], bool], error: AMQPError) -> int:
    """Close every open connection of ``server`` for which ``which(connection)``
    is true with ``error``; returns how many. Closing requeues their
    unacknowledged messages and deletes their exclusive queues at once
    (Connection.close)."""
    chosen = [connection for connection in server.connections if connection.vhost is not None and which(connection)]
    for connection in chosen:
        log.info("%s vhost '%s': closing, %s", connection.name, connection.vhost.name, error.text)
        connection.close(error)
    return len(chosen)


def tear_down_vhost(server, name: str) -> tuple[int, int, int]:
    """Take vhost ``name`` out of ``server.vhosts`` (a connection.open of it
    now gets 530 "vhost not found"), close its connections, then delete its
    queues (messages dropped and released) and its own exchanges. Returns
    (connections closed, queues deleted, messages dropped)."""
    vhost = server.vhosts.pop(name, None)
    if vhost is None:
        return 0, 0, 0
    closed = close_connections(server, lambda c: c.vhost is vhost,
                               connection_error(reply_codes.CONNECTION_FORCED, f"vhost '{name}' is deleted"))
    queues = list(vhost.queues.values())
    messages = sum(vhost.delete_queue(queue) for queue in queues)
    for exchange in list(vhost.exchanges.values()):
        if exchange.name and not exchange.name.startswith("amq."):
            vhost.delete_exchange(exchange)
    return closed, len(queues), messages
