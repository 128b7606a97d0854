"""Whole-message routing: exchange-to-exchange bindings and alternate
exchanges on top of each exchange's own ``route``.

Rules are RabbitMQ's (rabbit_exchange:route/2, checked against RabbitMQ
3.10 on the wire):

* e2e (https://www.rabbitmq.com/e2e.html): a destination that is an
  :class:`Exchange` routes the message onward with the same routing key.
  Every exchange is visited at most once per message, which cuts cycles.
* alternate exchange (https://www.rabbitmq.com/ae.html): the exchange's
  ``alternate-exchange`` argument is consulted for *that* exchange when its
  own bindings matched nothing (neither a queue nor an exchange). It is
  judged per exchange on the path: an exchange reached through an e2e
  binding that matches nothing sends to its own AE even if another branch
  reached a queue; and an exchange whose only match is an e2e binding to an
  exchange that then matches nothing does *not* use its AE. AE chains are
  followed and share the visited set, so AE cycles end.
* delayed-message exchange (rabbitmq-delayed-message-exchange,
  rabbit_exchange_type_delayed_message:route/2, which rabbit_exchange:route
  calls for every exchange on the path): when the caller passes a ``held``
  list, an ``x-delayed-message`` exchange reached anywhere on the path by a
  message whose ``x-delay`` asks for a delay is appended to it as
  ``(exchange, delay_ms)`` and routes nothing now (no bindings, no AE: the
  plugin's AE-at-once bug #36 is not copied). The caller holds a copy there
  (broker/vhost/delayed_copies.py); it is routed from that exchange when due.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from broker.exchanges.base import Exchange
from broker.exchanges.delayed import delay_of


class _HeadersOnce:
    """Calls the message's header decoder at most once per routed message."""

    __slots__ = ("_fn", "_done", "_value")

    def __init__(self, fn: Callable[[], dict | None]) -> None:
        self._fn = fn
        self._done = False
        self._value = None

    def __call__(self) -> dict | None:
        if not self._done:
            self._value = self._fn()
            self._done = True
        return self._value


def route_message(exchange: Exchange, routing_key: str,
                  get_headers: Callable[[], dict | None],
                  lookup_exchange: Callable[[str], Exchange | None], held: list | None = None) -> list:
    """Return the queues a message published to ``exchange`` reaches.

    ``get_headers()`` returns the message headers (or None); it is called
    only if a headers exchange is on the path, and at most once.
    ``lookup_exchange(name)`` resolves an alternate-exchange name in the
    same vhost, returning None when there is no such exchange (the AE is
    then silently skipped, as in RabbitMQ). Destinations that are not
    ``Exchange`` instances are queues; each appears once in the returned
    list, in the order first reached (bindings in order, breadth first).
    CC/BCC are the caller's business. ``held``: None routes through
    delayed-message exchanges at once (callers that know no delay can be
    asked: the publish cache, a held message falling due); a list collects
    the delayed exchanges that hold the message instead (module docstring).
    Raises nothing of its own.
    """
    if held is not None and exchange.delays:
        return _walk(exchange, None, (routing_key,), _HeadersOnce(get_headers), lookup_exchange, held)
    if exchange._fast:
        # The common case: one non-headers exchange without e2e bindings, so
        # the result is already duplicate-free and needs no bookkeeping.
        dests = exchange.route(routing_key, get_headers)
        if dests:
            return [*dests]
        if "alternate-exchange" not in exchange.arguments:
            return []
    else:
        if exchange.needs_headers:
            if not exchange._e2e_bindings and "alternate-exchange" not in exchange.arguments:
                return [*exchange.route(routing_key, get_headers)]
            # a second headers exchange may follow on the path
            get_headers = _HeadersOnce(get_headers)
        dests = exchange.route(routing_key, get_headers)
    return _walk(exchange, dests, (routing_key,), get_headers, lookup_exchange, held)


def route_message_keys(exchange: Exchange, routing_keys: list[str],
                       get_headers: Callable[[], dict | None],
                       lookup_exchange: Callable[[str], Exchange | None], held: list | None = None) -> list:
    """``route_message`` for a message with several routing keys (its own
    and its CC/BCC keys, rabbitmq.com/sender-selected.html): every exchange
    on the path matches its bindings against all of them, as RabbitMQ
    routes a message's routing-key list through exchange-to-exchange
    bindings; each queue appears once. ``held`` as for ``route_message``."""
    get_headers = _HeadersOnce(get_headers)
    return _walk(exchange, None, tuple(routing_keys), get_headers, lookup_exchange, held)


def _route_keys(x: Exchange, keys: tuple, get_headers) -> Collection:
    if len(keys) == 1:
        return x.route(keys[0], get_headers)
    out: dict = {}
    for key in keys:
        for dest in x.route(key, get_headers):
            out[dest] = None
    return out


def _delay(x: Exchange, get_headers: Callable[[], dict | None]) -> int | None:
    """The delay (ms) delayed exchange ``x`` holds the message for, or None."""
    try:
        return delay_of(get_headers())
    except ValueError:  # malformed headers: the exchange routes as its type would
        return None


def _walk(first: Exchange, first_dests: Collection | None, routing_keys: tuple,
          get_headers: Callable[[], dict | None],
          lookup_exchange: Callable[[str], Exchange | None], held: list | None = None) -> list:
    """Breadth-first walk from ``first`` (whose own destinations are
    ``first_dests``, or None to compute them here)."""
    result: list = []
    queues_seen: set = set()
    visited: set = {first}
    work: list[Exchange] = [first]
    headers_once = get_headers if isinstance(get_headers, _HeadersOnce) else None
    i = 0
    while i < len(work):
        x = work[i]
        i += 1
        if held is not None and x.delays:
            delay = _delay(x, get_headers)
            if delay is not None:
                held.append((x, delay))
                continue
        if i == 1 and first_dests is not None:
            dests = first_dests
        elif x.needs_headers:
            if headers_once is None:
                headers_once = _HeadersOnce(get_headers)
            dests = _route_keys(x, routing_keys, headers_once)
        else:
            dests = _route_keys(x, routing_keys, get_headers)
        if dests:
            for d in dests:
                if isinstance(d, Exchange):
                    if d not in visited:
                        visited.add(d)
                        work.append(d)
                elif d not in queues_seen:
                    queues_seen.add(d)
                    result.append(d)
        else:
            ae = _alternate(x, lookup_exchange)
            if ae is not None and ae not in visited:
                visited.add(ae)
                work.append(ae)
    return result


def _alternate(x: Exchange, lookup_exchange: Callable[[str], Any]) -> Exchange | None:
    name = x.arguments.get("alternate-exchange")
    if name is None:
        return None
    if isinstance(name, (bytes, bytearray)):
        try:
            name = bytes(name).decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif not isinstance(name, str):
        return None
    return lookup_exchange(name)
