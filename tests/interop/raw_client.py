"""A tiny synchronous AMQP 0-9-1 client on a raw socket, built with pamqp.

It sends exactly the bytes a test asks for (no client-side checks), so tests
can provoke protocol errors that real client libraries refuse to produce and
can read the exact ``connection.close`` / ``channel.close`` frame the server
answers with (reply code, reply text, class id and method id).

Used by the connection, channel, exchange, queue and framing-error tests.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

from pamqp import commands as spec
from pamqp import encode
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp.body import ContentBody

# Reply codes, AMQP 0-9-1 section 1.4 (amqp0-9-1.xml "constants").
REPLY_SUCCESS = 200
CONTENT_TOO_LARGE = 311
NO_ROUTE = 312
NO_CONSUMERS = 313
CONNECTION_FORCED = 320
INVALID_PATH = 402
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
RESOURCE_ERROR = 506
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

# What real clients advertise; RabbitMQ only sends connection.close 403 on a
# failed login to clients that announce authentication_failure_close.
CLIENT_PROPERTIES = {
    "product": "leveret-raw-test-client",
    "capabilities": {
        "authentication_failure_close": True,
        "basic.nack": True,
        "connection.blocked": True,
        "consumer_cancel_notify": True,
        "publisher_confirms": True,
    },
}


class ConnectionLost(Exception):
    """The server closed the TCP connection (EOF or reset)."""


@dataclass
class Frame:
    """One frame read from the server. ``method`` is a pamqp command object
    for method frames, ``payload`` is always the raw frame payload."""

    type: int
    channel: int
    payload: bytes
    method: Any = None

    @property
    def name(self) -> str:
        if self.method is not None:
            return self.method.name
        return {FRAME_HEADER: "ContentHeader", FRAME_BODY: "ContentBody",
                FRAME_HEARTBEAT: "Heartbeat"}.get(self.type, f"frame-type-{self.type}")


@dataclass
class CloseInfo:
    """The fields of a connection.close or channel.close."""

    reply_code: int
    reply_text: str
    class_id: int
    method_id: int


def method_payload(method) -> bytes:
    """Method frame payload (class id, method id, arguments) for a pamqp command."""
    return struct.pack(">I", method.index) + method.marshal()


def raw_frame(frame_type: int, channel: int, payload: bytes, frame_end: int = FRAME_END) -> bytes:
    """Bytes of one frame with an arbitrary type and end octet."""
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([frame_end])


def method_frame(channel: int, method) -> bytes:
    return raw_frame(FRAME_METHOD, channel, method_payload(method))


def header_frame(channel: int, body_size: int, properties: spec.Basic.Properties | None = None) -> bytes:
    return pframe.marshal(pheader.ContentHeader(0, body_size, properties or spec.Basic.Properties()), channel)


def body_frame(channel: int, data: bytes) -> bytes:
    return pframe.marshal(ContentBody(data), channel)


def amqplain_response(user: str, password: str) -> bytes:
    """AMQPLAIN response: a field table without its 4-byte length prefix."""
    return encode.field_table({"LOGIN": user, "PASSWORD": password})[4:]


def start_ok_payload(mechanism: str, response: bytes, client_properties: dict | None = None,
                     locale: str = "en_US") -> bytes:
    """connection.start-ok built by hand so ``response`` can be any bytes."""
    props = CLIENT_PROPERTIES if client_properties is None else client_properties
    return (struct.pack(">HH", 10, 11) + encode.field_table(props)
            + encode.short_string(mechanism) + struct.pack(">I", len(response)) + response
            + encode.short_string(locale))


class RawClient:
    """One TCP connection to the broker. Frames the server sends are parsed
    with pamqp; heartbeats are skipped by :meth:`next_frame` unless asked."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.tune: spec.Connection.Tune | None = None
        self.start: spec.Connection.Start | None = None
        self.frame_max = 131072
        self.channel_max = 0
        self.heartbeat = 0

    @classmethod
    def for_broker(cls, broker, timeout: float = 5.0) -> "RawClient":
        return cls(broker.host, broker.port, timeout)

    # ------------------------------------------------------------ sending
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_method(self, channel: int, method) -> None:
        self.send(method_frame(channel, method))

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes,
                properties: spec.Basic.Properties | None = None, **kwargs) -> None:
        """basic.publish + content header + one body frame (if body non-empty)."""
        data = method_frame(channel, spec.Basic.Publish(exchange=exchange, routing_key=routing_key, **kwargs))
        data += header_frame(channel, len(body), properties)
        if body:
            data += body_frame(channel, body)
        self.send(data)

    # ------------------------------------------------------------ receiving
    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from the server in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no frame from the server in time") from None
        except ConnectionResetError as exc:
            raise ConnectionLost(str(exc)) from None
        if not chunk:
            raise ConnectionLost("server closed the socket")
        self.buf += chunk

    def read_bytes(self, n: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def next_frame(self, timeout: float | None = None, skip_heartbeats: bool = True) -> Frame:
        """Read the next frame; raise ConnectionLost on EOF, TimeoutError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            while len(self.buf) < 7:
                self._fill(deadline)
            ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
            while len(self.buf) < 8 + size:
                self._fill(deadline)
            payload = bytes(self.buf[7:7 + size])
            end = self.buf[7 + size]
            del self.buf[:8 + size]
            assert end == FRAME_END, f"server sent a bad frame-end octet {end:#x}"
            if ftype == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            frame = Frame(ftype, channel, payload)
            if ftype == FRAME_METHOD:
                frame.method = pframe._unmarshal_method_frame(payload)
            return frame

    def expect(self, method_cls, channel: int | None = None, timeout: float | None = None):
        """Next frame must be a ``method_cls`` method (on ``channel``); return it."""
        frame = self.next_frame(timeout)
        assert frame.method is not None and isinstance(frame.method, method_cls), (
            f"expected {method_cls.name}, got {frame.name} {frame.method!r}")
        if channel is not None:
            assert frame.channel == channel, f"{method_cls.name} on channel {frame.channel}, expected {channel}"
        return frame.method

    def rpc(self, channel: int, method, reply_cls, timeout: float | None = None):
        self.send_method(channel, method)
        return self.expect(reply_cls, channel, timeout)

    # ------------------------------------------------------------ handshake
    def send_protocol_header(self, header: bytes = PROTOCOL_HEADER) -> None:
        self.send(header)

    def begin(self) -> spec.Connection.Start:
        """Send the protocol header and read connection.start."""
        self.send_protocol_header()
        self.start = self.expect(spec.Connection.Start, 0)
        return self.start

    def login(self, user: str = "guest", password: str = "guest", mechanism: str = "PLAIN",
              response: bytes | None = None, client_properties: dict | None = None) -> None:
        """Send connection.start-ok with a PLAIN or AMQPLAIN response."""
        if response is None:
            if mechanism == "AMQPLAIN":
                response = amqplain_response(user, password)
            else:
                response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send(raw_frame(FRAME_METHOD, 0, start_ok_payload(mechanism, response, client_properties)))

    def read_tune(self) -> spec.Connection.Tune:
        self.tune = self.expect(spec.Connection.Tune, 0)
        return self.tune

    def tune_ok(self, channel_max: int | None = None, frame_max: int | None = None,
                heartbeat: int = 0) -> None:
        """Answer connection.tune; by default accept the server's limits."""
        assert self.tune is not None
        self.channel_max = self.tune.channel_max if channel_max is None else channel_max
        self.frame_max = self.tune.frame_max if frame_max is None else frame_max
        self.heartbeat = heartbeat
        self.send_method(0, spec.Connection.TuneOk(self.channel_max, self.frame_max, heartbeat))

    def open_vhost(self, vhost: str = "/") -> None:
        self.send_method(0, spec.Connection.Open(virtual_host=vhost))

    def handshake(self, user: str = "guest", password: str = "guest", vhost: str = "/",
                  mechanism: str = "PLAIN", channel_max: int | None = None,
                  frame_max: int | None = None, heartbeat: int = 0) -> "RawClient":
        """Full handshake up to connection.open-ok."""
        self.begin()
        self.login(user, password, mechanism)
        self.read_tune()
        self.tune_ok(channel_max, frame_max, heartbeat)
        self.open_vhost(vhost)
        self.expect(spec.Connection.OpenOk, 0)
        return self

    def open_channel(self, channel: int = 1) -> None:
        self.rpc(channel, spec.Channel.Open(), spec.Channel.OpenOk)

    def confirm_select(self, channel: int = 1) -> None:
        self.rpc(channel, spec.Confirm.Select(), spec.Confirm.SelectOk)

    def wait_acks(self, count: int, timeout: float | None = None) -> dict[int, int]:
        """Read publisher confirms until ``count`` messages are acked (any
        channel, ``multiple`` honoured); returns {channel: highest tag}."""
        seen: dict[int, int] = {}
        acked = 0
        while acked < count:
            frame = self.next_frame(timeout)
            if isinstance(frame.method, spec.Basic.Nack):
                raise AssertionError(f"message nacked on channel {frame.channel}")
            if isinstance(frame.method, spec.Basic.Ack):
                last = seen.get(frame.channel, 0)
                tag = frame.method.delivery_tag
                acked += (tag - last) if frame.method.multiple else 1
                seen[frame.channel] = max(last, tag)
        return seen

    # ------------------------------------------------------------ errors
    def wait_connection_close(self, timeout: float | None = None, reply: bool = True) -> CloseInfo:
        """Read frames until connection.close (channel 0); answer close-ok.

        Frames on other channels that arrive first are ignored (for example
        deliveries). Fails if the socket closes without a connection.close.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            frame = self.next_frame(max(0.01, deadline - time.monotonic()))
            if isinstance(frame.method, spec.Connection.Close):
                assert frame.channel == 0, "connection.close must be sent on channel 0"
                m = frame.method
                if reply:
                    try:
                        self.send_method(0, spec.Connection.CloseOk())
                    except OSError:
                        pass
                return CloseInfo(m.reply_code, m.reply_text, m.class_id, m.method_id)

    def wait_channel_close(self, channel: int, timeout: float | None = None,
                           reply: bool = True) -> CloseInfo:
        """Read frames until channel.close on ``channel``; answer close-ok."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            frame = self.next_frame(max(0.01, deadline - time.monotonic()))
            if isinstance(frame.method, spec.Connection.Close):
                m = frame.method
                raise AssertionError(
                    f"expected channel.close, got connection.close {m.reply_code} {m.reply_text!r} "
                    f"class {m.class_id} method {m.method_id}")
            if frame.channel == channel and isinstance(frame.method, spec.Channel.Close):
                m = frame.method
                if reply:
                    self.send_method(channel, spec.Channel.CloseOk())
                return CloseInfo(m.reply_code, m.reply_text, m.class_id, m.method_id)
            if frame.channel == channel and frame.method is not None and (
                    frame.name.endswith("Ok") or frame.name == "Basic.GetEmpty"):
                raise AssertionError(f"expected channel.close, got {frame.name}")

    def wait_socket_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the TCP connection within ``timeout``;
        any frames it sends meanwhile are discarded."""
        deadline = time.monotonic() + timeout
        self.buf.clear()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not chunk:
                return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connected(broker, channel: int | None = 1, **handshake_kwargs) -> RawClient:
    """A RawClient that finished the handshake (and opened ``channel``)."""
    client = RawClient.for_broker(broker)
    try:
        client.handshake(**handshake_kwargs)
        if channel:
            client.open_channel(channel)
    except BaseException:
        client.close()
        raise
    return client


def raw_channel_error(broker, method, channel: int = 1) -> CloseInfo:
    """Open a fresh connection + channel, send ``method`` (a pamqp command, or
    raw frame bytes), return the channel.close the server answers with, and
    check that the connection is still usable afterwards."""
    with connected(broker, channel) as client:
        if isinstance(method, (bytes, bytearray)):
            client.send(bytes(method))
        else:
            client.send_method(channel, method)
        info = client.wait_channel_close(channel)
        # the connection must still work after a channel error
        client.open_channel(channel + 1)
        return info


def raw_connection_error(broker, data: bytes, channel: int | None = 1) -> CloseInfo:
    """Open a fresh connection (+ channel), send raw ``data``, return the
    connection.close the server answers with, and check the socket is then
    closed by the server."""
    with connected(broker, channel) as client:
        client.send(data)
        info = client.wait_connection_close()
        assert client.wait_socket_closed(5.0), "server did not close the socket after close-ok"
        return info


REPLY_NAMES = {
    CONNECTION_FORCED: "CONNECTION_FORCED", INVALID_PATH: "INVALID_PATH",
    ACCESS_REFUSED: "ACCESS_REFUSED", NOT_FOUND: "NOT_FOUND", RESOURCE_LOCKED: "RESOURCE_LOCKED",
    PRECONDITION_FAILED: "PRECONDITION_FAILED", FRAME_ERROR: "FRAME_ERROR",
    SYNTAX_ERROR: "SYNTAX_ERROR", COMMAND_INVALID: "COMMAND_INVALID", CHANNEL_ERROR: "CHANNEL_ERROR",
    UNEXPECTED_FRAME: "UNEXPECTED_FRAME", RESOURCE_ERROR: "RESOURCE_ERROR", NOT_ALLOWED: "NOT_ALLOWED",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED", INTERNAL_ERROR: "INTERNAL_ERROR",
}


def assert_close(info: CloseInfo, reply_code: int, class_id: int | None = None,
                 method_id: int | None = None) -> None:
    """Check a close frame: code, ids, and RabbitMQ's "<NAME> - detail" text."""
    got = (info.reply_code, info.class_id, info.method_id)
    want = (reply_code,
            info.class_id if class_id is None else class_id,
            info.method_id if method_id is None else method_id)
    assert got == want, f"expected (code, class, method) {want}, got {got}: {info.reply_text!r}"
    name = REPLY_NAMES[reply_code]
    assert info.reply_text.startswith(f"{name} - "), (
        f"reply text {info.reply_text!r} should start with '{name} - ' (RabbitMQ's format)")
