"""Per-vhost and per-user limits (rabbitmq.com/vhosts.html#limits,
rabbitmq.com/user-limits.html) and RabbitMQ 3.10's refusals. A limit is
an integer; a negative value means no limit, 0 refuses everything.

- vhost ``max-connections``: connection.open refused, 530 NOT_ALLOWED;
- vhost ``max-queues``: queue.declare of a new queue, 406 PRECONDITION_FAILED;
- user ``max-connections``: connection.open refused, 530 NOT_ALLOWED;
- user ``max-channels``: channel.open, 530 NOT_ALLOWED on the connection."""

from __future__ import annotations

from protocol import reply_codes
from protocol.errors import AMQPError, channel_error, connection_error

MAX_CONNECTIONS = "max-connections"
MAX_QUEUES = "max-queues"
MAX_CHANNELS = "max-channels"
#: limit names each kind of owner accepts
KNOWN = {"vhost": (MAX_CONNECTIONS, MAX_QUEUES), "user": (MAX_CONNECTIONS, MAX_CHANNELS)}


def validated(kind: str, limits: dict) -> dict:
    """``limits`` ({name: int}) checked for ``kind`` ("vhost" or "user"),
    with negative values (no limit) left out. Raises ValueError naming the
    first unknown limit or non-integer value."""
    known = KNOWN[kind]
    result = {}
    for name, value in limits.items():
        if name not in known:
            raise ValueError(f"unknown {kind} limit '{name}' (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{kind} limit '{name}' must be an integer, not {value!r}")
        if value >= 0:
            result[name] = value
    return result


def reached(limits: dict, name: str, current: int) -> int | None:
    """The limit ``name`` when ``current`` (what exists now) leaves no room
    for one more, else None."""
    limit = limits.get(name)
    return limit if limit is not None and current >= limit else None


def vhost_connections_refused(vhost: str, user: str, limit: int) -> AMQPError:
    return connection_error(reply_codes.NOT_ALLOWED, f"access to vhost '{vhost}' refused for user '{user}': "
                            f"connection limit ({limit}) is reached")


def user_connections_refused(user: str, limit: int) -> AMQPError:
    return connection_error(reply_codes.NOT_ALLOWED,
                            f"connection refused for user '{user}': user connection limit ({limit}) is reached")


def user_channels_refused(user: str, limit: int) -> AMQPError:
    return connection_error(reply_codes.NOT_ALLOWED, f"number of channels opened for user '{user}' has reached "
                            f"the maximum allowed user limit of ({limit})")


def vhost_queues_refused(queue: str, vhost: str, limit: int) -> AMQPError:
    return channel_error(reply_codes.PRECONDITION_FAILED,
                         f"cannot declare queue '{queue}': queue limit in vhost '{vhost}' ({limit}) is reached")
