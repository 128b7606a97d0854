"""Dead-lettering (rabbitmq.com/dlx.html): rejections and nacks without
requeue, expiries and length-limit drops are republished to the
x-dead-letter-exchange with the x-death and x-first-death-* headers as
RabbitMQ 3.10 builds them; x-dead-letter-routing-key replaces the routing
keys (and drops CC); automatic cycles are dropped; the dead-lettered copy of
a persistent message survives a SIGKILL."""

from __future__ import annotations

import time

import pika

from tests.interop.lifecycle_helpers import PERSISTENT, connect, count, dead_letter_setup, get_all, wait_until


def test_rejected_message_gets_x_death(broker, unique):
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dlx = dead_letter_setup(ch, source, dlq)
        ch.basic_publish("", source, b"bad", pika.BasicProperties(headers={"app": "x"}, message_id="m1"))
        method = wait_until(lambda: ch.basic_get(source)[0])
        ch.basic_reject(method.delivery_tag, requeue=False)
        wait_until(lambda: count(ch, dlq) == 1)
        [(body, props, got)] = get_all(ch, dlq)
        assert (body, got.exchange, got.routing_key, props.message_id) == (b"bad", dlx, source, "m1")
        [death] = props.headers["x-death"]
        assert {k: v for k, v in death.items() if k != "time"} == {
            "count": 1, "reason": "rejected", "queue": source, "exchange": "", "routing-keys": [source]}
        assert abs(death["time"].timestamp() - time.time()) < 60
        assert props.headers["app"] == "x"
        assert (props.headers["x-first-death-reason"], props.headers["x-first-death-queue"],
                props.headers["x-first-death-exchange"]) == ("rejected", source, "")


def test_nack_multiple_dead_letters_in_order_and_requeue_does_not(broker, unique):
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, source, dlq)
        for i in range(4):
            ch.basic_publish("", source, b"m%d" % i)
        tags = [wait_until(lambda: ch.basic_get(source)[0]).delivery_tag for _ in range(4)]
        ch.basic_nack(tags[0], requeue=True)
        ch.basic_nack(tags[3], multiple=True, requeue=False)
        wait_until(lambda: count(ch, dlq) == 3)
        assert [body for body, _p, _m in get_all(ch, dlq)] == [b"m1", b"m2", b"m3"]
        assert [body for body, _p, _m in get_all(ch, source)] == [b"m0"]


def test_expired_message_keeps_original_expiration(broker, unique):
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, source, dlq)
        ch.basic_publish("", source, b"e", pika.BasicProperties(expiration="100", headers={"CC": ["cc1"]}))
        wait_until(lambda: count(ch, dlq) == 1)
        [(_body, props, _m)] = get_all(ch, dlq)
        assert props.expiration is None
        [death] = props.headers["x-death"]
        assert (death["reason"], death["original-expiration"], death["routing-keys"]) == (
            "expired", "100", [source, "cc1"])
        assert props.headers["CC"] == ["cc1"]


def test_dead_letter_routing_key_replaces_keys_and_drops_cc(broker, unique):
    source, target = unique("src"), unique("target")
    with connect(broker) as conn:
        ch = conn.channel()
        dlx = unique("dlx")
        ch.exchange_declare(dlx, "direct")
        ch.queue_declare(target)
        ch.queue_bind(target, dlx, "dead")
        ch.queue_declare(source, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dead",
                                            "x-max-length": 1})
        ch.basic_publish("", source, b"first", pika.BasicProperties(headers={"CC": ["c"]}))
        ch.basic_publish("", source, b"second")
        wait_until(lambda: count(ch, target) == 1)
        [(body, props, method)] = get_all(ch, target)
        assert (body, method.routing_key) == (b"first", "dead")
        assert "CC" not in props.headers
        assert props.headers["x-death"][0]["reason"] == "maxlen"
        assert props.headers["x-death"][0]["routing-keys"] == [source, "c"]


def test_missing_dead_letter_exchange_drops(broker, unique):
    source = unique("src")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(source, arguments={"x-dead-letter-exchange": unique("absent")})
        ch.basic_publish("", source, b"x")
        method = wait_until(lambda: ch.basic_get(source)[0])
        ch.basic_reject(method.delivery_tag, requeue=False)
        assert count(ch, source) == 0       # same channel: read after the reject


def test_automatic_cycle_is_dropped_but_rejection_loops_are_not(broker, unique):
    """A queue dead-lettering expired messages to itself (default exchange,
    its own name) drops the message the second time round; rejected
    messages may loop (a rejection breaks the cycle rule)."""
    looping, rejecting = unique("loop"), unique("rej")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(looping, arguments={"x-dead-letter-exchange": "", "x-message-ttl": 100})
        ch.basic_publish("", looping, b"cycle")
        # expiry and the dead-letter copy into itself happen in one loop pass, so
        # the count drops to 0 only when the cycle rule drops the copy
        wait_until(lambda: count(ch, looping) == 0, timeout=30)
        ch.queue_declare(rejecting, arguments={"x-dead-letter-exchange": ""})
        ch.basic_publish("", rejecting, b"again")
        for round_ in (1, 2):
            method = wait_until(lambda: ch.basic_get(rejecting)[0])
            ch.basic_reject(method.delivery_tag, requeue=False)
        _m, props, body = wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(rejecting, auto_ack=True)))
        assert body == b"again"
        assert [(d["reason"], d["count"]) for d in props.headers["x-death"]] == [("rejected", 2)]


def test_dead_lettered_copy_survives_sigkill(fresh_broker, unique):
    proc = fresh_broker()
    source, dlq = unique("src"), unique("dlq")
    with connect(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        dead_letter_setup(ch, source, dlq, durable=True)
        for body in (b"p1", b"p2"):
            ch.basic_publish("", source, body, pika.BasicProperties(delivery_mode=PERSISTENT))
        method = ch.basic_get(source)[0]
        ch.basic_reject(method.delivery_tag, requeue=False)
        wait_until(lambda: count(ch, dlq) == 1)
        ch.basic_publish("", source, b"p3", pika.BasicProperties(delivery_mode=PERSISTENT))  # fsync covers all
    proc.kill()
    proc.start()
    with connect(proc) as conn:
        ch = conn.channel()
        [(body, props, _m)] = get_all(ch, dlq)
        assert body == b"p1" and props.delivery_mode == 2
        assert props.headers["x-death"][0]["reason"] == "rejected"
        assert [body for body, _p, _m in get_all(ch, source)] == [b"p2", b"p3"]
