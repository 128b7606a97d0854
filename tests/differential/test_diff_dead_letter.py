"""Differential: dead-lettering (``x-dead-letter-exchange``,
``x-dead-letter-routing-key``) on reject/nack, the x-death and
x-first-death-* headers, CC handling, and cycle detection.

Rules from https://www.rabbitmq.com/dlx.html (expiry and length-limit
dead-lettering are covered in test_diff_ttl.py and test_diff_max_length.py).
"""

from __future__ import annotations

import time

from tests.differential.scenario_tools import dead_headers, death, scope


def rejections(url: str):
    """reject / nack (single and multiple) without requeue dead-letter, with
    the original exchange and routing key in x-death; reject with requeue and
    a closed channel's unacked messages do not."""
    with scope(url) as s:
        src = s.exchange("src", "direct")
        dlx = s.exchange("dlx", "direct")
        dlq = s.queue("dlq")
        s.ch.queue_bind(dlq, dlx, "work")
        q = s.queue("main", **{"x-dead-letter-exchange": "@dlx"})
        s.ch.queue_bind(q, src, "work")
        for body in ("rejected", "nacked", "multi-1", "multi-2", "requeued", "unacked"):
            s.publish(src, "work", body, correlation_id=body, priority=3)
        get = lambda: s.ch.basic_get(q)[0].delivery_tag  # noqa: E731
        s.ch.basic_reject(get(), requeue=False)
        s.ch.basic_nack(get(), requeue=False)
        get()
        s.ch.basic_nack(get(), multiple=True, requeue=False)
        s.ch.basic_reject(get(), requeue=True)
        other = s.channel()
        other.basic_get(q)            # "requeued" again, left unacked
        other.basic_get(q)            # "unacked"
        other.close()
        dead = s.wait_drain(dlq, 4)
        return {"dead": dead, "main": s.drain(q, "body", "redelivered")}


def test_reject_and_nack_dead_letter(differential):
    headers = dead_headers([death("<main>", "rejected", ["work"], exchange="<src>")])
    dead = [{"body": b, "redelivered": False, "exchange": "<dlx>", "routing_key": "work",
             "content_type": None, "correlation_id": b, "delivery_mode": None, "priority": 3,
             "expiration": None, "headers": headers}
            for b in ("rejected", "nacked", "multi-1", "multi-2")]
    differential(rejections, {"dead": dead, "main": [{"body": "requeued", "redelivered": True},
                                                     {"body": "unacked", "redelivered": True}]})


def routing_key_override_and_cc(url: str):
    """With x-dead-letter-routing-key the message is republished with that key
    and its CC header is removed; without it, with all its original keys and
    CC kept. x-death routing-keys lists the original keys with CC, without
    BCC -- yet RabbitMQ 3.10 re-routes to the BCC key too (the BCC header is
    gone but the key stays among the message's routing keys)."""
    with scope(url) as s:
        src = s.exchange("src", "direct")
        dlx = s.exchange("dlx", "direct")
        for key in ("work", "cc-key", "bcc-key", "new-key"):
            s.ch.queue_bind(s.queue(f"dl-{key}"), dlx, key)
        with_key = s.queue("with-key", **{"x-dead-letter-exchange": "@dlx",
                                          "x-dead-letter-routing-key": "new-key"})
        without_key = s.queue("without-key", **{"x-dead-letter-exchange": "@dlx"})
        for q in (with_key, without_key):
            s.ch.queue_bind(q, src, "work")
        s.publish(src, "work", "m", headers={"CC": ["cc-key"], "BCC": ["bcc-key"], "app": 1})
        for q in (with_key, without_key):
            method, _, _ = s.ch.basic_get(q)
            s.ch.basic_reject(method.delivery_tag, requeue=False)
            time.sleep(0.1)
        return {key: s.wait_drain(s.name(f"dl-{key}"), expected, "routing_key", "headers", timeout=2)
                for key, expected in (("work", 1), ("cc-key", 1), ("bcc-key", 1), ("new-key", 1))}


def test_dead_letter_routing_key_and_cc(differential):
    def headers(queue, **extra):
        return dead_headers([death(queue, "rejected", ["work", "cc-key"], exchange="<src>")], app=1, **extra)

    differential(routing_key_override_and_cc, {
        "work": [{"routing_key": "work", "headers": headers("<without-key>", CC=["cc-key"])}],
        "cc-key": [{"routing_key": "work", "headers": headers("<without-key>", CC=["cc-key"])}],
        "bcc-key": [{"routing_key": "work", "headers": headers("<without-key>", CC=["cc-key"])}],
        "new-key": [{"routing_key": "new-key", "headers": headers("<with-key>")}],
    })


