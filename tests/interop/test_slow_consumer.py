"""A consumer that stops reading its socket stops only its own deliveries
(docs/architecture.md, "Performance principles": deliveries stop when a socket's write
buffer is full and resume on resume_writing, and a slow consumer does not
hold up others); once it reads again it gets every message, once, in
order. Deliveries go out in batches per consumer (broker/session/delivery.py), so
this drives the batch through the output budget and pause_writing."""

from __future__ import annotations

import struct

from pamqp import commands as spec

from tests.interop.pika_helpers import pika_connection
from tests.interop.raw_client import FRAME_BODY, FRAME_HEADER, RawClient

#: 300 bodies of 64 KiB: more than the loopback socket buffers hold
COUNT = 300
SIZE = 64 * 1024


def test_stalled_consumer_does_not_hold_up_another(broker, unique):
    stalled_queue, other_queue = unique("stalled"), unique("other")
    stalled = RawClient.for_broker(broker, timeout=30.0)
    stalled.handshake()
    stalled.open_channel(1)
    stalled.rpc(1, spec.Queue.Declare(queue=stalled_queue, auto_delete=True), spec.Queue.DeclareOk)
    stalled.rpc(1, spec.Basic.Consume(queue=stalled_queue, no_ack=True), spec.Basic.ConsumeOk)
    with pika_connection(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(other_queue, auto_delete=True)
        for seq in range(COUNT):  # the stalled client reads none of these yet
            ch.basic_publish("", stalled_queue, struct.pack(">I", seq) + b"s" * (SIZE - 4))
        for seq in range(10):
            ch.basic_publish("", other_queue, b"%d" % seq)
        got = []
        for _method, _props, body in ch.consume(other_queue, auto_ack=True, inactivity_timeout=30):
            assert body is not None, "the other consumer got nothing while one consumer was stalled"
            got.append(body)
            if len(got) == 10:
                break
        ch.cancel()
        assert got == [b"%d" % seq for seq in range(10)]
    seqs = []
    while len(seqs) < COUNT:
        frame = stalled.next_frame()
        if isinstance(frame.method, spec.Basic.Deliver):
            header = stalled.next_frame()
            assert header.type == FRAME_HEADER
            body = b""
            while len(body) < SIZE:
                part = stalled.next_frame()
                assert part.type == FRAME_BODY
                body += part.payload
            assert body[4:] == b"s" * (SIZE - 4)
            seqs.append(struct.unpack(">I", body[:4])[0])
    assert seqs == list(range(COUNT))
    stalled.sock.close()
