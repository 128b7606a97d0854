"""Publisher confirms (confirm.*) and transactions (tx.*) against a real broker.

Expectations are RabbitMQ 3.10's: https://www.rabbitmq.com/confirms.html,
https://www.rabbitmq.com/specification.html#tx and AMQP 0-9-1 section 1.9 (tx).
"""

from __future__ import annotations

import asyncio

import aio_pika
import pika.exceptions as pe

import pytest
from pamqp import commands as spec

from tests.interop.clients import (
    NO_ROUTE, NOT_FOUND, PRECONDITION_FAILED, aio_connect, blocking, channel_close_of, get_all,
    message_count, raw, wait_message_count,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def queue(broker, unique):
    name = unique("ct")
    with blocking(broker) as c:
        c.channel().queue_declare(name)
    yield name
    with blocking(broker) as c:
        c.channel().queue_delete(name)


def count(broker, queue) -> int:
    with blocking(broker) as c:
        return message_count(c.channel(), queue)


# ------------------------------------------------------------------ confirms

def test_pika_confirm_delivery_publishes_are_acked(broker, queue):
    """confirm.select, then every publish is acked: pika's confirm_delivery
    basic_publish returns without raising; non-mandatory unroutable messages are acked too."""
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(10):
            assert ch.basic_publish("", queue, b"c%d" % i) is None
        assert ch.basic_publish("", queue + "-missing", b"lost") is None
    assert count(broker, queue) == 10


def test_pika_mandatory_unroutable_with_confirms_raises(broker, unique, queue):
    """mandatory + unroutable on a confirm channel: basic.return (312 NO_ROUTE),
    then basic.ack for the same publish; pika turns this into UnroutableError."""
    missing = unique("nowhere")
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pe.UnroutableError) as info:
            ch.basic_publish("", missing, b"bounce", mandatory=True)
        [returned] = info.value.messages
        assert (returned.method.reply_code, returned.method.reply_text, returned.method.exchange,
                returned.method.routing_key, returned.body) == (NO_ROUTE, "NO_ROUTE", "", missing, b"bounce")
        ch.basic_publish("", queue, b"routed", mandatory=True)
    assert count(broker, queue) == 1


