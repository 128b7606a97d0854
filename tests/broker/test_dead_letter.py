"""Unit tests of the pure parts of broker/queues/dead_letter.py: x-death headers as
RabbitMQ 3.10 builds them (rabbit_dead_letter.erl), cycle detection and the
dead-lettered copy's properties."""

from __future__ import annotations

import datetime

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.queues.dead_letter import (copy_message, dead_letter_properties, header_routes, is_cycle, routing_header_keys,
                                      x_death_headers)

NOW = 1_700_000_000.7
WHEN = datetime.datetime.fromtimestamp(1_700_000_000, datetime.timezone.utc)


def test_first_death_adds_x_death_and_first_death_headers():
    headers = x_death_headers({"h": 1}, "expired", "q1", "ex", ["rk", "cc1"], "50", now=NOW)
    assert headers == {
        "h": 1,
        "x-death": [{"count": 1, "reason": "expired", "queue": "q1", "time": WHEN, "exchange": "ex",
                     "routing-keys": ["rk", "cc1"], "original-expiration": "50"}],
        "x-first-death-reason": "expired", "x-first-death-queue": "q1", "x-first-death-exchange": "ex",
    }


def test_same_queue_and_reason_increments_count_and_keeps_first_fields():
    first = x_death_headers(None, "rejected", "q1", "ex", ["rk"], None, now=NOW)
    later = x_death_headers(first, "rejected", "q1", "other-ex", ["other"], None, now=NOW + 100)
    assert later["x-death"] == [{"count": 2, "exchange": "ex", "queue": "q1", "reason": "rejected",
                                 "routing-keys": ["rk"], "time": WHEN}]
    assert later["x-first-death-exchange"] == "ex"


def test_other_death_is_prepended_and_first_death_headers_stay():
    first = x_death_headers(None, "rejected", "q1", "ex", ["rk"], None, now=NOW)
    second = x_death_headers(first, "expired", "q2", "dlx", ["rk"], None, now=NOW)
    assert [(d["queue"], d["reason"], d["count"]) for d in second["x-death"]] == [
        ("q2", "expired", 1), ("q1", "rejected", 1)]
    assert second["x-first-death-queue"] == "q1"
    third = x_death_headers(second, "rejected", "q1", "ex", ["rk"], None, now=NOW)
    assert [(d["queue"], d["reason"], d["count"]) for d in third["x-death"]] == [
        ("q1", "rejected", 2), ("q2", "expired", 1)]


def test_cycle_detection_as_rabbitmq():
    expired_in_a = [{"queue": "a", "reason": "expired"}]
    assert is_cycle("a", expired_in_a)
    assert not is_cycle("b", expired_in_a)
    # a rejection on the way makes it a deliberate loop, not a cycle
    assert not is_cycle("a", [{"queue": "b", "reason": "rejected"}, {"queue": "a", "reason": "expired"}])
    assert is_cycle("a", [{"queue": "b", "reason": "maxlen"}, {"queue": "a", "reason": "expired"}])
    assert not is_cycle("a", [{"queue": "a", "reason": "rejected"}])


def test_header_routes_cc_then_bcc():
    assert header_routes({"CC": ["a", b"b"], "BCC": ["c"]}) == ["a", "b", "c"]
    assert header_routes(None) == [] and header_routes({"CC": "not-an-array"}) == []


def test_routing_header_keys_keeps_utf8_strings_of_an_array():
    """The one CC/BCC parser: string elements only (bytes as UTF-8), None for a non-array."""
    assert routing_header_keys(["a", b"b", 5, b"\xff", {"t": 1}]) == ["a", "b"]
    assert routing_header_keys("a") is None and routing_header_keys(None) is None


def test_dead_letter_routing_key_replaces_keys_and_drops_cc():
    props = Basic.Properties(headers={"CC": ["c1"]}, expiration="100", delivery_mode=2, message_id="m")
    new, keys = dead_letter_properties(props, "expired", "q", "ex", "rk", "dl-rk", now=NOW)
    assert keys == ["dl-rk"]
    assert "CC" not in new.headers and new.expiration is None
    assert new.delivery_mode == 2 and new.message_id == "m"
    assert new.headers["x-death"][0]["routing-keys"] == ["rk", "c1"]
    new, keys = dead_letter_properties(props, "expired", "q", "ex", "rk", None, now=NOW)
    assert keys == ["rk", "c1"] and new.headers["CC"] == ["c1"]


def test_copy_message_is_a_new_message_with_new_header_bytes():
    header = ContentHeader(0, 4, Basic.Properties(expiration="5", headers={"a": 1})).marshal()
    copy, keys, deaths = copy_message("ex", "rk", header, b"body", "rejected", "q", "dlx", None)
    assert (copy.exchange, copy.routing_key, keys, copy.body) == ("dlx", "rk", ["rk"], b"body")
    assert copy.header != header and copy.properties.expiration is None
    assert copy.properties.headers["x-death"][0]["original-expiration"] == "5"
    assert copy.stored is None
    assert deaths == [{"queue": "q", "reason": "rejected"}]
