"""Fanout exchange: every bound destination gets every message, whatever the
routing key (AMQP 0-9-1 spec §3.1.3.2 "The Fanout Exchange Type";
https://www.rabbitmq.com/tutorials/amqp-concepts.html#exchange-fanout)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from broker.exchanges.base import Exchange


class FanoutExchange(Exchange):
    """Routes to all bound destinations; binding keys and arguments only
    distinguish bindings, they never filter.

    ``route`` returns an internal tuple of destinations, each once, in
    binding order.
    """

    type_name = "fanout"

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        self._dests: dict[Any, int] = {}  # destination -> binding count
        # tuple(self._dests), rebuilt lazily so N binds stay linear
        self._tuple: tuple | None = ()

    def route(self, routing_key: str, get_headers=None) -> Collection:
        t = self._tuple
        if t is None:
            t = self._tuple = tuple(self._dests)
        return t

    def _add(self, destination: Any, binding_key: str, arguments: dict) -> None:
        self._dests[destination] = self._dests.get(destination, 0) + 1
        self._tuple = None

    def _remove(self, destination: Any, binding_key: str, arguments: dict) -> None:
        n = self._dests[destination] - 1
        if n:
            self._dests[destination] = n
        else:
            del self._dests[destination]
        self._tuple = None
