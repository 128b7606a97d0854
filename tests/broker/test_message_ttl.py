"""Unit tests of broker/queues/message_ttl.py: expiration parsing with RabbitMQ's
error texts, the lower TTL wins, and the expiry index (heap with lazy
deletion and one timer) on a real event loop."""

from __future__ import annotations

import asyncio

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.model.clock import now_ms
from broker.model.message_headers import has_expiration
from broker.queues.message_ttl import ExpiryIndex, effective_ttl, parse_expiration


@pytest.mark.parametrize("text,value", [("0", 0), ("1500", 1500), ("+5", 5), (b"42", 42),
                                        ("4294967296", 4294967296)])
def test_parse_valid(text, value):
    assert parse_expiration(text) == value


@pytest.mark.parametrize("text,reason", [("abc", "no_integer"), ("", "no_integer"), (" 5", "no_integer"),
                                         ("-5", "{value_negative,-5}"), ("10x", '{leftover_string,"x"}'),
                                         ("5.0", '{leftover_string,".0"}')])
def test_parse_invalid_reasons_as_rabbitmq(text, reason):
    with pytest.raises(ValueError) as info:
        parse_expiration(text)
    assert str(info.value) == reason


def test_lower_ttl_wins():
    assert effective_ttl(None, None) is None
    assert effective_ttl(100, None) == 100 and effective_ttl(None, 7) == 7
    assert effective_ttl(100, 7) == 7 and effective_ttl(5, 70) == 5


def test_has_expiration_flag():
    assert has_expiration(ContentHeader(0, 1, Basic.Properties(expiration="1")).marshal())
    assert not has_expiration(ContentHeader(0, 1, Basic.Properties(message_id="x", priority=1)).marshal())


def test_index_expires_in_deadline_order_skipping_discarded():
    async def scenario():
        fired = []
        index = ExpiryIndex(lambda batch: fired.extend((mid, ref, now_ms()) for mid, ref in batch))
        start = now_ms()
        index.add(1, start + 300, "one")
        index.add(2, start + 100, None)
        index.add(3, start + 200, "three")
        index.add(4, start + 150, "four")
        assert index.discard(4) == start + 150  # delivered: never fires
        index.add(3, start + 50, "three")       # new deadline replaces the old one
        await asyncio.sleep(0.6)
        return start, fired, index
    start, fired, index = asyncio.run(scenario())
    assert [(mid, ref) for mid, ref, _at in fired] == [(3, "three"), (2, None), (1, "one")]
    for (mid, _ref, at), due in zip(fired, (50, 100, 300)):
        assert at >= start + due
    assert len(index) == 0


def test_index_rebuilds_heap_when_stale_entries_pile_up():
    async def scenario():
        index = ExpiryIndex(lambda batch: None)
        far = now_ms() + 3_600_000
        for mid in range(20_000):
            index.add(mid, far, None)
            index.discard(mid)
        size = len(index.heap)
        index.clear()
        return size
    assert asyncio.run(scenario()) < 10_000
