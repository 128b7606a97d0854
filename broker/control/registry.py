"""Command name -> handler, for the control channel.

A handler is ``handler(context, args) -> result`` (a plain function or a
coroutine function): ``context`` is what the broker process gives the
control server (``broker.app.server.Server``: ``vhosts``, ``connections``,
``config``, ``users`` ...), ``args`` the request's ``args`` object; the
result must be JSON-serialisable. A handler raises
``broker.control.wire.ControlError`` for bad arguments (400) or a missing
object (404); any other exception is logged and answered with 500.

Names are ``<noun>.<verb>`` (``queues.list``, ``users.add``). Another
package adds its commands with a function ``register(registry)`` listed in
``broker.control.standard``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from broker.control.wire import BAD_REQUEST, NOT_FOUND, ControlError

_MISSING = object()


@dataclass(frozen=True)
class Command:
    """One registered command: ``name``, ``handler`` and a one-line
    ``summary`` (listed by ``commands.list``)."""

    name: str
    handler: Callable
    summary: str


class Registry:
    """The commands one control server answers. ``commands.list`` is always
    there: it returns ``[{"name", "summary"}]`` sorted by name."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self.add("commands.list", lambda _context, _args: self.describe(), "the commands this broker answers")

    def add(self, name: str, handler: Callable, summary: str) -> None:
        """Register ``handler`` as ``name``. Raises ValueError when the name
        is taken (two packages must not silently shadow each other)."""
        if name in self._commands:
            raise ValueError(f"control command {name!r} is already registered")
        self._commands[name] = Command(name, handler, summary)

    def command(self, name: str, summary: str) -> Callable[[Callable], Callable]:
        """Decorator form of ``add``."""
        def decorate(handler: Callable) -> Callable:
            self.add(name, handler, summary)
            return handler
        return decorate

    def names(self) -> list[str]:
        return sorted(self._commands)

    def describe(self) -> list[dict]:
        return [{"name": c.name, "summary": c.summary} for _n, c in sorted(self._commands.items())]

    async def call(self, context: object, name: str, args: dict) -> object:
        """Run command ``name``. Raises ControlError 404 for an unknown
        name, and whatever the handler raises."""
        command = self._commands.get(name)
        if command is None:
            raise ControlError(f"unknown command {name!r} (commands.list lists them)", NOT_FOUND)
        result = command.handler(context, args)
        if inspect.isawaitable(result):
            result = await result
        return result


def argument(args: dict, name: str, kind: type | tuple[type, ...], default: object = _MISSING) -> object:
    """``args[name]`` checked to be of ``kind``; ``default`` when absent
    (required when no default is given). Raises ControlError 400 naming the
    argument."""
    if name not in args or args[name] is None:
        if default is _MISSING:
            raise ControlError(f"missing argument {name!r}", BAD_REQUEST)
        return default
    value = args[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = " or ".join(k.__name__ for k in _as_tuple(kind))
        raise ControlError(f"argument {name!r} must be {names}, got {value!r}", BAD_REQUEST)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)

