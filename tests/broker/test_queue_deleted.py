"""Queue deletion as an event: VHost.delete_queue tells the queue's consumers
through QueueConsumer.queue_deleted and emits VHost.queue_deleted; a
connection forgets an exclusive queue deleted before it closes
(broker/model/events.py, broker/transport/connection.py)."""

import asyncio
import socket
from types import SimpleNamespace

from broker.app.config import Config
from broker.model.message import Message
from broker.model.stats import ChurnStats
from broker.queues.queue import Queue
from broker.transport.connection import Connection
from broker.transport.flow_control import PublishFlow
from broker.vhost.namespace import VHost


class RecordingConsumer:
    """A QueueConsumer that takes nothing and records queue_deleted calls."""

    exclusive = False

    def __init__(self, tag, calls):
        self.tag = tag
        self.arguments = {}
        self.channel = "test channel"
        self._calls = calls

    def can_take(self):
        return False

    def deliver(self, entry):
        raise AssertionError("no delivery expected")

    def deliver_batch(self, ready):
        return 0

    def queue_deleted(self):
        self._calls.append(("queue_deleted", self.tag))


def test_delete_queue_tells_consumers_then_emits():
    async def scenario():
        vhost = VHost("/")
        queue = Queue(vhost, "q")
        vhost.add_queue(queue)
        calls = []
        for tag in ("a", "b"):
            queue.add_consumer(RecordingConsumer(tag, calls))
        for body in (b"1", b"2"):
            queue.enqueue(Message("", "q", bytes(14), body))
        vhost.queue_deleted.subscribe(lambda deleted: calls.append(("event", deleted.name, len(deleted.consumers),
                                                                    deleted.message_count)))
        assert vhost.delete_queue(queue) == 2
        assert calls == [("queue_deleted", "a"), ("queue_deleted", "b"), ("event", "q", 0, 0)]
        assert "q" not in vhost.queues and queue.deleted
        # a second delete is a no-op: no consumer call, no event
        assert vhost.delete_queue(queue) == 0
        assert len(calls) == 3

    asyncio.run(scenario())


def test_connection_forgets_its_exclusive_queue_when_deleted():
    async def scenario():
        loop = asyncio.get_running_loop()
        vhost = VHost("/")
        server = SimpleNamespace(config=Config(), server_properties=dict, authenticate=lambda *a: True,
                                 authenticate_external=lambda user: True, vhosts={"/": vhost}, storage=None,
                                 connections=set(), churn=ChurnStats(), flow=PublishFlow(set()))
        ours, theirs = socket.socketpair()
        transport, _protocol = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        try:
            connection = Connection(server, transport)
            kept, deleted = Queue(vhost, "kept", exclusive_owner=connection), Queue(vhost, "gone",
                                                                                     exclusive_owner=connection)
            for queue in (kept, deleted):
                vhost.add_queue(queue)
                connection.add_exclusive_queue(queue)
            assert len(vhost.queue_deleted) == 1  # one subscriber per vhost, not per queue
            vhost.delete_queue(deleted)
            assert connection.exclusive_queues == {kept}
            connection.connection_lost(None)  # the exclusive queues left go with the connection
            assert connection.exclusive_queues == set() and vhost.queues.get("kept") is None
        finally:
            transport.close()
            theirs.close()

    asyncio.run(scenario())
