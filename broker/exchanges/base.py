"""The exchange base class: binding bookkeeping shared by every exchange type.

AMQP 0-9-1 spec §3.1.3 ("Exchanges") and RabbitMQ's
https://www.rabbitmq.com/tutorials/amqp-concepts.html. Exchange-to-exchange
bindings (https://www.rabbitmq.com/e2e.html) are ordinary bindings whose
destination is another :class:`Exchange`; following them is the job of
:func:`broker.exchanges.routing.route_message`, not of ``route``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, ClassVar

#: Shared empty results, so that a miss allocates nothing.
EMPTY: tuple = ()


def values_equal(a: Any, b: Any) -> bool:
    """AMQP field-value equality as RabbitMQ applies it to header values.

    A long string arrives from pamqp as ``str`` when it is valid UTF-8 and as
    ``bytes`` otherwise, but both are the same ``longstr`` on the wire, so
    ``"abc"`` equals ``b"abc"``. A boolean never equals a number (Erlang's
    ``true == 1`` is false), while ``1 == 1.0`` holds as it does in Erlang.
    Tables and arrays compare element-wise with the same rules.
    """
    ta = type(a)
    tb = type(b)
    if ta is tb:
        if ta is dict:
            if len(a) != len(b):
                return False
            for k, v in a.items():
                if k not in b or not values_equal(v, b[k]):
                    return False
            return True
        if ta is list:
            return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b))
        return a == b
    if ta is str and (tb is bytes or tb is bytearray):
        return a.encode("utf-8", "surrogateescape") == b
    if tb is str and (ta is bytes or ta is bytearray):
        return b.encode("utf-8", "surrogateescape") == a
    if ta is bool or tb is bool:
        return False
    if (ta is bytes and tb is bytearray) or (ta is bytearray and tb is bytes):
        return a == b
    if ta in (int, float) and tb in (int, float):
        return a == b
    return False


class Exchange:
    """An exchange: a named router from a routing key (and, for headers
    exchanges, message headers) to destinations.

    Attributes ``name``, ``durable``, ``auto_delete``, ``internal`` and
    ``arguments`` (a dict, never None) are plain attributes. A binding is the
    triple ``(destination, binding_key, arguments)``; two bindings are the
    same when all three compare equal (``arguments=None`` means ``{}``), which
    makes ``bind`` idempotent as AMQP 0-9-1 §1.8.3.1 (queue.bind) requires.
    A destination is a queue (any hashable object) or another ``Exchange``
    (an e2e binding).

    Subclasses implement ``route`` and the two index hooks ``_add`` and
    ``_remove``; ``_add`` may raise ``ValueError`` to refuse a binding before
    anything is recorded.
    """

    type_name: ClassVar[str] = ""
    needs_headers: ClassVar[bool] = False
    #: True for x-delayed-message: the route walk may hold a message there
    #: (broker/exchanges/routing.py)
    delays: ClassVar[bool] = False

    def __init__(self, name: str, durable: bool = False, auto_delete: bool = False,
                 internal: bool = False, arguments: dict | None = None) -> None:
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = dict(arguments) if arguments else {}
        # (destination, key) -> list of distinct argument tables; a list
        # because argument dicts are unhashable and rarely more than one.
        self._bindings: dict[tuple[Any, str], list[dict]] = {}
        # destination -> {key: None}, so deleting a queue does not scan every
        # binding of a busy exchange.
        self._dest_keys: dict[Any, dict[str, None]] = {}
        # Count of bindings whose destination is an Exchange. route_message
        # skips the e2e walk entirely while it is zero and the type does not
        # need headers (``_fast``), the common case on the publish path.
        self._e2e_bindings = 0
        self._fast = not self.needs_headers

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- routing ---------------------------------------------------------

    def route(self, routing_key: str, get_headers: Callable[[], dict | None]) -> Collection:
        """Destinations this exchange alone routes ``routing_key`` to.

        No e2e recursion and no alternate exchange. Each destination appears
        once. The result may be an internal container: do not mutate it and
        do not keep it across a bind/unbind. ``get_headers`` is called only
        by exchange types with ``needs_headers``.
        """
        raise NotImplementedError

    def _add(self, destination: Any, binding_key: str, arguments: dict) -> None:
        raise NotImplementedError

    def _remove(self, destination: Any, binding_key: str, arguments: dict) -> None:
        raise NotImplementedError

    # -- bindings --------------------------------------------------------

    def bind(self, destination: Any, binding_key: str, arguments: dict | None = None) -> bool:
        """Add a binding; True if it is new, False if it already existed.

        Raises ``ValueError`` when the exchange type rejects the binding
        arguments (the caller answers 406 PRECONDITION_FAILED).
        """
        args = {} if arguments is None else arguments
        pair = (destination, binding_key)
        existing = self._bindings.get(pair)
        if existing is not None:
            for a in existing:
                if a == args:
                    return False
        args = dict(args)  # the caller's dict may be reused or mutated later
        self._add(destination, binding_key, args)
        if existing is None:
            self._bindings[pair] = [args]
            keys = self._dest_keys.get(destination)
            if keys is None:
                self._dest_keys[destination] = {binding_key: None}
            else:
                keys[binding_key] = None
        else:
            existing.append(args)
        if isinstance(destination, Exchange):
            self._e2e_bindings += 1
            self._fast = False
        return True

    def unbind(self, destination: Any, binding_key: str, arguments: dict | None = None) -> bool:
        """Remove one binding; True if it existed."""
        args = {} if arguments is None else arguments
        pair = (destination, binding_key)
        existing = self._bindings.get(pair)
        if existing is None:
            return False
        for i, a in enumerate(existing):
            if a == args:
                break
        else:
            return False
        stored = existing.pop(i)
        if not existing:
            del self._bindings[pair]
            keys = self._dest_keys[destination]
            del keys[binding_key]
            if not keys:
                del self._dest_keys[destination]
        self._remove(destination, binding_key, stored)
        if isinstance(destination, Exchange):
            self._e2e_bindings -= 1
            self._fast = not self._e2e_bindings and not self.needs_headers
        return True

    def unbind_destination(self, destination: Any) -> int:
        """Remove every binding to ``destination`` (a queue or exchange that
        is being deleted); returns how many were removed."""
        keys = self._dest_keys.pop(destination, None)
        if keys is None:
            return 0
        count = 0
        for key in keys:
            for args in self._bindings.pop((destination, key)):
                self._remove(destination, key, args)
                count += 1
        if isinstance(destination, Exchange):
            self._e2e_bindings -= count
            self._fast = not self._e2e_bindings and not self.needs_headers
        return count

    def bindings(self) -> list[tuple[Any, str, dict]]:
        """Every binding as ``(destination, binding_key, arguments)``, in the
        order they were made."""
        return [(d, k, a) for (d, k), lst in self._bindings.items() for a in lst]

    def has_bindings(self) -> bool:
        return bool(self._bindings)

    def has_binding(self, destination: Any, binding_key: str, arguments: dict | None) -> bool:
        args = {} if arguments is None else arguments
        existing = self._bindings.get((destination, binding_key))
        return existing is not None and any(a == args for a in existing)

    # -- declare ---------------------------------------------------------

    def equivalent(self, type_name: str, durable: bool, auto_delete: bool, internal: bool,
                   arguments: dict | None) -> str | None:
        """Check a re-declare against this exchange.

        Returns None when equivalent, else the first differing field in
        RabbitMQ's order (rabbit_exchange:assert_equivalence): ``"type"``,
        ``"durable"``, ``"auto_delete"``, ``"internal"``, then the only
        argument RabbitMQ compares for exchanges, ``"alternate-exchange"``
        (absent on one side and present on the other is a difference). The
        caller answers 406 PRECONDITION_FAILED "inequivalent arg ...".
        """
        if type_name != self.type_name:
            return "type"
        if bool(durable) != bool(self.durable):
            return "durable"
        if bool(auto_delete) != bool(self.auto_delete):
            return "auto_delete"
        if bool(internal) != bool(self.internal):
            return "internal"
        missing = _MISSING
        mine = self.arguments.get("alternate-exchange", missing)
        theirs = (arguments or {}).get("alternate-exchange", missing)
        if mine is missing or theirs is missing:
            if mine is not theirs:
                return "alternate-exchange"
        elif not values_equal(mine, theirs):
            return "alternate-exchange"
        return None


_MISSING = object()
