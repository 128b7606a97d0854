"""The exchange type ``x-message-deduplication`` of the plugin
https://github.com/noxdafox/rabbitmq-message-deduplication
(rabbit_message_deduplication_exchange.ex): it routes like a fanout
exchange (binding keys are ignored, as the plugin's README says) and drops
messages whose ``x-deduplication-header`` value it has already seen (the
cache and the dropping are in broker/vhost/deduplication.py).

Arguments, validated with the plugin's texts (406 PRECONDITION_FAILED):
``x-cache-size`` (required, integer > 0, or a numeric string): most
entries kept; ``x-cache-ttl`` (optional, integer > 0 ms): how long a value
stays a duplicate; ``x-cache-persistence`` (optional, "memory" or "disk").
"""

from __future__ import annotations

from broker.exchanges.fanout import FanoutExchange
from protocol import reply_codes
from protocol.errors import channel_error

SIZE_TEXT = "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0"
TTL_TEXT = "Invalid argument, 'x-cache-ttl' must be an integer greater than 0"
PERSISTENCE_TEXT = "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'"


def positive_int(value) -> int | None:
    """An integer > 0 from an integer argument or a numeric string (the
    plugin parses longstr values with Integer.parse); None otherwise."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    if isinstance(value, str):
        digits = value.strip()
        sign = digits[:1] in "+-" and digits[:1] or ""
        if not digits[len(sign):].isdigit():
            return None
        value = int(digits)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def cache_arguments(arguments: dict) -> tuple[int, int | None, str]:
    """(size, ttl_ms or None, persistence) from the exchange arguments;
    raises 406 with the plugin's text for a bad value."""
    size = positive_int(arguments.get("x-cache-size"))
    if size is None:
        raise channel_error(reply_codes.PRECONDITION_FAILED, SIZE_TEXT)
    ttl = None
    if arguments.get("x-cache-ttl") is not None:
        ttl = positive_int(arguments["x-cache-ttl"])
        if ttl is None:
            raise channel_error(reply_codes.PRECONDITION_FAILED, TTL_TEXT)
    persistence = arguments.get("x-cache-persistence", "memory")
    if isinstance(persistence, (bytes, bytearray)):
        persistence = bytes(persistence).decode("utf-8", "replace")
    if persistence not in ("memory", "disk"):
        raise channel_error(reply_codes.PRECONDITION_FAILED, PERSISTENCE_TEXT)
    return size, ttl, persistence


class DeduplicationExchange(FanoutExchange):
    """A fanout exchange with a deduplication cache (``cache``: a
    broker.vhost.deduplication.DedupCache, created on first use)."""

    type_name = "x-message-deduplication"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        self.cache_size, self.cache_ttl, self.cache_persistence = cache_arguments(arguments or {})
        super().__init__(name, durable, auto_delete, internal, arguments)
        self.cache = None
