"""Differential: queue length limits ``x-max-length`` / ``x-max-length-bytes``
with each ``x-overflow`` (drop-head, reject-publish, reject-publish-dlx),
dead-lettering of dropped messages, and publisher confirms for rejections.

Rules from https://www.rabbitmq.com/maxlength.html: only ready messages
count (not unacked ones); bytes are body bytes only.
"""

from __future__ import annotations

import pytest

from tests.differential.scenario_tools import dead_headers, death, scope

DL = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "@dlq"}


def drop_head(url: str):
    """Default overflow: the oldest messages are dropped (and dead-lettered
    with reason maxlen) to make room; the publisher still gets acks."""
    with scope(url) as s:
        dlq = s.queue("dlq")
        q = s.queue("main", **{"x-max-length": 2}, **DL)
        acks = [s.publish("", q, str(n)) for n in range(1, 6)]
        return {"acks": acks, "count": s.count(q), "main": s.drain(q, "body"),
                "dead": s.wait_drain(dlq, 3, "body", "headers")}


def test_drop_head_dead_letters_the_oldest(differential):
    headers = dead_headers([death("<main>", "maxlen", ["<main>"])])
    differential(drop_head, {"acks": ["ack"] * 5, "count": 2, "main": ["4", "5"],
                             "dead": [{"body": b, "headers": headers} for b in "123"]})


def drop_head_bytes(url: str):
    """x-max-length-bytes counts body bytes: 4-byte bodies, limit 10."""
    with scope(url) as s:
        q = s.queue("main", **{"x-max-length-bytes": 10})
        for body in ("aaaa", "bbbb", "cccc", "dddd"):
            s.publish("", q, body, headers={"padding": "x" * 100})
        return {"count": s.count(q), "main": s.drain(q, "body")}


def test_max_length_bytes_counts_bodies(differential):
    differential(drop_head_bytes, {"count": 2, "main": ["cccc", "dddd"]})


@pytest.mark.parametrize("overflow", ["reject-publish", "reject-publish-dlx"])
def test_reject_publish(differential, overflow):
    def scenario(url: str):
        """A full queue refuses new messages: basic.nack to a confirming
        publisher, silent drop otherwise; reject-publish-dlx dead-letters
        the refused ones, reject-publish does not. A message that also
        reached another queue is still nacked. Room made by consuming is
        used again."""
        with scope(url) as s:
            dlq = s.queue("dlq")
            fan = s.exchange("fan", "fanout")
            q = s.queue("main", **{"x-max-length": 2, "x-overflow": overflow}, **DL)
            other = s.queue("other")
            s.ch.queue_bind(q, fan)
            s.ch.queue_bind(other, fan)
            confirms = [s.publish(fan, "", str(n)) for n in range(1, 5)]
            plain = s.channel()
            s.publish(fan, "", "unconfirmed", ch=plain)
            seen_by_other = s.wait_drain(other, 5, "body")  # the unconfirmed one was routed
            first = s.drain(q, "body")
            again = s.publish("", q, "after-drain")
            return {"confirms": confirms, "again": again, "main": first + s.drain(q, "body"),
                    "other": seen_by_other,
                    "dead": s.wait_drain(dlq, 3 if overflow == "reject-publish-dlx" else 0,
                                         "body", "headers", timeout=1)}

    headers = dead_headers([death("<main>", "maxlen", [""], exchange="<fan>")])
    dead = [{"body": b, "headers": headers} for b in ("3", "4", "unconfirmed")]
    differential(scenario, {
        "confirms": ["ack", "ack", "nack", "nack"], "again": "ack",
        "main": ["1", "2", "after-drain"], "other": ["1", "2", "3", "4", "unconfirmed"],
        "dead": dead if overflow == "reject-publish-dlx" else [],
    })


def unacked_do_not_count(url: str):
    """Messages delivered but not acked are outside the limit."""
    with scope(url) as s:
        q = s.queue("main", **{"x-max-length": 1})
        rq = s.queue("reject", **{"x-max-length": 1, "x-overflow": "reject-publish"})
        s.publish("", q, "1")
        s.publish("", rq, "1")
        tags = [s.ch.basic_get(name)[0].delivery_tag for name in (q, rq)]
        result = {"drop-head": [s.publish("", q, b) for b in ("2", "3")],
                  "reject": [s.publish("", rq, b) for b in ("2", "3")],
                  "counts": [s.count(q), s.count(rq)]}
        for tag in tags:
            s.ch.basic_ack(tag)
        result.update(main=s.drain(q, "body"), rejecting=s.drain(rq, "body"))
        return result


def test_unacked_messages_do_not_count(differential):
    differential(unacked_do_not_count, {"drop-head": ["ack", "ack"], "reject": ["ack", "nack"],
                                        "counts": [1, 1], "main": ["3"], "rejecting": ["2"]})


def max_length_zero(url: str):
    """x-max-length 0: nothing is ever kept; every message is dead-lettered."""
    with scope(url) as s:
        dlq = s.queue("dlq")
        q = s.queue("main", **{"x-max-length": 0}, **DL)
        s.publish("", q, "a")
        s.publish("", q, "b")
        return {"main": s.drain(q, "body"), "dead": s.wait_drain(dlq, 2, "body")}


def test_max_length_zero(differential):
    differential(max_length_zero, {"main": [], "dead": ["a", "b"]})


@pytest.mark.parametrize("argument, value, reason", [
    ("x-max-length", -1, "{value_negative,-1}"),
    ("x-max-length-bytes", -1, "{value_negative,-1}"),
    ("x-max-length", "10", '"expected integer, got longstr"'),
    ("x-overflow", "drop-tail", "invalid_overflow"),
])
def test_length_argument_validation(differential, argument, value, reason):
    def declare(url: str):
        with scope(url) as s:
            return s.error(lambda: s.queue("main", **{argument: value}))

    differential(declare, (406, f"PRECONDITION_FAILED - invalid arg '{argument}' for queue '<main>' "
                                f"in vhost '/': {reason}"))