def test_return_precedes_ack_of_same_publish(broker, unique, queue):
    """Raw view: tags count from 1 per channel and each publish is acked exactly
    once; an unroutable mandatory publish gets basic.return (312) BEFORE its
    basic.ack. RabbitMQ acks unroutable publishes at once, so acks are NOT in
    publish order across routed/unroutable messages (ack 1 may follow ack 4)."""
    missing = unique("nowhere")
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        c.publish(1, "", queue, b"1")
        c.publish(1, "", missing, b"2", mandatory=True)
        c.publish(1, "", missing, b"3")
        c.publish(1, "amq.direct", missing, b"4", mandatory=True)
        c.publish(1, "", queue, b"5")
        events: list[tuple] = []
        acked: list[int] = []
        while len(acked) < 5:
            cmd = c.read_command()
            if isinstance(cmd.method, spec.Basic.Return):
                m = cmd.method
                events.append(("return", int(cmd.body), m.reply_code, m.reply_text, m.exchange, m.routing_key))
                continue
            assert isinstance(cmd.method, spec.Basic.Ack), cmd
            tag = cmd.method.delivery_tag
            tags = [t for t in range(1, tag + 1) if t not in acked] if cmd.method.multiple else [tag]
            assert tags and all(t not in acked for t in tags), (cmd.method.multiple, tag, acked)
            acked.extend(tags)
            events.extend(("ack", t) for t in tags)
        c.no_command(0.3)
    assert sorted(acked) == [1, 2, 3, 4, 5]
    returns = [e for e in events if e[0] == "return"]
    assert returns == [("return", 2, NO_ROUTE, "NO_ROUTE", "", missing),
                       ("return", 4, NO_ROUTE, "NO_ROUTE", "amq.direct", missing)]
    for n in (2, 4):
        assert events.index(returns[n // 2 - 1]) < events.index(("ack", n)), events
    assert [e for e in events if e in (("ack", 2), ("ack", 3), ("ack", 4))] == [
        ("ack", 2), ("ack", 3), ("ack", 4)]
    assert events.index(("ack", 1)) < events.index(("ack", 5))


def test_confirm_select_nowait_and_twice(broker, queue):
    """confirm.select nowait=true sends no select-ok but enables confirms;
    selecting again is harmless (select-ok) and tags keep counting."""
    with raw(broker) as c:
        c.channel(1)
        c.send(1, spec.Confirm.Select(nowait=True))
        c.publish(1, "", queue, b"a")
        ack = c.expect(spec.Basic.Ack, 1)
        assert (ack.method.delivery_tag, ack.method.multiple) == (1, False)
        c.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        c.publish(1, "", queue, b"b")
        assert c.expect(spec.Basic.Ack, 1).method.delivery_tag == 2


def test_confirm_tags_independent_of_delivery_tags(broker, queue):
    """Publish sequence numbers (confirm tags) and delivery tags are separate
    counters on one channel: a confirm channel that consumed 2 messages still
    gets basic.ack 1 for its first publish."""
    with raw(broker) as c:
        c.channel(1)
        c.publish(1, "", queue, b"a")
        c.publish(1, "", queue, b"b")
        c.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        c.call(1, spec.Basic.Consume(queue=queue, consumer_tag="self"), spec.Basic.ConsumeOk)
        assert [c.expect(spec.Basic.Deliver, 1).method.delivery_tag for _ in range(2)] == [1, 2]
        c.publish(1, "", queue, b"c")
        got = sorted((c.read_command() for _ in range(2)), key=lambda cmd: cmd.method.name)
        assert [(cmd.method.name, cmd.method.delivery_tag) for cmd in got] == [
            ("Basic.Ack", 1), ("Basic.Deliver", 3)]
        assert got[1].body == b"c"


def test_confirms_for_persistent_burst_cover_every_tag_once(broker, unique):
    """1000 persistent publishes to a durable queue: acks (possibly multiple=true)
    arrive in increasing tag order and cover tags 1..1000 exactly once."""
    name = unique("durable")
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Queue.Declare(queue=name, durable=True), spec.Queue.DeclareOk)
        c.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        for i in range(1000):
            c.publish(1, "", name, b"%d" % i, spec.Basic.Properties(delivery_mode=2))
        confirmed: list[int] = []
        while len(confirmed) < 1000:
            ack = c.expect(spec.Basic.Ack, 1, timeout=20)
            tag = ack.method.delivery_tag
            start = confirmed[-1] + 1 if confirmed else 1
            assert tag >= start, (tag, start)
            confirmed.extend(range(start, tag + 1) if ack.method.multiple else [tag])
        assert confirmed == list(range(1, 1001))
        c.no_command(0.3)
        assert c.call(1, spec.Queue.Delete(queue=name), spec.Queue.DeleteOk).method.message_count == 1000


async def test_aio_pika_confirms_1000_with_window(broker, unique):
    """aio-pika publisher confirms: 1000 persistent messages with at most 100
    in flight all resolve to basic.ack (multiple acks are accepted by aiormq)."""
    connection = await aio_connect(broker)
    try:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(unique("aioconf"), durable=True)
        window = asyncio.Semaphore(100)

        async def one(i: int):
            async with window:
                return await channel.default_exchange.publish(
                    aio_pika.Message(b"%d" % i, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue.name, timeout=30)

        results = await asyncio.gather(*(one(i) for i in range(1000)))
        assert all(isinstance(r, spec.Basic.Ack) for r in results)
        declared = await channel.declare_queue(queue.name, passive=True)
        assert declared.declaration_result.message_count == 1000
        unroutable = await channel.default_exchange.publish(
            aio_pika.Message(b"x"), routing_key=queue.name + "-missing", mandatory=True, timeout=10)
        assert isinstance(unroutable.delivery, spec.Basic.Return)  # aiormq hands back the return
        assert unroutable.delivery.reply_code == NO_ROUTE
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await asyncio.wait_for(connection.close(), 10)


def test_publish_to_missing_exchange_on_confirm_channel(broker, unique):
    """On a confirm channel a publish to a missing exchange is not nacked: the
    channel is closed with 404 (60, 40); pika raises ChannelClosedByBroker."""
    missing = unique("ex")
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            ch.basic_publish(missing, "k", b"x")
        assert (info.value.reply_code, info.value.reply_text) == (
            NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '/'")
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        c.publish(1, missing, "k", b"x")
        cmd = c.read_command()
        assert channel_close_of(cmd) == (NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '/'", 60, 40)


REJECT_PUBLISH = {"x-max-length": 1, "x-overflow": "reject-publish"}

def test_confirm_nack_when_queue_rejects_publish(broker):
    """A queue full with x-overflow=reject-publish makes the broker basic.nack
    the publish (possibly multiple=true); mandatory adds no basic.return;
    pika's confirm_delivery raises NackError (https://www.rabbitmq.com/maxlength.html)."""
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True, arguments=REJECT_PUBLISH),
                      spec.Queue.DeclareOk).method.queue
        c.call(1, spec.Confirm.Select(), spec.Confirm.SelectOk)
        c.publish(1, "", name, b"fits")
        c.publish(1, "", name, b"over1")
        c.publish(1, "", name, b"over2", mandatory=True)
        outcome: dict[int, str] = {}
        while len(outcome) < 3:
            cmd = c.read_command()
            assert isinstance(cmd.method, (spec.Basic.Ack, spec.Basic.Nack)), cmd
            kind = "ack" if isinstance(cmd.method, spec.Basic.Ack) else "nack"
            tag = cmd.method.delivery_tag
            for t in (range(1, tag + 1) if cmd.method.multiple else [tag]):
                if t not in outcome:
                    outcome[t] = kind
        c.no_command(0.3)
        assert outcome == {1: "ack", 2: "nack", 3: "nack"}
        assert c.call(1, spec.Queue.Declare(queue=name, passive=True),
                      spec.Queue.DeclareOk).method.message_count == 1
    with blocking(broker) as conn:
        ch = conn.channel()
        name = ch.queue_declare("", exclusive=True, arguments=REJECT_PUBLISH).method.queue
        ch.confirm_delivery()
        ch.basic_publish("", name, b"fits")
        with pytest.raises(pe.NackError):
            ch.basic_publish("", name, b"over")


# ------------------------------------------------------------------------ tx

def test_tx_commit_makes_publishes_visible(broker, queue):
    """Publishes in a transaction are invisible (not even to basic.get) until tx.commit (1.9)."""
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.tx_select()
        for i in range(3):
            ch.basic_publish("", queue, b"t%d" % i)
        other = conn.channel()
        assert other.basic_get(queue) == (None, None, None)
        assert message_count(other, queue) == 0
        ch.tx_commit()
        assert get_all(other, queue) == [b"t0", b"t1", b"t2"]


def test_tx_rollback_discards_publishes(broker, queue):
    """tx.rollback throws away the uncommitted publishes; the channel stays
    transactional, and closing a channel with uncommitted publishes discards them too."""
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.tx_select()
        ch.basic_publish("", queue, b"gone")
        ch.tx_rollback()
        ch.basic_publish("", queue, b"kept")
        ch.tx_commit()
        ch.basic_publish("", queue, b"never-committed")
        ch.close()
        assert get_all(conn.channel(), queue) == [b"kept"]


def test_tx_acks_apply_at_commit(broker, queue):
    """An ack inside a transaction takes effect only at tx.commit: if the
    channel closes before the commit the message comes back redelivered."""
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.basic_publish("", queue, b"m0")
        ch.basic_publish("", queue, b"m1")
        ch.tx_select()
        ch.basic_get(queue)
        ch.basic_ack(1)
        ch.close()
        wait_message_count(conn.channel, queue, 2)
        ch = conn.channel()
        ch.tx_select()
        method, _p, body = ch.basic_get(queue)
        assert (method.redelivered, body) == (True, b"m0")
        ch.basic_ack(method.delivery_tag)
        ch.tx_commit()
        ch.close()
        wait_message_count(conn.channel, queue, 1)
        assert get_all(conn.channel(), queue) == [b"m1"]


def test_tx_rollback_of_ack_leaves_message_unacked(broker, queue):
    """After tx.rollback the rolled-back ack is forgotten: the message is still
    unacked (not redelivered by the rollback), can be acked again, and returns
    to the queue when the channel closes."""
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.basic_publish("", queue, b"m0")
        ch.tx_select()
        method, _p, _b = ch.basic_get(queue)
        ch.basic_ack(method.delivery_tag)
        ch.tx_rollback()
        assert message_count(conn.channel(), queue) == 0   # unacked, not requeued
        assert ch.basic_get(queue) == (None, None, None)
        ch.close()
        wait_message_count(conn.channel, queue, 1)
        ch = conn.channel()
        ch.tx_select()
        method, _p, body = ch.basic_get(queue)
        assert (method.redelivered, body) == (True, b"m0")
        ch.basic_ack(method.delivery_tag)
        ch.tx_rollback()
        ch.basic_ack(method.delivery_tag)      # same tag is still valid after rollback
        ch.tx_commit()
        ch.close()
    assert count(broker, queue) == 0


def test_tx_reject_and_nack_apply_at_commit(broker, queue):
    """reject(requeue=true) and nack(requeue=false) in a transaction are applied
    at commit: the requeued message reappears only after commit, the nacked one is gone."""
    with blocking(broker) as conn:
        ch = conn.channel()
        for body in (b"requeue-me", b"drop-me"):
            ch.basic_publish("", queue, body)
        ch.tx_select()
        t1 = ch.basic_get(queue)[0].delivery_tag
        t2 = ch.basic_get(queue)[0].delivery_tag
        ch.basic_reject(t1, requeue=True)
        ch.basic_nack(t2, requeue=False)
        assert message_count(conn.channel(), queue) == 0
        ch.tx_commit()
        method, _p, body = ch.basic_get(queue, auto_ack=True)
        assert (method.redelivered, body) == (True, b"requeue-me")
        ch.close()
    assert count(broker, queue) == 0


def test_tx_double_ack_fails_immediately(broker, queue):
    """A second ack of the same tag inside one transaction is rejected at once
    (406 unknown delivery tag), not at commit."""
    with raw(broker) as c:
        c.channel(1)
        c.publish(1, "", queue, b"m")
        c.call(1, spec.Tx.Select(), spec.Tx.SelectOk)
        c.call(1, spec.Basic.Get(queue=queue), spec.Basic.GetOk)
        c.send(1, spec.Basic.Ack(delivery_tag=1))
        c.send(1, spec.Basic.Ack(delivery_tag=1))
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - unknown delivery tag 1", 60, 80)


def test_tx_mandatory_return_sent_at_commit(broker, unique):
    """In a transaction a mandatory unroutable publish is returned when the
    transaction commits: basic.return arrives before tx.commit-ok, not at publish time."""
    missing = unique("nowhere")
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Tx.Select(), spec.Tx.SelectOk)
        c.publish(1, "", missing, b"bounce", mandatory=True)
        c.no_command(0.4)
        c.send(1, spec.Tx.Commit())
        ret = c.expect(spec.Basic.Return, 1)
        assert (ret.method.reply_code, ret.method.reply_text, ret.body) == (NO_ROUTE, "NO_ROUTE", b"bounce")
        c.expect(spec.Tx.CommitOk, 1)
        c.publish(1, "", missing, b"rolled-back", mandatory=True)
        c.call(1, spec.Tx.Rollback(), spec.Tx.RollbackOk)
        c.no_command(0.3)


def test_tx_publish_to_missing_exchange_fails_at_once(broker, unique, queue):
    """In a transaction, a publish to a missing exchange is a 404 channel error
    right away (not at commit) and the transaction's earlier publishes are lost."""
    missing = unique("ex")
    with raw(broker) as c:
        c.channel(1)
        c.call(1, spec.Tx.Select(), spec.Tx.SelectOk)
        c.publish(1, "", queue, b"uncommitted")
        c.publish(1, missing, "k", b"x")
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            NOT_FOUND, f"NOT_FOUND - no exchange '{missing}' in vhost '/'", 60, 40)
    assert count(broker, queue) == 0


