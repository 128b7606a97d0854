"""Confirmed persistent messages survive the container: ``podman stop``
(SIGTERM, the broker shuts down cleanly) and ``podman kill`` (SIGKILL, no
shutdown at all), then the broker is started again on the same volume.
docs/architecture.md, "Durability contract": confirmed means durable."""

from __future__ import annotations

import pika
import pytest

from tests.container import engine

pytestmark = pytest.mark.timeout(300)  # the first test may wait for the image build

COUNT = 200
QUEUE = "container-durability"


def parameters(box: engine.Container) -> pika.URLParameters:
    return pika.URLParameters(box.url + "?connection_attempts=3&retry_delay=1")


def publish_confirmed(box: engine.Container) -> None:
    """COUNT persistent messages to a durable queue, each confirmed
    (pika's BlockingChannel.basic_publish waits for the ack, and raises
    NackError / UnroutableError otherwise)."""
    with pika.BlockingConnection(parameters(box)) as conn:
        channel = conn.channel()
        channel.queue_declare(QUEUE, durable=True)
        channel.confirm_delivery()
        for i in range(COUNT):
            channel.basic_publish("", QUEUE, b"m%d" % i, pika.BasicProperties(delivery_mode=2),
                                  mandatory=True)


def drain(box: engine.Container) -> list[bytes]:
    """Every message in QUEUE, acked, in order."""
    bodies: list[bytes] = []
    with pika.BlockingConnection(parameters(box)) as conn:
        channel = conn.channel()
        while True:
            method, _props, body = channel.basic_get(QUEUE, auto_ack=True)
            if method is None:
                return bodies
            bodies.append(body)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_confirmed_messages_survive(container, volume, how):
    data = volume()
    box = container(volume_name=data)
    publish_confirmed(box)
    if how == "stop":
        box.stop()
        assert box.exit_code() == 0, box.logs()[-3000:]
        box.start()  # the same container, again
        after = box
    else:
        box.kill()
        assert box.exit_code() == 137  # 128 + SIGKILL: no shutdown ran
        box.remove()
        after = container(volume_name=data)  # a new container on the same volume
    assert drain(after) == [b"m%d" % i for i in range(COUNT)]
