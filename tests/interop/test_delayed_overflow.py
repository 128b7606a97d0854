"""Queue length limits (rabbitmq.com/maxlength.html) for messages that
fall due at an ``x-delayed-message`` exchange: the plugin routes a due
message like any publish (rabbit_delayed_message: ``rabbit_exchange:route``
then delivery through the queue), so x-overflow reject-publish refuses what
does not fit and reject-publish-dlx dead-letters it. RabbitMQ 3.10 with the
plugin keeps 2 of 5 messages in an ``x-max-length: 2`` queue (the
reference RabbitMQ of tests/differential has no such plugin)."""

from __future__ import annotations


from tests.interop.delayed_helpers import declare_delayed, delay_props
from tests.interop.lifecycle_helpers import connect, count, dead_letter_setup, get_all, wait_until


def _publish_delayed(ch, exchange: str, bodies: list[bytes], delay_ms: int = 200) -> None:
    for body in bodies:
        ch.basic_publish(exchange, "k", body, delay_props(delay_ms))


def _settle(ch, exchange: str, unique) -> None:
    """Wait until the messages published to ``exchange`` so far were routed:
    a marker due after them (x-delay 400) reaches a queue of its own."""
    probe = ch.queue_declare(unique("probe"), exclusive=True).method.queue
    ch.queue_bind(probe, exchange, "probe")
    ch.basic_publish(exchange, "probe", b"marker", delay_props(400))
    wait_until(lambda: count(ch, probe) == 1)


def test_reject_publish_applies_when_due(broker, unique):
    """5 messages with x-delay 200 ms into an x-max-length 2 reject-publish
    queue: once due, the queue holds the first 2 (the rest are refused)."""
    exchange, queue = unique("dx"), unique("q")
    with connect(broker) as conn:
        ch = conn.channel()
        declare_delayed(ch, exchange)
        ch.queue_declare(queue, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
        ch.queue_bind(queue, exchange, "k")
        _publish_delayed(ch, exchange, [b"m%d" % i for i in range(5)])
        _settle(ch, exchange, unique)
        assert count(ch, queue) == 2
        assert [body for body, _p, _m in get_all(ch, queue)] == [b"m0", b"m1"]
        ch.queue_delete(queue)
        ch.exchange_delete(exchange)


def test_reject_publish_dlx_dead_letters_when_due(broker, unique):
    """reject-publish-dlx: the 3 refused when due are dead-lettered with
    reason maxlen from the queue, published to the delayed exchange."""
    exchange, source, dlq = unique("dx"), unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        declare_delayed(ch, exchange)
        dlx = dead_letter_setup(ch, source, dlq, **{"x-max-length": 2, "x-overflow": "reject-publish-dlx"})
        ch.queue_bind(source, exchange, "k")
        _publish_delayed(ch, exchange, [b"m%d" % i for i in range(5)])
        wait_until(lambda: count(ch, dlq) == 3)
        dead = get_all(ch, dlq)
        assert [body for body, _p, _m in dead] == [b"m2", b"m3", b"m4"]
        death = dead[0][1].headers["x-death"][0]
        assert (death["reason"], death["queue"], death["exchange"]) == ("maxlen", source, exchange)
        assert [body for body, _p, _m in get_all(ch, source)] == [b"m0", b"m1"]
        for name in (source, dlq):
            ch.queue_delete(name)
        for name in (exchange, dlx):
            ch.exchange_delete(name)
