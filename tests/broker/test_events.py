"""broker.model.events.Event: subscribe / unsubscribe / emit."""

import pytest

from broker.model.events import Event


def test_emit_calls_subscribers_in_order_with_the_arguments():
    event = Event("queue_deleted")
    calls = []
    event.subscribe(lambda *args: calls.append(("first", args)))
    event.subscribe(lambda *args: calls.append(("second", args)))
    event.emit("q", 3)
    assert calls == [("first", ("q", 3)), ("second", ("q", 3))]
    assert len(event) == 2


def test_emit_without_subscribers_does_nothing():
    Event("nobody").emit(1)


def test_subscribing_twice_calls_once_and_unsubscribe_stops_calls():
    event = Event("e")
    calls = []

    class Owner:
        def on_event(self, value):
            calls.append(value)

    owner = Owner()
    event.subscribe(owner.on_event)
    event.subscribe(owner.on_event)  # a new bound method, equal to the first
    event.emit(1)
    event.unsubscribe(owner.on_event)
    event.emit(2)
    event.unsubscribe(owner.on_event)  # unknown: ignored
    assert calls == [1]
    assert len(event) == 0


def test_changes_during_emit_apply_to_the_next_emit():
    event = Event("e")
    calls = []

    def late(value):
        calls.append(("late", value))

    def once(value):
        calls.append(("once", value))
        event.unsubscribe(once)
        event.subscribe(late)

    event.subscribe(once)
    event.emit(1)
    event.emit(2)
    assert calls == [("once", 1), ("late", 2)]


def test_a_failing_subscriber_propagates_to_the_emitter():
    event = Event("e")
    calls = []

    def fail(_value):
        raise RuntimeError("boom")

    event.subscribe(fail)
    event.subscribe(calls.append)
    with pytest.raises(RuntimeError):
        event.emit(1)
    assert calls == []
