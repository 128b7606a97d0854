"""Differential: message TTL (queue ``x-message-ttl``, per-message
``expiration``, TTL 0) and queue expiry (``x-expires``).

Rules from https://www.rabbitmq.com/ttl.html. RabbitMQ only discards expired
messages at the head of the queue while Leveret expires them anywhere, so
every scenario here looks only after all deadlines have passed, or uses one
TTL for all messages: then both brokers must show the same result.
"""

from __future__ import annotations

import time

import pytest

from tests.differential.scenario_tools import Collector, dead_headers, death, per_consumer, scope

TTL_MS = 150          # small TTLs keep the suite fast; waits are 3x or more
PAST_DEADLINE = 0.6   # seconds to sleep so that every TTL_MS deadline has passed


def queue_ttl_expires_everything(url: str):
    """x-message-ttl: messages older than the TTL are gone; a fresh one is not."""
    with scope(url) as s:
        q = s.queue("main", **{"x-message-ttl": 1000})
        s.publish("", q, "old-1")
        s.publish("", q, "old-2")
        time.sleep(1.4)
        s.publish("", q, "fresh")
        return {"count": s.count(q), "bodies": s.drain(q, "body")}


def test_queue_ttl_expires_old_messages(differential):
    differential(queue_ttl_expires_everything, {"count": 1, "bodies": ["fresh"]})


def expired_messages_are_dead_lettered(url: str):
    """Expired messages go to the DLX with an x-death 'expired' entry; the
    other properties and headers are kept."""
    with scope(url) as s:
        dlq = s.queue("dlq")
        q = s.queue("main", **{"x-message-ttl": TTL_MS, "x-dead-letter-exchange": "",
                               "x-dead-letter-routing-key": dlq})
        for body in ("a", "b", "c"):
            s.publish("", q, body, content_type="text/plain", correlation_id=f"id-{body}",
                      delivery_mode=1, headers={"app": "demo"})
        return s.wait_drain(dlq, 3)


def test_expired_messages_are_dead_lettered_with_x_death(differential):
    headers = dead_headers([death("<main>", "expired", ["<main>"])], app="demo")
    expected = [{"body": b, "redelivered": False, "exchange": "", "routing_key": "<dlq>",
                 "content_type": "text/plain", "correlation_id": f"id-{b}", "delivery_mode": 1,
                 "priority": None, "expiration": None, "headers": headers} for b in "abc"]
    differential(expired_messages_are_dead_lettered, expected)


def per_message_expiration_interleaved(url: str):
    """Per-message expiration on every other message: after the deadlines the
    queue holds the others in order, the DLX got the expired ones in order
    with ``original-expiration`` in x-death and no expiration property."""
    with scope(url) as s:
        dlq = s.queue("dlq")
        q = s.queue("main", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq})
        s.publish("", q, "A", expiration=str(TTL_MS))
        s.publish("", q, "B")
        s.publish("", q, "C", expiration=str(TTL_MS))
        s.publish("", q, "D")
        time.sleep(PAST_DEADLINE)
        kept = s.drain(q, "body", "redelivered")
        dead = s.wait_drain(dlq, 2, "body", "expiration", "headers")
        return {"kept": kept, "dead": dead}


def test_per_message_expiration(differential):
    headers = dead_headers([death("<main>", "expired", ["<main>"], original_expiration=str(TTL_MS))])
    differential(per_message_expiration_interleaved, {
        "kept": [{"body": "B", "redelivered": False}, {"body": "D", "redelivered": False}],
        "dead": [{"body": b, "expiration": None, "headers": headers} for b in "AC"],
    })


def lower_ttl_wins(url: str):
    """Queue TTL vs message expiration: whichever is lower applies."""
    with scope(url) as s:
        dlq = s.queue("dlq")
        dl = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
        short_queue = s.queue("short-queue-ttl", **{"x-message-ttl": TTL_MS}, **dl)
        long_queue = s.queue("long-queue-ttl", **{"x-message-ttl": 60_000}, **dl)
        s.publish("", short_queue, "long-expiration", expiration="60000")
        s.publish("", long_queue, "short-expiration", expiration=str(TTL_MS))
        s.publish("", long_queue, "no-expiration")
        time.sleep(PAST_DEADLINE)
        return {
            "short-queue-ttl": s.drain(short_queue, "body"),
            "long-queue-ttl": s.drain(long_queue, "body"),
            "dead": sorted((m["body"], m["headers"]["x-death"][0]["queue"],
                            m["headers"]["x-death"][0].get("original-expiration"))
                           for m in s.wait_drain(dlq, 2)),
        }


