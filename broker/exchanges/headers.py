"""Headers exchange: bindings match on message header values instead of the
routing key (AMQP 0-9-1 spec §3.1.3.4 "The Headers Exchange Type";
https://www.rabbitmq.com/tutorials/amqp-concepts.html#exchange-headers).

Semantics are RabbitMQ's (rabbit_exchange_type_headers.erl, 3.10+):

* ``x-match`` is ``all`` (the default when absent), ``any``, ``all-with-x``
  or ``any-with-x``; anything else is refused at bind time.
* The ``x-match`` argument itself never takes part in matching. Other
  arguments whose key starts with ``x-`` are ignored by ``all``/``any`` and
  compared by the ``-with-x`` variants.
* An argument with a void value (None) matches when the header is present,
  whatever its value.
* ``all`` with nothing left to compare matches every message; ``any`` with
  nothing left to compare matches none.
* The binding key plays no part in matching.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from broker.exchanges.base import EMPTY, Exchange, values_equal

_MODES = {"all": (False, False), "any": (True, False),
          "all-with-x": (False, True), "any-with-x": (True, True)}

_EMPTY_HEADERS: dict = {}

_PRESENCE, _SIMPLE, _DEEP = "presence", "simple", "deep"

# AMQP field type names, for RabbitMQ's wording of the bind error
_TYPE_NAMES = {bool: "bool", int: "signedint", float: "double", dict: "table",
               list: "array", type(None): "void"}


def parse_x_match(arguments: dict) -> tuple[bool, bool]:
    """Return ``(is_any, with_x)`` for a binding's arguments.

    Raises ``ValueError`` with RabbitMQ's message for an x-match value that
    is not one of the four strings (the caller answers 406
    PRECONDITION_FAILED).
    """
    if "x-match" not in arguments:
        return False, False
    value = arguments["x-match"]
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"Invalid x-match field value {bytes(value)!r}; "
                             "expected all, any, all-with-x, or any-with-x") from None
    if isinstance(value, str):
        mode = _MODES.get(value)
        if mode is None:
            raise ValueError(f'Invalid x-match field value <<"{value}">>; '
                             "expected all, any, all-with-x, or any-with-x")
        return mode
    type_name = _TYPE_NAMES.get(type(value), type(value).__name__)
    shown = "undefined" if value is None else repr(value)
    raise ValueError(f"Invalid x-match field type {type_name} (value {shown}); "
                     "expected longstr")


def _compile(arguments: dict) -> tuple[bool, tuple]:
    """Compile a binding's arguments to ``(is_any, items)``; each item is
    ``(header name, expected value, kind)`` where ``kind`` says whether only
    presence counts (void value) and whether a plain ``==`` settles a
    same-typed comparison (not for tables/arrays, where ``True == 1`` inside
    would lie). Raises ``ValueError`` for a bad x-match."""
    is_any, with_x = parse_x_match(arguments)
    items = tuple(
        (k, v, _PRESENCE if v is None else _DEEP if type(v) in (dict, list) else _SIMPLE)
        for k, v in arguments.items()
        if k != "x-match" and (with_x or not k.startswith("x-")))
    return is_any, items


_MISSING = object()


class HeadersExchange(Exchange):
    """Routes to destinations whose binding arguments match the message
    headers (see the module docstring for the rules).

    ``bind`` raises ``ValueError`` for an invalid ``x-match``. ``route``
    calls ``get_headers()`` once, and not at all when there are no bindings
    (None means no headers); it returns a new dict of destinations, each
    once, in binding order.
    """

    type_name = "headers"
    needs_headers = True

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        super().__init__(name, durable, auto_delete, internal, arguments)
        # (destination, is_any, items, arguments) per binding, in binding order
        self._entries: list[tuple[Any, bool, tuple, dict]] = []

    def route(self, routing_key: str, get_headers: Callable[[], dict | None]) -> Collection:
        entries = self._entries
        if not entries:
            return EMPTY
        headers = get_headers()
        get = (headers or _EMPTY_HEADERS).get
        missing = _MISSING
        out: dict[Any, None] = {}
        # one loop, no per-binding calls: this runs for every binding on
        # every message
        for dest, is_any, items, _ in entries:
            if dest in out:
                continue
            if is_any:
                for key, expected, kind in items:
                    actual = get(key, missing)
                    if actual is missing:
                        continue
                    if kind is _PRESENCE:
                        break
                    if kind is _SIMPLE and type(actual) is type(expected):
                        if actual == expected:
                            break
                    elif values_equal(expected, actual):
                        break
                else:
                    continue
                out[dest] = None
            else:
                for key, expected, kind in items:
                    actual = get(key, missing)
                    if actual is missing:
                        break
                    if kind is _PRESENCE:
                        continue
                    if kind is _SIMPLE and type(actual) is type(expected):
                        if actual != expected:
                            break
                    elif not values_equal(expected, actual):
                        break
                else:
                    out[dest] = None
        return out

    def _add(self, destination: Any, binding_key: str, arguments: dict) -> None:
        is_any, items = _compile(arguments)
        self._entries.append((destination, is_any, items, arguments))

    def _remove(self, destination: Any, binding_key: str, arguments: dict) -> None:
        for i, entry in enumerate(self._entries):
            # the base class hands back the very dict it gave _add
            if entry[3] is arguments:
                del self._entries[i]
                return
