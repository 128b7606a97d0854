"""broker/vhost/publish.py without a server: the outcome flags of the one
publish pipeline (routed, unroutable, refused by a length limit, held by a
delayed-message exchange) for a direct publish, a cached route, a
dead-lettered copy and a delayed message falling due, on a real VHost
without storage."""

from __future__ import annotations

import asyncio

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.exchanges import DirectExchange, FanoutExchange
from broker.exchanges.delayed import DelayedMessageExchange
from broker.model.message import Message
from broker.queues.dead_letter import EXPIRED, REJECTED
from broker.queues.queue import Queue
from broker.vhost.namespace import VHost
from broker.vhost.publish import HELD, REFUSED, UNROUTABLE, publish


def _message(exchange: str, key: str, body: bytes = b"m", headers: dict | None = None) -> Message:
    header = ContentHeader(0, len(body), Basic.Properties(headers=headers)).marshal()
    return Message(exchange, key, header, body)


def _vhost_with(queue_arguments: dict | None = None, exchange=None):
    """A vhost with exchange ``x`` (direct unless given) bound to queue ``q`` with key ``k``."""
    vhost = VHost("/")
    exchange = exchange or DirectExchange("x")
    vhost.add_exchange(exchange)
    queue = Queue(vhost, "q", arguments=queue_arguments)
    vhost.add_queue(queue)
    vhost.bind(exchange, queue, "k", {})
    return vhost, exchange, queue


class _Cached:
    """A route as broker.session.route_cache caches it (broker.vhost.publish.CachedRoute)."""

    def __init__(self, queues, plain=True, stored=False):
        self.queues, self.plain, self.stored = tuple(queues), plain, stored


def test_routed_is_zero_and_unroutable_is_flagged():
    vhost, exchange, queue = _vhost_with()
    assert publish(vhost, exchange, _message("x", "k")) == 0
    assert publish(vhost, exchange, _message("x", "nowhere")) == UNROUTABLE
    assert queue.message_count == 1


def test_cc_keys_route_too():
    vhost, exchange, queue = _vhost_with()
    assert publish(vhost, exchange, _message("x", "nowhere", headers={"CC": ["k"]})) == 0
    assert queue.message_count == 1


def test_reject_publish_is_refused_not_unroutable():
    """x-overflow reject-publish: the publish over the limit is REFUSED (a
    basic.nack), which is not UNROUTABLE (no basic.return)."""
    vhost, exchange, queue = _vhost_with({"x-max-length": 1, "x-overflow": "reject-publish"})
    assert publish(vhost, exchange, _message("x", "k", b"a")) == 0
    assert publish(vhost, exchange, _message("x", "k", b"b")) == REFUSED
    assert [entry.message.body for entry in queue.ready] == [b"a"]


def test_reject_publish_dlx_dead_letters_the_refused_message():
    vhost, exchange, queue = _vhost_with({"x-max-length": 1, "x-overflow": "reject-publish-dlx",
                                          "x-dead-letter-exchange": "dlx"})
    dlx = FanoutExchange("dlx")
    vhost.add_exchange(dlx)
    dlq = Queue(vhost, "dlq")
    vhost.add_queue(dlq)
    vhost.bind(dlx, dlq, "", {})
    publish(vhost, exchange, _message("x", "k", b"a"))
    assert publish(vhost, exchange, _message("x", "k", b"b")) == REFUSED
    [entry] = dlq.ready
    assert entry.message.body == b"b" and entry.message.headers()["x-death"][0]["reason"] == "maxlen"


def test_cached_route_skips_routing():
    """A plain cached route is enqueued as given; an empty one is UNROUTABLE;
    a cached route with x-overflow queues still meets their limits."""
    vhost, exchange, queue = _vhost_with()
    assert publish(vhost, exchange, _message("x", "k"), _Cached([queue])) == 0
    assert publish(vhost, exchange, _message("x", "k"), _Cached([])) == UNROUTABLE
    assert queue.message_count == 1
    vhost, exchange, limited = _vhost_with({"x-max-length": 0, "x-overflow": "reject-publish"})
    assert publish(vhost, exchange, _message("x", "k"), _Cached([limited], plain=False)) == REFUSED


def test_dead_lettered_copy_skips_cycles_unless_rejected():
    """A copy that would go back into a queue it already died in is dropped
    there unless the death was a rejection (rabbitmq.com/dlx.html)."""
    vhost, exchange, queue = _vhost_with()
    deaths = [{"queue": "q", "reason": EXPIRED}]
    assert publish(vhost, None, _message("x", "k"), keys=[], death=(EXPIRED, "q", deaths)) == UNROUTABLE
    assert queue.message_count == 0
    rejected = [{"queue": "q", "reason": REJECTED}]
    assert publish(vhost, None, _message("x", "k"), keys=[], death=(REJECTED, "q", rejected)) == 0
    assert queue.message_count == 1


def test_missing_exchange_drops_the_message():
    vhost, _exchange, queue = _vhost_with()
    assert publish(vhost, None, _message("gone", "k"), keys=[], death=(EXPIRED, "q2", [])) == UNROUTABLE
    assert queue.message_count == 0


def test_vhost_publish_is_the_pipeline():
    """Lower layers (a queue dead-lettering) reach the pipeline as a method of the vhost."""
    vhost, exchange, queue = _vhost_with()
    assert vhost.publish(exchange, _message("x", "k")) == 0 and queue.message_count == 1


async def test_delayed_publish_is_held_then_meets_the_length_limit_when_due():
    """A direct publish with x-delay to a delayed exchange is HELD (and
    UNROUTABLE, as the plugin's route returns no queues; not STORED without
    storage). When due, the queue's x-overflow reject-publish applies: 2 of 5."""
    delayed = DelayedMessageExchange("x", arguments={"x-delayed-type": "direct"})
    vhost, exchange, queue = _vhost_with({"x-max-length": 2, "x-overflow": "reject-publish"}, delayed)
    outcomes = {publish(vhost, exchange, _message("x", "k", b"m%d" % i, {"x-delay": 30})) for i in range(5)}
    assert outcomes == {UNROUTABLE | HELD}
    assert queue.message_count == 0
    deadline = asyncio.get_running_loop().time() + 5
    while len(exchange.held) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert [entry.message.body for entry in queue.ready] == [b"m0", b"m1"]
