"""broker.queues.priority_ready: the per-level ready structure of priority queues
(rabbitmq.com/priority.html: higher first, FIFO within a priority, no
priority = 0, above the maximum = the maximum)."""

from __future__ import annotations

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.model.message import Message, QueuedMessage
from broker.queues.priority_ready import PriorityReady, header_priority, max_priority


def _header(priority: int | None, **properties) -> bytes:
    return ContentHeader(0, 1, Basic.Properties(priority=priority, **properties)).marshal()


def _entry(seq: int, priority: int | None) -> QueuedMessage:
    return QueuedMessage(Message("", "rk", _header(priority), b"%d" % seq), seq)


def _seqs(iterable) -> list[int]:
    return [entry.seq for entry in iterable]


@pytest.mark.parametrize("properties", [
    {},
    {"content_type": "text/plain", "content_encoding": "gzip"},
    {"headers": {"a": 1, "nested": {"b": "c"}}, "delivery_mode": 2},
    {"content_type": "t", "headers": {"x": "y" * 300}, "delivery_mode": 1, "correlation_id": "c"},
])
@pytest.mark.parametrize("priority", [None, 0, 1, 9, 255])
def test_header_priority_skips_the_properties_before_it(properties, priority):
    assert header_priority(_header(priority, **properties)) == (priority or 0)


def test_header_priority_of_a_truncated_header_is_zero():
    header = _header(5, content_type="text/plain")
    assert header_priority(header[:-1]) == 0


@pytest.mark.parametrize("arguments, expected", [
    ({}, 0), ({"x-max-priority": 0}, 0), ({"x-max-priority": 10}, 10), ({"x-max-priority": 255}, 255),
    ({"x-max-priority": "5"}, 0), ({"x-max-priority": True}, 0),
])
def test_max_priority(arguments, expected):
    assert max_priority(arguments) == expected


def test_higher_first_fifo_within_a_level_and_capped_at_the_maximum():
    ready = PriorityReady(5)
    priorities = [None, 1, 5, 9, 0, 3, 5, 1, None, 9]  # the order RabbitMQ 3.10 was checked with
    for seq, priority in enumerate(priorities, 1):
        ready.append(_entry(seq, priority))
    assert len(ready) == 10 and ready
    assert _seqs(ready) == [3, 4, 7, 10, 6, 2, 8, 1, 5, 9]
    assert ready[0].seq == 3
    assert _seqs(ready.popleft() for _ in range(10)) == [3, 4, 7, 10, 6, 2, 8, 1, 5, 9]
    assert not ready and len(ready) == 0
    with pytest.raises(IndexError):
        ready.popleft()
    with pytest.raises(IndexError):
        ready[0]


def test_requeue_goes_back_to_its_original_place_within_its_level():
    ready = PriorityReady(3)
    entries = [_entry(seq, priority) for seq, priority in enumerate([0, 3, 3, 0, 3, 0], 1)]
    for entry in entries:
        ready.append(entry)
    taken = [ready.popleft() for _ in range(4)]  # 2, 3, 5 (level 3), then 1 (level 0)
    assert _seqs(taken) == [2, 3, 5, 1]
    ready.append(_entry(7, 3))
    for entry in (taken[2], taken[0], taken[3]):  # out of order; 3 stays out
        ready.insert_in_order(entry)
    assert _seqs(ready) == [2, 5, 7, 1, 4, 6]
    ready.insert_in_order(taken[1])  # fills the gap between 2 and 5
    assert _seqs(ready) == [2, 3, 5, 7, 1, 4, 6]
    assert len(ready) == 7


def test_appendleft_and_a_new_higher_level_after_draining():
    ready = PriorityReady(9)
    ready.append(_entry(1, 9))
    assert ready.popleft().seq == 1
    ready.append(_entry(2, 1))
    ready.appendleft(_entry(3, 1))
    ready.append(_entry(4, 4))
    assert _seqs(ready.popleft() for _ in range(3)) == [4, 3, 2]


def test_clear():
    ready = PriorityReady(2)
    for seq in range(6):
        ready.append(_entry(seq, seq % 3))
    ready.clear()
    assert len(ready) == 0 and list(ready) == [] and not ready
    ready.append(_entry(9, 0))
    assert ready.popleft().seq == 9


def test_many_messages_interleaved_keep_the_order_a_sort_gives():
    ready = PriorityReady(10)
    import random
    rng = random.Random(4)
    entries = [_entry(seq, rng.choice([None, *range(13)])) for seq in range(2000)]
    for entry in entries:
        ready.append(entry)
    expected = sorted(entries, key=lambda e: (-min(header_priority(e.message.header), 10), e.seq))
    assert _seqs(ready) == _seqs(expected)
    assert _seqs(ready.popleft() for _ in range(2000)) == _seqs(expected)
