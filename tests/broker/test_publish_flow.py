"""Unit tests of broker/transport/flow_control.py on a real event loop: publishing
connections are paused while a timer reports it is late, and read again
when it catches up or after MAX_PAUSE_S. The connections are stand-ins
that record the calls broker.transport.connection.Connection receives."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pamqp import commands

from broker.transport import flow_control as publish_flow
from broker.transport.flow_control import LATE_MS, PublishFlow
from protocol.methods import decode_method


class Recorded:
    """What PublishFlow calls on a connection, recorded."""

    def __init__(self, publisher: bool):
        self.publisher = publisher
        self.reading = True

    def pause_reading(self) -> bool:
        was, self.reading = self.reading, False
        return was

    def resume_reading(self) -> None:
        self.reading = True


def test_late_timer_pauses_publishers_only_until_it_catches_up():
    async def scenario():
        publisher, consumer = Recorded(True), Recorded(False)
        flow = PublishFlow({publisher, consumer})
        flow.report("timer", LATE_MS - 1)
        not_late = publisher.reading
        flow.report("timer", LATE_MS + 5)
        paused = (publisher.reading, consumer.reading)
        flow.report("other", LATE_MS + 5)
        flow.report("timer", 0)
        still = publisher.reading  # "other" is still late
        flow.report("other", 0)
        return not_late, paused, still, publisher.reading, flow.pauses
    not_late, paused, still, resumed, pauses = asyncio.run(scenario())
    assert not_late
    assert paused == (False, True)
    assert not still and resumed
    assert pauses == 1


def test_a_pause_ends_after_max_pause_then_publishers_are_read_a_while(monkeypatch):
    """The resume after MAX_PAUSE_S is waited for as an event (the hang
    guard is generous); the MIN_READ_S window is the feature, so its test
    sleeps past it (a lower bound: load only makes the sleep longer)."""
    monkeypatch.setattr(publish_flow, "MAX_PAUSE_S", 0.05)
    monkeypatch.setattr(publish_flow, "MIN_READ_S", 1.0)   # a margin for the check right after the resume

    async def scenario():
        publisher = Recorded(True)
        flow = PublishFlow({publisher})
        loop = asyncio.get_running_loop()
        flow.report("timer", 1000)
        paused = publisher.reading
        started = loop.time()
        while not publisher.reading:      # still late, but MAX_PAUSE_S passes
            assert loop.time() - started < 30, "never resumed after MAX_PAUSE_S"
            await asyncio.sleep(0.01)
        resumed_after = loop.time() - started
        flow.report("timer", 1000)
        within_min_read = publisher.reading
        await asyncio.sleep(publish_flow.MIN_READ_S + 0.01)
        flow.report("timer", 1000)
        return paused, resumed_after, within_min_read, publisher.reading, flow.pauses
    paused, resumed_after, within_min_read, again, pauses = asyncio.run(scenario())
    assert not paused and resumed_after >= 0.05 - 0.005 and within_min_read
    assert not again and pauses == 2


class Told(Recorded):
    """A stand-in that also records the connection.blocked / unblocked
    frames sent to it (it announced the capability)."""

    name = "connection test"
    state = "open"
    handshake = SimpleNamespace(client_properties={"capabilities": {"connection.blocked": True}})

    def __init__(self, publisher: bool):
        super().__init__(publisher)
        self.frames: list[str] = []

    def send(self, data: bytes) -> None:
        method = decode_method(data[7:-1])
        self.frames.append(f"blocked {method.reason}" if isinstance(method, commands.Connection.Blocked)
                           else "unblocked")


def test_resource_alarms_block_until_every_reason_clears():
    async def scenario():
        publisher, consumer = Told(True), Told(False)
        flow = PublishFlow({publisher, consumer})
        flow.block(publish_flow.DISK)
        flow.block(publish_flow.MEMORY)  # already paused: told once
        flow.report("timer", LATE_MS + 5)
        flow.unblock(publish_flow.MEMORY)
        after_memory = (publisher.reading, list(publisher.frames))
        flow.unblock(publish_flow.DISK)  # told unblocked, still paused: the timer is late
        after_disk = (publisher.reading, list(publisher.frames))
        flow.report("timer", 0)
        return after_memory, after_disk, publisher.reading, consumer.frames, consumer.reading
    after_memory, after_disk, reading, consumer_frames, consumer_reading = asyncio.run(scenario())
    assert after_memory == (False, ["blocked low on disk"])
    assert after_disk == (False, ["blocked low on disk", "unblocked"])
    assert reading
    assert consumer_frames == [] and consumer_reading


def test_a_connection_that_publishes_under_an_alarm_is_held():
    async def scenario():
        newcomer = Told(False)
        flow = PublishFlow({newcomer})
        flow.block(publish_flow.MEMORY)
        before = newcomer.reading
        newcomer.publisher = True
        flow.hold(newcomer)
        held = (newcomer.reading, list(newcomer.frames))
        flow.forget_connection(newcomer)  # closed meanwhile: nothing more is sent to it
        flow.unblock(publish_flow.MEMORY)
        return before, held, newcomer.frames
    before, held, frames = asyncio.run(scenario())
    assert before
    assert held == (False, ["blocked low on memory"])
    assert frames == ["blocked low on memory"]
