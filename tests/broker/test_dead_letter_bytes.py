"""Unit tests of broker/queues/dead_letter_bytes.py and the header walkers of
broker/model/message_headers.py: the first death built as bytes must decode to
exactly what the pamqp path of broker/queues/dead_letter.py builds (and, when the
publisher's headers are already in pamqp's sorted encoding, be the same
bytes), keep the publisher's other properties and header field types, and
leave later deaths and CC/BCC messages to the pamqp path."""

from __future__ import annotations

import datetime

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.queues.dead_letter import copy_message, dead_letter_properties
from broker.queues.dead_letter_bytes import first_death_header
from broker.model.message import Message
from broker.model.message_headers import expiration_of, signed_int_field, splice_headers, with_int_at

NOW = 1_700_000_000


def _header(**properties) -> bytes:
    return ContentHeader(0, 4, Basic.Properties(**properties)).marshal()


def _pamqp_path(header: bytes, reason="expired", queue="q1", exchange="ex", routing_key="rk") -> bytes:
    content_header = ContentHeader()
    content_header.unmarshal(header)
    properties, _keys = dead_letter_properties(content_header.properties, reason, queue, exchange,
                                               routing_key, None, now=NOW)
    return ContentHeader(0, 4, properties).marshal()


@pytest.mark.parametrize("properties", [
    {},
    {"expiration": "1500"},
    {"expiration": "60000", "delivery_mode": 2, "message_id": "m-1", "priority": 3},
    {"headers": {"a": "b", "n": "1"}, "expiration": "5", "content_type": "text/plain", "app_id": "app"},
    {"headers": {}, "correlation_id": "c", "reply_to": "r", "timestamp": datetime.datetime(2020, 1, 1),
     "message_type": "t", "user_id": "guest", "content_encoding": "gzip"},
])
def test_first_death_bytes_equal_the_pamqp_path(properties):
    header = _header(**properties)
    fast = first_death_header(header, "expired", "q1", "ex", "rk", NOW)
    assert fast == _pamqp_path(header)


def test_first_death_keeps_the_publishers_field_types_verbatim():
    # a 32-bit int and an unsorted table: pamqp would re-encode both differently
    table = b"\x01zI\x00\x00\x00\x07\x01aS\x00\x00\x00\x01b"
    header = (ContentHeader(0, 4, Basic.Properties()).marshal()[:12] + b"\x20\x00"
              + len(table).to_bytes(4, "big") + table)
    fast = first_death_header(header, "rejected", "q", "", "rk", NOW)
    assert fast[18:18 + len(table)] == table
    decoded = Message("", "", fast, b"").properties.headers
    assert decoded["z"] == 7 and decoded["a"] == "b"
    assert decoded["x-death"][0]["count"] == 1 and decoded["x-first-death-reason"] == "rejected"


@pytest.mark.parametrize("headers", [{"CC": ["c"]}, {"x-death": [{"count": 1}]}, {"x-first-death-queue": "q"}])
def test_later_deaths_and_cc_take_the_pamqp_path(headers):
    assert first_death_header(_header(headers=headers), "expired", "q", "ex", "rk", NOW) is None


def test_copy_message_fast_and_slow_paths_give_the_same_headers():
    header = _header(headers={"h": "v"}, expiration="10")
    fast, keys, deaths = copy_message("ex", "rk", header, b"body", "expired", "q", "dlx", None,
                                      bcc=["b1"], now=NOW)
    assert keys == ["rk", "b1"] and deaths == [{"queue": "q", "reason": "expired"}]
    slow_header = _pamqp_path(header, queue="q")
    assert Message("", "", fast.header, b"").properties.headers == Message("", "", slow_header, b"").properties.headers
    again, keys, deaths = copy_message("dlx", "rk", fast.header, b"body", "expired", "q2", "dlx2", "dl-rk", now=NOW)
    assert keys == ["dl-rk"] and [(d["queue"], d["reason"]) for d in deaths] == [("q2", "expired"), ("q", "expired")]


def test_expiration_of_and_malformed_headers():
    assert expiration_of(_header(expiration="250", headers={"a": "b"}, priority=1)) == b"250"
    assert expiration_of(_header(priority=1)) is None
    truncated = _header(expiration="250")[:-2]
    assert expiration_of(truncated) is None
    assert splice_headers(truncated, b"", drop_expiration=True) is None


def _with_table(table: bytes, tail: bytes = b"") -> bytes:
    """A content header with only the headers property (raw table bytes)."""
    return (ContentHeader(0, 4, Basic.Properties()).marshal()[:12] + b"\x20\x00"
            + len(table).to_bytes(4, "big") + table + tail)


@pytest.mark.parametrize("encoded,value", [(b"b\x05", 5), (b"s\x13\x88", 5000), (b"I\x00\x01\x86\xa0", 100000),
                                           (b"l" + (5_000_000_000).to_bytes(8, "big"), 5_000_000_000)])
def test_signed_int_field_reads_and_negates_in_place(encoded, value):
    header = _with_table(b"\x01aS\x00\x00\x00\x02xy\x01tT" + bytes(8) + b"\x07x-delay" + encoded)
    found = signed_int_field(header, b"x-delay")
    assert found[0] == value
    swapped = with_int_at(header, *found[1:], -value)
    assert Message("", "", swapped, b"").properties.headers["x-delay"] == -value
    assert len(swapped) == len(header)


def test_signed_int_field_absent_other_type_or_malformed():
    assert signed_int_field(_header(priority=1), b"x-delay") is None
    assert signed_int_field(_header(headers={"a": "b"}), b"x-delay") is None
    with pytest.raises(LookupError):
        signed_int_field(_header(headers={"x-delay": "5000"}), b"x-delay")
    with pytest.raises(LookupError):
        signed_int_field(_with_table(b"\x07x-delayi\x00\x00\x13\x88"), b"x-delay")  # unsigned: pamqp path
    with pytest.raises(LookupError):
        signed_int_field(_with_table(b"\x07x-delay")[:-3], b"x-delay")