def chained_deaths(url: str):
    """Expired from one queue, then rejected from the next: x-death holds both
    entries newest first; x-first-death-* keep the first death."""
    with scope(url) as s:
        third = s.queue("third")
        second = s.queue("second", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": third})
        first = s.queue("first", **{"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": second})
        s.publish("", first, "m")
        deadline = time.monotonic() + 5
        while (method := s.ch.basic_get(second)[0]) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        s.ch.basic_reject(method.delivery_tag, requeue=False)
        return s.wait_drain(third, 1, "routing_key", "headers")


def test_x_death_accumulates_newest_first(differential):
    differential(chained_deaths, [{"routing_key": "<third>", "headers": dead_headers([
        death("<second>", "rejected", ["<second>"]),
        death("<first>", "expired", ["<first>"]),
    ])}])


def retry_loop(url: str):
    """The retry pattern: work queue dead-letters rejections to a wait queue
    whose TTL dead-letters back. A cycle that contains a rejection is not
    dropped; x-death counts go up and the latest entry moves to the front."""
    with scope(url) as s:
        work, wait = s.name("work"), s.name("wait")
        s.queue("work", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": wait})
        s.queue("wait", **{"x-message-ttl": 100, "x-dead-letter-exchange": "",
                           "x-dead-letter-routing-key": work})
        s.publish("", work, "job")
        rounds = []
        for _ in range(3):
            deadline = time.monotonic() + 5
            while (got := s.ch.basic_get(work))[0] is None and time.monotonic() < deadline:
                time.sleep(0.05)
            method, props, body = got
            rounds.append(s.message(method, props, body, "body", "redelivered", "headers"))
            s.ch.basic_reject(method.delivery_tag, requeue=False)
        return rounds


def test_retry_cycle_through_rejection_is_not_dropped(differential):
    def arrival(n):
        deaths = [death("<wait>", "expired", ["<wait>"], count=n), death("<work>", "rejected", ["<work>"], count=n)]
        return {"body": "job", "redelivered": False, "headers": dict(
            dead_headers(deaths), **{"x-first-death-queue": "<work>", "x-first-death-reason": "rejected"})}

    differential(retry_loop, [{"body": "job", "redelivered": False, "headers": None}, arrival(1), arrival(2)])


def automatic_cycles(url: str):
    """A cycle without any rejection (TTL back and forth, or to itself) is
    broken: the message is not delivered to the queue it already died in,
    but still to the other queues the dead-letter exchange routes to."""
    with scope(url) as s:
        to_b = s.exchange("to-b", "fanout")
        to_a = s.exchange("to-a", "fanout")
        a = s.queue("a", **{"x-message-ttl": 100, "x-dead-letter-exchange": "@to-b"})
        b = s.queue("b", **{"x-message-ttl": 100, "x-dead-letter-exchange": "@to-a"})
        self_loop = s.queue("self", **{"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": s.name("self")})
        for x, q, witness in ((to_b, b, "saw-b"), (to_a, a, "saw-a")):
            s.ch.queue_bind(q, x)
            s.ch.queue_bind(s.queue(witness), x)
        s.publish("", a, "ping")
        s.publish("", self_loop, "self-ping")
        saw_b = s.wait_drain(s.name("saw-b"), 1, "body", "headers")
        saw_a = s.wait_drain(s.name("saw-a"), 1, "body", "headers")
        time.sleep(0.5)
        return {"saw-b": saw_b, "saw-a": saw_a, "a": s.drain(a, "body"), "b": s.drain(b, "body"),
                "self": s.drain(self_loop, "body"), "saw-b-later": s.drain(s.name("saw-b"), "body")}


def test_automatic_dead_letter_cycles_are_dropped(differential):
    a_death = death("<a>", "expired", ["<a>"])
    b_death = death("<b>", "expired", ["<a>"], exchange="<to-b>")
    differential(automatic_cycles, {
        "saw-b": [{"body": "ping", "headers": dead_headers([a_death])}],
        "saw-a": [{"body": "ping", "headers": dead_headers([b_death, a_death])}],
        "a": [], "b": [], "self": [], "saw-b-later": [],
    })


def dead_letter_argument_errors(url: str):
    """Argument validation texts for the dead-letter arguments."""
    with scope(url) as s:
        return [
            s.error(lambda: s.queue("key-only", **{"x-dead-letter-routing-key": "k"})),
            s.error(lambda: s.queue("bad-dlx", **{"x-dead-letter-exchange": 5})),
            s.error(lambda: s.queue("bad-key", **{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": 5})),
        ]


def test_dead_letter_argument_validation(differential):
    prefix = "PRECONDITION_FAILED - invalid arg"
    differential(dead_letter_argument_errors, [
        (406, f"{prefix} 'x-dead-letter-routing-key' for queue '<key-only>' in vhost '/': "
              "routing_key_but_no_dlx_defined"),
        (406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue "
              "'<bad-dlx>' in vhost '/'"),
        (406, f"{prefix} 'x-dead-letter-routing-key' for queue '<bad-key>' in vhost '/': "
              "{unacceptable_type,signedint}"),
    ])
