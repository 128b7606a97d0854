"""connection.blocked against a client that pipelines its close (the
frame-order rule of docs/client-compatibility.md: nothing follows
connection.close-ok, and nothing meant for a closed channel reaches it).
Leveret only: the shared reference RabbitMQ cannot be put into an alarm
without blocking everyone else who uses it, so the rule checked is the one
the differential frame-order tests check for the other server-initiated
frames (tests/differential/test_diff_frame_order.py).

The broker is started with a disk free limit above any real free space, so
the disk alarm is raised at its first check; a raw client that announces the
``connection.blocked`` capability then publishes and closes in one write."""

from __future__ import annotations

import time

from pamqp import commands as spec

from tests.interop.raw_client import ConnectionLost, RawClient, body_frame, header_frame, method_frame

#: far above any real free space: the disk alarm is raised at once
DISK_FREE_LIMIT = 1 << 62


def _alarmed_broker(fresh_broker):
    broker = fresh_broker("--disk-free-limit", str(DISK_FREE_LIMIT))
    deadline = time.monotonic() + 30  # a hang guard: the alarm is checked every 0.5 s
    while "disk resource limit alarm set" not in broker.log_text():
        assert time.monotonic() < deadline, "the disk alarm was never raised"
        time.sleep(0.05)
    return broker


def _publish(channel: int = 1) -> bytes:
    publish = spec.Basic.Publish(exchange="", routing_key="h9-blocked-nowhere")
    return method_frame(channel, publish) + header_frame(channel, 5) + body_frame(channel, b"hello")


def _frames_until(client: RawClient, last_cls) -> list:
    frames = []
    while not frames or not isinstance(frames[-1].method, last_cls):
        frames.append(client.next_frame())
    return frames


def _nothing_more(client: RawClient, broker) -> bool:
    """After the close-ok: once a second connection has made its whole
    handshake (several loop passes of the broker), has the first socket
    received anything more? (True: nothing; a reset or EOF is nothing.)"""
    with RawClient.for_broker(broker) as other:
        other.handshake()
    try:
        client.sock.settimeout(0.2)
        return client.sock.recv(65536) == b""
    except TimeoutError:
        return True
    except ConnectionResetError:
        return True


def test_nothing_follows_connection_close_ok_while_blocked(fresh_broker):
    broker = _alarmed_broker(fresh_broker)
    with RawClient.for_broker(broker) as client:
        client.handshake()
        client.open_channel(1)
        client.send(_publish() + method_frame(0, spec.Connection.Close(
            reply_code=200, reply_text="Goodbye", class_id=0, method_id=0)))
        frames = _frames_until(client, spec.Connection.CloseOk)
        assert {type(frame.method) for frame in frames} <= {spec.Connection.Blocked, spec.Connection.CloseOk}
        assert _nothing_more(client, broker)


def test_blocked_is_sent_and_the_channel_close_answered(fresh_broker):
    """A publish and channel.close in one write while the disk alarm is
    raised: channel.close-ok answers the close (the whole read is parsed
    before the connection is paused), connection.blocked tells why nothing
    more is read, and no frame arrives on the closed channel."""
    broker = _alarmed_broker(fresh_broker)
    with RawClient.for_broker(broker) as client:
        client.handshake()
        client.open_channel(1)
        client.send(_publish() + method_frame(1, spec.Channel.Close(
            reply_code=200, reply_text="Goodbye", class_id=0, method_id=0)))
        frames = _frames_until(client, spec.Channel.CloseOk)
        deadline = time.monotonic() + 10
        while not any(isinstance(frame.method, spec.Connection.Blocked) for frame in frames):
            assert time.monotonic() < deadline, f"no connection.blocked: {[f.name for f in frames]}"
            try:
                frames.append(client.next_frame(timeout=0.5))
            except (TimeoutError, ConnectionLost):
                pass
        blocked = next(frame.method for frame in frames if isinstance(frame.method, spec.Connection.Blocked))
        assert blocked.reason == "low on disk"
        after_close_ok = frames[[isinstance(f.method, spec.Channel.CloseOk) for f in frames].index(True) + 1:]
        assert all(frame.channel == 0 for frame in after_close_ok), [f.name for f in after_close_ok]