def test_tx_commit_with_rejected_publish_is_partial(broker):
    """If a queue refuses a publish at commit (reject-publish overflow), RabbitMQ
    closes the channel with 406 'PRECONDITION_FAILED - partial tx completion'
    (90, 20); the accepted publishes stay committed."""
    with raw(broker) as c:
        c.channel(1)
        name = c.call(1, spec.Queue.Declare(queue="", exclusive=True, arguments=REJECT_PUBLISH),
                      spec.Queue.DeclareOk).method.queue
        c.channel(2)
        c.call(2, spec.Tx.Select(), spec.Tx.SelectOk)
        for body in (b"a", b"b", b"c"):
            c.publish(2, "", name, body)
        c.send(2, spec.Tx.Commit())
        assert channel_close_of(c.channel_closed_by_server(2)) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - partial tx completion", 90, 20)
        got = c.call(1, spec.Basic.Get(queue=name, no_ack=True), spec.Basic.GetOk)
        assert (got.body, got.method.message_count) == (b"a", 0)


@pytest.mark.parametrize("first,second,text,ids", [
    (spec.Tx.Select(), spec.Confirm.Select(),
     "PRECONDITION_FAILED - cannot switch from tx to confirm mode", (85, 10)),
    (spec.Confirm.Select(), spec.Tx.Select(),
     "PRECONDITION_FAILED - cannot switch from confirm to tx mode", (90, 10)),
])
def test_tx_and_confirm_are_exclusive(broker, first, second, text, ids):
    """A channel is either transactional or in confirm mode: switching is a
    channel error 406 with RabbitMQ's texts."""
    with raw(broker) as c:
        c.channel(1)
        c.send(1, first)
        c.read_command()
        c.send(1, second)
        assert channel_close_of(c.channel_closed_by_server(1)) == (PRECONDITION_FAILED, text, *ids)


def test_pika_tx_then_confirm_raises(broker):
    """Same rule through pika: confirm_delivery on a tx channel -> ChannelClosedByBroker 406."""
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.tx_select()
        ch.tx_select()      # selecting twice is fine
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            ch.confirm_delivery()
        assert (info.value.reply_code, info.value.reply_text) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


@pytest.mark.parametrize("method,method_id", [(spec.Tx.Commit(), 20), (spec.Tx.Rollback(), 30)])
def test_commit_or_rollback_without_select_406(broker, method, method_id):
    """tx.commit / tx.rollback on a non-transactional channel: 406
    'PRECONDITION_FAILED - channel is not transactional' (90, 20 / 90, 30)."""
    with raw(broker) as c:
        c.channel(1)
        c.send(1, method)
        assert channel_close_of(c.channel_closed_by_server(1)) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - channel is not transactional", 90, method_id)
    with blocking(broker) as conn:
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            conn.channel().tx_commit()
        assert (info.value.reply_code, info.value.reply_text) == (
            PRECONDITION_FAILED, "PRECONDITION_FAILED - channel is not transactional")
