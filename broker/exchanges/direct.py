"""Direct exchange: a message goes to the bindings whose key equals its
routing key exactly (AMQP 0-9-1 spec §3.1.3.1 "The Direct Exchange Type";
https://www.rabbitmq.com/tutorials/amqp-concepts.html#exchange-direct)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from broker.exchanges.base import EMPTY, Exchange


class DirectExchange(Exchange):
    """Routes to every destination bound with ``binding_key == routing_key``.

    ``route`` returns an internal tuple of destinations (each once, in
    binding order); a hit costs one dict lookup.
    """

    type_name = "direct"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        # key -> {destination: number of bindings (differing only in
        # arguments) from this key to it}; the count keeps a destination
        # routable until its last binding for that key goes.
        self._routes: dict[str, dict[Any, int]] = {}
        # key -> tuple(self._routes[key]), built on first use after a change;
        # tuples are what callers copy fastest, and building lazily keeps
        # binding N queues to one key linear rather than quadratic.
        self._tuples: dict[str, tuple] = {}

    def route(self, routing_key: str, get_headers=None) -> Collection:
        hit = self._tuples.get(routing_key)
        if hit is not None:
            return hit
        dests = self._routes.get(routing_key)
        if dests is None:
            return EMPTY
        hit = self._tuples[routing_key] = tuple(dests)
        return hit

    def _add(self, destination: Any, binding_key: str, arguments: dict) -> None:
        dests = self._routes.get(binding_key)
        if dests is None:
            self._routes[binding_key] = {destination: 1}
        else:
            dests[destination] = dests.get(destination, 0) + 1
        self._tuples.pop(binding_key, None)

    def _remove(self, destination: Any, binding_key: str, arguments: dict) -> None:
        dests = self._routes[binding_key]
        n = dests[destination] - 1
        if n:
            dests[destination] = n
        else:
            del dests[destination]
            if not dests:
                del self._routes[binding_key]
        self._tuples.pop(binding_key, None)
