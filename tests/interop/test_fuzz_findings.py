"""Regressions for what the live fuzzer (bench/fuzz_live.py) found.

- A queue name with characters outside pamqp's name pattern (a space, a
  tab, "ü", "!") was declared, then the declare-ok failed to encode: 541
  INTERNAL_ERROR after the queue existed. RabbitMQ 3.10 accepts any UTF-8
  name (checked with the same frames); so does Leveret now (protocol/names.py).
"""

from __future__ import annotations

import pytest
from pamqp import commands as spec

import protocol.names  # noqa: F401  (lets this client build methods with such names too)
from tests.interop.raw_client import RawClient


@pytest.mark.parametrize("suffix", [" q ü", "\tq!", "-é#"])
def test_any_utf8_queue_name_is_declared_and_used(broker, unique, suffix):
    name = unique("h9-names") + suffix
    client = RawClient.for_broker(broker)
    client.handshake()
    client.open_channel(1)
    ok = client.rpc(1, spec.Queue.Declare(queue=name, auto_delete=True), spec.Queue.DeclareOk)
    assert ok.queue == name
    client.rpc(1, spec.Queue.Bind(queue=name, exchange="amq.direct", routing_key=name), spec.Queue.BindOk)
    client.publish(1, "amq.direct", name, b"hello")
    client.rpc(1, spec.Basic.Consume(queue=name, consumer_tag=name, no_ack=True), spec.Basic.ConsumeOk)
    deliver = client.expect(spec.Basic.Deliver, 1)
    assert (deliver.consumer_tag, deliver.routing_key) == (name, name)
    client.next_frame()  # content header
    assert client.next_frame().payload == b"hello"
    client.rpc(1, spec.Queue.Delete(queue=name), spec.Queue.DeleteOk)
    client.sock.close()
