"""Differential: the order of the frames the server sends on its own
(basic.cancel for a deleted queue, publisher confirms, basic.return, a
server channel.close) when the client pipelines a close behind the method
that causes them, and the socket after connection.close-ok. Raw sockets
(tests/interop/raw_client.py): the bytes each scenario writes are exactly
the same for both brokers, and every frame the broker sends is compared, in
order, with the reference RabbitMQ 3.10.

The rules (issue 17, docs/client-compatibility.md):

- a basic.cancel caused by a queue deletion follows the reply to the method
  that deleted the queue (rabbit_channel.erl
  ``handle_consuming_queue_down_or_eol``);
- nothing follows channel.close-ok on that channel, and a channel that
  reuses the number gets nothing meant for the old one (rabbit_channel.erl
  ``send/2`` drops frames in state closing);
- after connection.close-ok the broker sends nothing more, discards what the
  client still writes and leaves the socket for the client to close
  (rabbit_reader.erl ``close_connection``, ``handle_frame`` in state closed).

RabbitMQ sends the confirms it has settled when a pipelined close arrives
and drops the rest; how many it has settled by then varies from run to run.
So the acks *before* a close-ok are checked for validity (increasing tags
within what was published) and left out of the compared frames; any frame
after the close-ok, ack or not, is compared and must not be there.

connection.blocked is checked against Leveret alone
(tests/interop/test_blocked_frame_order.py): the shared reference RabbitMQ
cannot be put into a resource alarm without blocking every other user of it.
"""

from __future__ import annotations

import select
import socket
from urllib.parse import unquote, urlparse

from pamqp import commands as spec

from tests.interop.raw_client import Frame, RawClient, body_frame, header_frame, method_frame

#: publishes in the confirm bursts (amqplib's failing case was 1,000)
BURST = 1000
#: the client's closes, as a client library sends them
CHANNEL_CLOSE = method_frame(1, spec.Channel.Close(reply_code=200, reply_text="Goodbye", class_id=0, method_id=0))
CONNECTION_CLOSE = method_frame(0, spec.Connection.Close(reply_code=200, reply_text="Goodbye", class_id=0,
                                                         method_id=0))


# ------------------------------------------------------------------ helpers

