"""Queue length limits (rabbitmq.com/maxlength.html): x-max-length and
x-max-length-bytes with x-overflow drop-head (head dropped or
dead-lettered with reason maxlen), reject-publish (basic.nack to a
confirming publisher) and reject-publish-dlx (nack and dead-letter); the
limits hold for a durable queue after a SIGKILL and restart."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from tests.interop.lifecycle_helpers import PERSISTENT, connect, count, dead_letter_setup, get_all, wait_until


def _bodies(ch, queue):
    return [body for body, _p, _m in get_all(ch, queue)]


def test_drop_head_by_count(broker, unique):
    queue = unique("ml")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, arguments={"x-max-length": 2})
        for i in range(5):
            ch.basic_publish("", queue, b"m%d" % i)
        assert _bodies(ch, queue) == [b"m3", b"m4"]


def test_drop_head_by_bytes(broker, unique):
    queue = unique("mlb")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, arguments={"x-max-length-bytes": 10})
        for i in range(4):
            ch.basic_publish("", queue, b"abc%d" % i)  # 4 bytes each
        assert _bodies(ch, queue) == [b"abc2", b"abc3"]


def test_unacked_messages_do_not_count(broker, unique):
    queue = unique("mlu")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, arguments={"x-max-length": 1})
        ch.basic_publish("", queue, b"taken")
        method = ch.basic_get(queue)[0]
        ch.basic_publish("", queue, b"ready")
        assert count(ch, queue) == 1
        ch.basic_ack(method.delivery_tag)
        assert _bodies(ch, queue) == [b"ready"]


def test_drop_head_dead_letters_with_reason_maxlen(broker, unique):
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        dead_letter_setup(ch, source, dlq, **{"x-max-length": 1})
        for body in (b"a", b"b", b"c"):
            ch.basic_publish("", source, body)
        wait_until(lambda: count(ch, dlq) == 2)
        got = get_all(ch, dlq)
        assert [body for body, _p, _m in got] == [b"a", b"b"]
        assert {p.headers["x-death"][0]["reason"] for _b, p, _m in got} == {"maxlen"}
        assert _bodies(ch, source) == [b"c"]


def test_reject_publish_nacks_and_keeps_the_queue(broker, unique):
    queue = unique("rp")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(queue, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"fits")
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", queue, b"refused")
        assert _bodies(ch, queue) == [b"fits"]
        ch.basic_publish("", queue, b"room-again")
        assert _bodies(ch, queue) == [b"room-again"]


def test_reject_publish_without_confirms_drops_silently(broker, unique):
    queue = unique("rps")
    with connect(broker) as conn:
        ch = conn.channel()
        ch.queue_declare(queue, arguments={"x-max-length-bytes": 3, "x-overflow": "reject-publish"})
        ch.basic_publish("", queue, b"abc")
        ch.basic_publish("", queue, b"d")
        wait_until(lambda: count(ch, queue) == 1)
        assert _bodies(ch, queue) == [b"abc"]


def test_reject_publish_dlx_nacks_and_dead_letters(broker, unique):
    source, dlq = unique("src"), unique("dlq")
    with connect(broker) as conn:
        ch = conn.channel()
        dead_letter_setup(ch, source, dlq, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"})
        ch.confirm_delivery()
        ch.basic_publish("", source, b"fits")
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", source, b"refused")
        wait_until(lambda: count(ch, dlq) == 1)
        [(body, props, _m)] = get_all(ch, dlq)
        assert body == b"refused" and props.headers["x-death"][0]["reason"] == "maxlen"
        assert props.headers["x-death"][0]["queue"] == source
        assert _bodies(ch, source) == [b"fits"]


@pytest.mark.parametrize("arguments", [{"x-max-length": 3}, {"x-max-length-bytes": 6}])
def test_limits_hold_after_sigkill(fresh_broker, unique, arguments):
    """A durable bounded queue recovered from the WAL still knows its
    length (and byte size): the next publishes drop its head."""
    proc = fresh_broker()
    queue = unique("mld")
    persistent = pika.BasicProperties(delivery_mode=PERSISTENT)
    with connect(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, durable=True, arguments=arguments)
        for body in (b"m0", b"m1", b"m2", b"m3"):
            ch.basic_publish("", queue, body, persistent)
    proc.kill()
    proc.start()
    with connect(proc) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        assert count(ch, queue) == 3
        ch.basic_publish("", queue, b"m4", persistent)
        assert _bodies(ch, queue) == [b"m2", b"m3", b"m4"]
    proc.kill()
    proc.start()
    with connect(proc) as conn:
        assert count(conn.channel(), queue) == 0  # the drops and acks were on disk too
