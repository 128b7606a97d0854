"""Events: how a lower layer tells upper ones that something happened without
importing them (docs/architecture.md, "Layers": imports only go down). The
vhost emits ``VHost.queue_deleted``; a connection that owns exclusive queues
subscribes to it instead of the vhost reaching into the connection."""

from __future__ import annotations

from typing import Callable


class Event:
    """A named list of subscribers (callables), called in subscription
    order with the arguments given to ``emit``.

    Subscribing the same callback again is a no-op (it is called once per
    emit); bound methods of one object compare equal, so
    ``unsubscribe(obj.method)`` undoes ``subscribe(obj.method)``. A
    subscriber may subscribe or unsubscribe (itself or others) while the
    event is being emitted: the emit calls those subscribed when it started.
    An exception raised by a subscriber propagates to the emitter and the
    later subscribers are not called (subscribers are expected not to fail).
    """

    __slots__ = ("name", "_subscribers")

    def __init__(self, name: str):
        self.name = name
        #: callback -> None: a dict keeps subscription order and makes
        #: unsubscribe O(1)
        self._subscribers: dict[Callable[..., None], None] = {}

    def __repr__(self) -> str:
        return f"<Event {self.name!r} ({len(self._subscribers)} subscribers)>"

    def __len__(self) -> int:
        """How many subscribers."""
        return len(self._subscribers)

    def subscribe(self, callback: Callable[..., None]) -> None:
        """Call ``callback(*args)`` on every later ``emit(*args)``."""
        self._subscribers[callback] = None

    def unsubscribe(self, callback: Callable[..., None]) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        self._subscribers.pop(callback, None)

    def emit(self, *args) -> None:
        """Call every subscriber with ``args``."""
        if self._subscribers:
            for callback in tuple(self._subscribers):
                callback(*args)