def _client(url: str) -> RawClient:
    """A RawClient to ``url`` after the handshake (heartbeats off), channel 1 open."""
    parsed = urlparse(url)
    client = RawClient(parsed.hostname or "127.0.0.1", parsed.port or 5672)
    try:
        client.handshake(parsed.username or "guest", parsed.password or "guest",
                         unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/")
        client.open_channel(1)
    except BaseException:
        client.close()
        raise
    return client


def _label(frame: Frame) -> str:
    """A frame as compared: channel, name and the fields that matter."""
    method = frame.method
    text = f"{frame.channel}:{frame.name}"
    if isinstance(method, spec.Basic.Cancel):
        text += f"({method.consumer_tag})"
    elif isinstance(method, (spec.Channel.Close, spec.Connection.Close, spec.Basic.Return)):
        text += f"({method.reply_code})"
    elif isinstance(method, spec.Basic.Ack):
        text += f"({method.delivery_tag}{',multiple' if method.multiple else ''})"
    return text


def _read_until(client: RawClient, last: str) -> list[Frame]:
    """Frames up to and including the first one labelled ``last``."""
    frames = []
    while not frames or _label(frames[-1]) != last:
        frames.append(client.next_frame())
    return frames


def _compared(frames: list[Frame], published: int = 0) -> list[str]:
    """Labels of ``frames``, without the basic.acks on channel 1 that come
    before its first close-ok (channel or connection), which must confirm
    increasing tags within 1..``published``."""
    labels, acked, closed = [], 0, False
    for frame in frames:
        if isinstance(frame.method, (spec.Channel.CloseOk, spec.Connection.CloseOk)):
            closed = True
        if isinstance(frame.method, spec.Basic.Ack) and frame.channel == 1 and not closed:
            tag = frame.method.delivery_tag
            assert acked < tag <= published, f"ack {tag} after {acked}, {published} published"
            acked = tag
            continue
        labels.append(_label(frame))
    return labels


def _declare_queue(client: RawClient) -> str:
    """A server-named exclusive queue (gone with the connection)."""
    return client.rpc(1, spec.Queue.Declare(queue="", exclusive=True), spec.Queue.DeclareOk).queue


def _publishes(count: int, routing_key: str, mandatory: bool = False, exchange: str = "",
               channel: int = 1) -> bytes:
    """``count`` transient publishes of a small body on ``channel``, as bytes."""
    publish = spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
    return (method_frame(channel, publish) + header_frame(channel, 5) + body_frame(channel, b"hello")) * count


def _reopen_and_sync(client: RawClient) -> list[Frame]:
    """After channel 1's close-ok: open channel 1 again and make one round
    trip on it; the frames up to basic.qos-ok (anything meant for the old
    channel 1 would show up here)."""
    client.send(method_frame(1, spec.Channel.Open()) + method_frame(1, spec.Basic.Qos(prefetch_count=1)))
    return _read_until(client, "1:Basic.QosOk")


def _after_connection_close_ok(client: RawClient, url: str) -> dict:
    """After connection.close-ok was read: is the socket still open once a
    second connection has made its whole handshake (the broker leaves the
    close to the client); are the client's late writes taken; and, once the
    client shuts its side down, how many bytes come before the broker
    closes (RabbitMQ closes with SO_LINGER 0, a reset, so the kind of end
    is not compared)."""
    other = _client(url)
    other.close()
    readable, _, _ = select.select([client.sock], [], [], 0)
    observed = {"open after close-ok": not readable and not client.buf}
    try:
        client.send(_publishes(10, "h1-nowhere") + method_frame(2, spec.Channel.Open()))
        client.sock.shutdown(socket.SHUT_WR)
        observed["late writes"] = "taken"
    except OSError as exc:
        observed["late writes"] = type(exc).__name__
    late = b""
    client.sock.settimeout(client.timeout)
    try:
        while chunk := client.sock.recv(65536):
            late += chunk
    except ConnectionResetError:
        pass
    observed["bytes after close-ok"] = len(late)
    return observed


#: what ``_after_connection_close_ok`` observes of RabbitMQ
LEFT_TO_CLIENT = {"open after close-ok": True, "late writes": "taken", "bytes after close-ok": 0}


# ------------------------------------------------------------------ basic.cancel for a deleted queue

def queue_delete_while_consuming(url: str) -> list[str]:
    """queue.delete on the channel that consumes from the queue: delete-ok
    first, then the server's basic.cancel (py-amqp raises ConsumerCancelled
    inside queue_delete() otherwise, kombu's case)."""
    with _client(url) as client:
        queue = _declare_queue(client)
        client.rpc(1, spec.Basic.Consume(queue=queue, consumer_tag="c1"), spec.Basic.ConsumeOk)
        client.send_method(1, spec.Queue.Delete(queue=queue))
        frames = _read_until(client, "1:Basic.Cancel(c1)")
        client.send_method(1, spec.Basic.Qos(prefetch_count=1))
        frames += _read_until(client, "1:Basic.QosOk")
        return _compared(frames)


def test_cancel_follows_queue_delete_ok(differential):
    differential(queue_delete_while_consuming, ["1:Queue.DeleteOk", "1:Basic.Cancel(c1)", "1:Basic.QosOk"])


def queue_delete_then_channel_close(url: str) -> list[str]:
    """queue.delete and channel.close in one write: the cancel is not sent
    after channel.close-ok, nor on channel 1 opened again."""
    with _client(url) as client:
        queue = _declare_queue(client)
        client.rpc(1, spec.Basic.Consume(queue=queue, consumer_tag="c1"), spec.Basic.ConsumeOk)
        client.send(method_frame(1, spec.Queue.Delete(queue=queue)) + CHANNEL_CLOSE)
        frames = _read_until(client, "1:Channel.CloseOk")
        return _compared(frames + _reopen_and_sync(client))


def test_no_cancel_after_channel_close_ok(differential):
    differential(queue_delete_then_channel_close,
                 ["1:Queue.DeleteOk", "1:Channel.CloseOk", "1:Channel.OpenOk", "1:Basic.QosOk"])


def queue_delete_then_connection_close(url: str) -> dict:
    """queue.delete and connection.close in one write: nothing after
    connection.close-ok."""
    with _client(url) as client:
        queue = _declare_queue(client)
        client.rpc(1, spec.Basic.Consume(queue=queue, consumer_tag="c1"), spec.Basic.ConsumeOk)
        client.send(method_frame(1, spec.Queue.Delete(queue=queue)) + CONNECTION_CLOSE)
        frames = _compared(_read_until(client, "0:Connection.CloseOk"))
        return {"frames": frames, **_after_connection_close_ok(client, url)}


def test_no_cancel_after_connection_close_ok(differential):
    differential(queue_delete_then_connection_close, {
        "frames": ["1:Queue.DeleteOk", "0:Connection.CloseOk"],
        **LEFT_TO_CLIENT})


# ------------------------------------------------------------------ publisher confirms

def confirm_burst_then_channel_close(url: str) -> list[str]:
    """A burst of publishes on a confirm channel and channel.close in one
    write (amqplib's case): the acks RabbitMQ has settled come before
    close-ok, none after it, none on channel 1 opened again."""
    with _client(url) as client:
        queue = _declare_queue(client)
        client.confirm_select(1)
        client.send(_publishes(BURST, queue) + CHANNEL_CLOSE)
        frames = _read_until(client, "1:Channel.CloseOk")
        return _compared(frames + _reopen_and_sync(client), BURST)


def test_no_confirm_after_channel_close_ok(differential):
    differential(confirm_burst_then_channel_close, ["1:Channel.CloseOk", "1:Channel.OpenOk", "1:Basic.QosOk"])


def confirm_burst_then_connection_close(url: str) -> dict:
    """The same burst followed by connection.close: no ack after
    connection.close-ok, and the socket stays open for the client's late
    writes (amqplib's close can overtake publishes it still queues)."""
    with _client(url) as client:
        queue = _declare_queue(client)
        client.confirm_select(1)
        client.send(_publishes(BURST, queue) + CONNECTION_CLOSE)
        frames = _compared(_read_until(client, "0:Connection.CloseOk"), BURST)
        return {"frames": frames, **_after_connection_close_ok(client, url)}


def test_no_confirm_after_connection_close_ok(differential):
    differential(confirm_burst_then_connection_close, {
        "frames": ["0:Connection.CloseOk"], **LEFT_TO_CLIENT})


# ------------------------------------------------------------------ basic.return

def mandatory_return_then_channel_close(url: str) -> list[str]:
    """An unroutable mandatory publish on a confirm channel, then
    channel.close, in one write: basic.return, its content, the ack, then
    close-ok (RabbitMQ settles an unroutable publish at once)."""
    with _client(url) as client:
        client.confirm_select(1)
        client.send(_publishes(1, "h1-nowhere", mandatory=True) + CHANNEL_CLOSE)
        frames = _read_until(client, "1:Channel.CloseOk")
        return [_label(frame) for frame in frames + _reopen_and_sync(client)]


def test_return_and_ack_before_channel_close_ok(differential):
    differential(mandatory_return_then_channel_close, [
        "1:Basic.Return(312)", "1:ContentHeader", "1:ContentBody", "1:Basic.Ack(1)", "1:Channel.CloseOk",
        "1:Channel.OpenOk", "1:Basic.QosOk"])


def mandatory_return_then_connection_close(url: str) -> dict:
    """The same with connection.close."""
    with _client(url) as client:
        client.confirm_select(1)
        client.send(_publishes(1, "h1-nowhere", mandatory=True) + CONNECTION_CLOSE)
        frames = [_label(frame) for frame in _read_until(client, "0:Connection.CloseOk")]
        return {"frames": frames, **_after_connection_close_ok(client, url)}


def test_return_and_ack_before_connection_close_ok(differential):
    differential(mandatory_return_then_connection_close, {
        "frames": ["1:Basic.Return(312)", "1:ContentHeader", "1:ContentBody", "1:Basic.Ack(1)",
                   "0:Connection.CloseOk"],
        **LEFT_TO_CLIENT})


# ------------------------------------------------------------------ server channel.close

def channel_error_then_channel_close(url: str) -> list[str]:
    """On a confirm channel, one write: an unroutable publish (acked at
    once), a publish to a missing exchange (404: the server closes the
    channel), a further publish, and the client's channel.close. The ack
    comes before the server's channel.close; after it, only the close-ok
    answering the client's close; the publish in between is dropped."""
    with _client(url) as client:
        client.confirm_select(1)
        client.send(_publishes(1, "h1-nowhere") + _publishes(1, "x", exchange="h1-no-such-exchange")
                    + _publishes(1, "h1-nowhere", mandatory=True) + CHANNEL_CLOSE)
        frames = _read_until(client, "1:Channel.CloseOk")
        client.send_method(1, spec.Channel.CloseOk())
        return [_label(frame) for frame in frames + _reopen_and_sync(client)]


def test_nothing_after_server_channel_close(differential):
    differential(channel_error_then_channel_close, [
        "1:Basic.Ack(1)", "1:Channel.Close(404)", "1:Channel.CloseOk", "1:Channel.OpenOk", "1:Basic.QosOk"])


# ------------------------------------------------------------------ connection.close ends the frame loop

def frames_after_connection_close(url: str) -> dict:
    """connection.close followed, in the same write, by frames that would
    each get an answer or an error (channel.open, a publish on a channel
    never opened): the broker answers close-ok only."""
    with _client(url) as client:
        client.send(CONNECTION_CLOSE + method_frame(2, spec.Channel.Open())
                    + _publishes(1, "h1-nowhere", channel=5))
        frames = [_label(frame) for frame in _read_until(client, "0:Connection.CloseOk")]
        return {"frames": frames, **_after_connection_close_ok(client, url)}


def test_frames_after_connection_close_are_discarded(differential):
    differential(frames_after_connection_close, {
        "frames": ["0:Connection.CloseOk"], **LEFT_TO_CLIENT})
