"""``find`` on schema 2: a queue's messages come from ``messages.queue``
(routed to one queue) and ``message_queues`` (routed to several), bounded
by the time range on both sides; the ``instr`` test before a header's JSON
never drops a match (values with escapes, non-ASCII, JSON text)."""

from __future__ import annotations

import pytest

from storage.mirror import MessageMirror, find
from storage.wal import MESSAGE, Position, encode_message
from tests.storage.test_mirror_scenario import BASE, content_header

HEADERS = [
    {"tenant": "acme"},
    {"tenant": 'say "hi"'},
    {"tenant": "zürich"},
    {"tenant": "tab\there"},
    {"n": 42},
    {"flag": True},
]


@pytest.fixture
async def db(tmp_path):
    path = tmp_path / "messages.db"
    mirror = MessageMirror(path)
    await mirror.start()
    offset = 16
    for i, headers in enumerate(HEADERS, 1):
        queues = ["a", "b"] if i % 2 else ["a"]
        payload = encode_message(i, "/", "x", "", queues,
                                 content_header(b"b", delivery_mode=2, headers=headers),
                                 b"b", at_ms=BASE + 1000 * i)
        mirror.feed(MESSAGE, payload, Position(1, offset, len(payload)))
        offset += len(payload) + 9
    await mirror.stop()
    return path


def ids(rows) -> list[int]:
    return [r["id"] for r in rows]


def test_queue_with_one_and_several_queues_and_a_time_range(db):
    assert ids(find(db, queue="a")) == [6, 5, 4, 3, 2, 1]
    assert ids(find(db, queue="b")) == [5, 3, 1]
    assert ids(find(db, queue="b", since=BASE + 2000, until=BASE + 5000)) == [3]
    assert ids(find(db, queue="a", since=BASE + 2000, until=BASE + 5000)) == [4, 3, 2]
    assert ids(find(db, queue="b", since=BASE + 5000)) == [5]
    assert find(db, queue="c") == []


@pytest.mark.parametrize("name, value, expected", [
    ("tenant", "acme", [1]),
    ("tenant", 'say "hi"', [2]),
    ("tenant", "zürich", [3]),
    ("tenant", "tab\there", [4]),
    ("n", "42", [5]),
    ("n", 42, [5]),
    ("flag", "true", [6]),
    ("tenant", "acm", []),
    ("n", "4", []),
])
def test_header_values_match_with_or_without_the_instr_test(db, name, value, expected):
    assert ids(find(db, headers={name: value})) == expected