def test_lower_of_queue_ttl_and_expiration_wins(differential):
    differential(lower_ttl_wins, {
        "short-queue-ttl": [],
        "long-queue-ttl": ["no-expiration"],
        "dead": [("long-expiration", "<short-queue-ttl>", "60000"),
                 ("short-expiration", "<long-queue-ttl>", str(TTL_MS))],
    })


def ttl_zero(url: str):
    """TTL 0 (queue argument or expiration "0"): a message is expired on
    arrival unless a consumer can take it at once."""
    with scope(url) as s:
        dlq = s.queue("dlq")
        dl = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
        zero_q = s.queue("zero-queue-ttl", **{"x-message-ttl": 0}, **dl)
        plain_q = s.queue("plain", **dl)
        s.publish("", zero_q, "no-consumer-1")
        s.publish("", plain_q, "no-consumer-2", expiration="0")
        s.publish("", plain_q, "stays")
        dead = s.wait_drain(dlq, 2, "body")
        kept = s.drain(plain_q, "body")
        collector = Collector(s)
        consumer_ch = s.channel()
        collector.consume(consumer_ch, zero_q, "zero", auto_ack=True)
        collector.consume(consumer_ch, plain_q, "plain", auto_ack=True)
        collector.pump(0.2)
        s.publish("", zero_q, "to-consumer-1")
        s.publish("", plain_q, "to-consumer-2", expiration="0")
        delivered = collector.wait(2)
        # "dead" comes from two queues (no order defined between them)
        return {"dead": sorted(dead), "kept": kept, "delivered": per_consumer(delivered),
                "dead-after": s.drain(dlq, "body")}


def test_ttl_zero_expires_unless_a_consumer_is_ready(differential):
    differential(ttl_zero, {
        "dead": ["no-consumer-1", "no-consumer-2"],
        "kept": ["stays"],
        "delivered": {"plain": [("to-consumer-2", False)], "zero": [("to-consumer-1", False)]},
        "dead-after": [],
    })


@pytest.mark.parametrize("expiration", ["abc", "-1", "1.5"])
def test_invalid_expiration_closes_the_channel(differential, expiration):
    def invalid_expiration(url: str):
        with scope(url) as s:
            q = s.queue("main")
            return s.error(lambda: s.publish("", q, "x", expiration=expiration))

    expected = {"abc": "no_integer", "-1": "{value_negative,-1}", "1.5": '{leftover_string,".5"}'}
    differential(invalid_expiration,
                 (406, f"PRECONDITION_FAILED - invalid expiration '{expiration}': {expected[expiration]}"))


def queue_expiry(url: str):
    """x-expires: an unused queue (no consumers, even with messages) is
    deleted after the period; one with a consumer is not, until it loses it."""
    with scope(url) as s:
        unused = s.queue("unused", **{"x-expires": 300})
        used = s.queue("used", **{"x-expires": 300})
        s.publish("", unused, "m")
        consumer_ch = s.channel()
        tag = consumer_ch.basic_consume(used, lambda *a: None)
        time.sleep(1.0)
        result = {"unused": s.error(lambda: s.ch.queue_declare(unused, passive=True)),
                  "used-while-consumed": s.error(lambda: s.ch.queue_declare(used, passive=True))}
        consumer_ch.basic_cancel(tag)
        time.sleep(1.0)
        result["used-after-cancel"] = s.error(lambda: s.ch.queue_declare(used, passive=True))
        return result


def test_queue_expires_when_unused(differential):
    differential(queue_expiry, {
        "unused": (404, "NOT_FOUND - no queue '<unused>' in vhost '/'"),
        "used-while-consumed": "ok",
        "used-after-cancel": (404, "NOT_FOUND - no queue '<used>' in vhost '/'"),
    })


@pytest.mark.parametrize("argument, value, reason", [
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-message-ttl", "1000", '"expected integer, got longstr"'),
    ("x-expires", 0, "{value_zero,0}"),
    ("x-expires", -5, "{value_negative,-5}"),
])
def test_ttl_argument_validation(differential, argument, value, reason):
    def declare(url: str):
        with scope(url) as s:
            return s.error(lambda: s.queue("main", **{argument: value}))

    differential(declare, (406, f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '<main>' "
                                f"in vhost '/': {reason}"))
