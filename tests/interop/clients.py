"""Client helpers shared by the basic.*, confirm.*, tx.*, tutorial and load tests.

Three ways to talk to the broker under test:

* pika ``BlockingConnection`` via :func:`blocking` / :func:`pika_params`;
* aio-pika via :func:`aio_connect`;
* :class:`RawConnection`, a tiny synchronous AMQP client built on pamqp that
  sends exactly the frames a test asks for (no client-side checks) and hands
  back every frame the server sends, with the raw content-header bytes. It is
  used where pika would refuse to send something (a duplicate consumer tag) or
  where a test must see the exact close frame (class and method ids).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import pika
from pamqp import commands as spec
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp import body as pbody
from pamqp import heartbeat as pheartbeat

USER = "guest"
PASSWORD = "guest"

# Reply codes (AMQP 0-9-1 section 1.4 / amqp0-9-1.xml "constants").
REPLY_SUCCESS = 200
NO_ROUTE = 312
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540


# --------------------------------------------------------------------------- pika

def pika_params(broker, **overrides: Any) -> pika.ConnectionParameters:
    """Connection parameters for ``broker`` (guest/guest on vhost "/")."""
    kwargs: dict[str, Any] = dict(
        host=broker.host,
        port=broker.port,
        virtual_host="/",
        credentials=pika.PlainCredentials(USER, PASSWORD),
        connection_attempts=1,
        socket_timeout=5,
        stack_timeout=10,
        blocked_connection_timeout=30,
        heartbeat=0,
    )
    kwargs.update(overrides)
    return pika.ConnectionParameters(**kwargs)


@contextlib.contextmanager
def blocking(broker, **overrides: Any) -> Iterator[pika.BlockingConnection]:
    """A pika BlockingConnection that is closed (errors ignored) on exit."""
    conn = pika.BlockingConnection(pika_params(broker, **overrides))
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            if conn.is_open:
                conn.close()


def get_all(channel, queue: str, auto_ack: bool = True, limit: int = 100000) -> list[bytes]:
    """basic.get until get-empty; return the bodies in order."""
    bodies = []
    for _ in range(limit):
        method, _props, body = channel.basic_get(queue, auto_ack=auto_ack)
        if method is None:
            return bodies
        bodies.append(body)
    raise AssertionError(f"queue {queue} did not run empty after {limit} gets")


def message_count(channel, queue: str) -> int:
    """Ready-message count from a passive queue.declare."""
    return channel.queue_declare(queue, passive=True).method.message_count


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_message_count(channel_factory, queue: str, expected: int, timeout: float = 5.0) -> None:
    """Wait until the queue reports ``expected`` ready messages.

    ``channel_factory`` returns an open channel (queue counts are updated
    asynchronously after a requeue, so poll instead of asserting once)."""
    last = []

    def check():
        ch = channel_factory()
        try:
            last[:] = [message_count(ch, queue)]
        finally:
            with contextlib.suppress(Exception):
                ch.close()
        return last[0] == expected

    try:
        wait_for(check, timeout, what=f"{queue} to hold {expected} messages")
    except AssertionError:
        raise AssertionError(f"{queue} holds {last} messages, expected {expected}") from None


# ------------------------------------------------------------------------ aio-pika

async def aio_connect(broker, **kwargs: Any):
    """An aio-pika connection to ``broker`` (plain, not robust)."""
    import aio_pika

    return await aio_pika.connect(host=broker.host, port=broker.port, login=USER,
                                  password=PASSWORD, virtualhost="/", timeout=10, **kwargs)


# --------------------------------------------------------------------- raw client

@dataclass
class Command:
    """One complete command received from the server."""

    channel: int
    method: Any
    properties: Any = None
    body: bytes = b""
    header_payload: bytes = b""  # raw content-header frame payload
    body_frames: int = 0


class ConnectionLost(Exception):
    """The server closed the TCP connection."""


class RawConnection:
    """Synchronous AMQP 0-9-1 client that sends frames verbatim.

    ``RawConnection(host, port).open()`` performs the handshake (PLAIN
    guest/guest, vhost "/"). ``read_command`` returns a :class:`Command`;
    content frames are assembled. ``close_frames`` collects everything up to
    the server closing the socket.
    """

    def __init__(self, host: str, port: int, timeout: float = 5.0, frame_max: int = 131072):
        self.host, self.port, self.timeout = host, port, timeout
        self.frame_max = frame_max
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.pending: list[Command] = []
        self.server_properties: dict = {}

    # ---- plumbing
    def connect_socket(self) -> "RawConnection":
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def send_bytes(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.sendall(data)

    def send(self, channel: int, frame_value) -> None:
        self.send_bytes(pframe.marshal(frame_value, channel))

    def _fill(self, deadline: float) -> None:
        assert self.sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame from server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            raise TimeoutError("no frame from server in time") from None
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnectionLost("server closed the connection")
        self.buf += data

    def read_frame(self, timeout: float | None = None) -> tuple[int, int, bytes, Any]:
        """Return (frame_type, channel, payload, pamqp object)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 7:
                ftype, channel, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    raw = bytes(self.buf[: 8 + size])
                    del self.buf[: 8 + size]
                    assert raw[-1] == 0xCE, f"bad frame end {raw[-1]:#x}"
                    _, _, obj = pframe.unmarshal(raw)
                    return ftype, channel, raw[7:-1], obj
            self._fill(deadline)

    def read_command(self, timeout: float | None = None, skip_heartbeats: bool = True) -> Command:
        if self.pending:
            return self.pending.pop(0)
        while True:
            ftype, channel, payload, obj = self.read_frame(timeout)
            if isinstance(obj, pheartbeat.Heartbeat) and skip_heartbeats:
                continue
            cmd = Command(channel, obj)
            if isinstance(obj, (spec.Basic.Deliver, spec.Basic.GetOk, spec.Basic.Return)):
                _, _, hpayload, hdr = self.read_frame(timeout)
                assert isinstance(hdr, pheader.ContentHeader), hdr
                cmd.header_payload = hpayload
                cmd.properties = hdr.properties
                chunks = []
                while sum(map(len, chunks)) < hdr.body_size:
                    _, _, _, b = self.read_frame(timeout)
                    assert isinstance(b, pbody.ContentBody), b
                    chunks.append(b.value)
                cmd.body = b"".join(chunks)
                cmd.body_frames = len(chunks)
            return cmd

    def expect(self, kind, channel: int | None = None, timeout: float | None = None) -> Command:
        cmd = self.read_command(timeout)
        assert isinstance(cmd.method, kind), f"expected {kind.__name__}, got {describe(cmd)}"
        if channel is not None:
            assert cmd.channel == channel, (cmd.channel, channel)
        return cmd

    def call(self, channel: int, method, reply_kind, timeout: float | None = None) -> Command:
        self.send(channel, method)
        return self.expect(reply_kind, channel, timeout)

    # ---- protocol steps
    def open(self, vhost: str = "/", capabilities: dict | None = None) -> "RawConnection":
        """Handshake. ``capabilities`` replaces the client capabilities table
        (default: the ones pika announces)."""
        if capabilities is None:
            capabilities = {"publisher_confirms": True, "consumer_cancel_notify": True,
                            "basic.nack": True, "connection.blocked": True,
                            "authentication_failure_close": True}
        self.connect_socket()
        self.send_bytes(b"AMQP\x00\x00\x09\x01")
        start = self.expect(spec.Connection.Start, 0)
        self.server_properties = start.method.server_properties
        self.send(0, spec.Connection.StartOk(
            client_properties={"product": "leveret-tests", "capabilities": capabilities},
            mechanism="PLAIN", response=f"\0{USER}\0{PASSWORD}", locale="en_US"))
        tune = self.expect(spec.Connection.Tune, 0)
        frame_max = min(self.frame_max, tune.method.frame_max or self.frame_max)
        self.frame_max = frame_max
        self.send(0, spec.Connection.TuneOk(channel_max=tune.method.channel_max,
                                            frame_max=frame_max, heartbeat=0))
        self.call(0, spec.Connection.Open(virtual_host=vhost), spec.Connection.OpenOk)
        return self

    def channel(self, number: int = 1) -> int:
        self.call(number, spec.Channel.Open(), spec.Channel.OpenOk)
        return number

    def publish(self, channel: int, exchange: str, routing_key: str, body: bytes,
                properties: spec.Basic.Properties | None = None, mandatory: bool = False) -> bytes:
        """Send basic.publish + header + body frames; return the header payload sent."""
        props = properties or spec.Basic.Properties()
        out = [pframe.marshal(spec.Basic.Publish(exchange=exchange, routing_key=routing_key,
                                                 mandatory=mandatory), channel)]
        hdr_bytes = pframe.marshal(pheader.ContentHeader(0, len(body), props), channel)
        out.append(hdr_bytes)
        step = self.frame_max - 8
        for i in range(0, len(body), step):
            out.append(pframe.marshal(pbody.ContentBody(body[i:i + step]), channel))
        self.send_bytes(b"".join(out))
        return hdr_bytes[7:-1]

    def read_until(self, kind, channel: int, timeout: float | None = None) -> tuple[Command, list[Command]]:
        """Read until a ``kind`` command on ``channel``; return it and the
        commands read before it (in order)."""
        before: list[Command] = []
        while True:
            cmd = self.read_command(timeout)
            if isinstance(cmd.method, kind) and cmd.channel == channel:
                return cmd, before
            before.append(cmd)

    def channel_closed_by_server(self, channel: int, timeout: float | None = None) -> Command:
        """Read until the server's channel.close on ``channel`` (deliveries
        before it are dropped), answer close-ok, return the close."""
        cmd, _ = self.read_until(spec.Channel.Close, channel, timeout)
        self.send(channel, spec.Channel.CloseOk())
        return cmd

    def close_channel(self, channel: int, timeout: float | None = None) -> list[Command]:
        """Client-initiated channel.close; returns the commands (e.g.
        deliveries) received before close-ok."""
        self.send(channel, spec.Channel.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        return self.read_until(spec.Channel.CloseOk, channel, timeout)[1]

    def no_command(self, wait: float = 0.3) -> None:
        """Assert the server sends nothing for ``wait`` seconds."""
        try:
            cmd = self.read_command(wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {describe(cmd)} on channel {cmd.channel}")

    def until_closed(self, timeout: float | None = None) -> list[Command]:
        """Read commands until the server drops the socket; return them."""
        got = list(self.pending)
        self.pending.clear()
        while True:
            try:
                cmd = self.read_command(timeout)
            except ConnectionLost:
                return got
            got.append(cmd)
            if isinstance(cmd.method, spec.Connection.Close):
                with contextlib.suppress(OSError):
                    self.send(0, spec.Connection.CloseOk())

    def connection_close(self, timeout: float | None = None) -> Command:
        """Read until the server's connection.close (answering it with
        close-ok) and return it; fails if the socket drops first."""
        for cmd in self.until_closed(timeout):
            if isinstance(cmd.method, spec.Connection.Close):
                return cmd
        raise AssertionError("server dropped the socket without connection.close")

    def close(self) -> None:
        if self.sock is None:
            return
        with contextlib.suppress(Exception):
            self.send(0, spec.Connection.Close(reply_code=200, reply_text="bye"))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                cmd = self.read_command(2)
                if isinstance(cmd.method, spec.Connection.CloseOk):
                    break
        with contextlib.suppress(Exception):
            self.sock.close()
        self.sock = None

    def __enter__(self) -> "RawConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def raw(broker, capabilities: dict | None = None, **kwargs: Any) -> Iterator[RawConnection]:
    """An opened :class:`RawConnection` to ``broker``, closed on exit."""
    conn = RawConnection(broker.host, broker.port, **kwargs).open(capabilities=capabilities)
    try:
        yield conn
    finally:
        conn.close()


def channel_close_of(cmd: Command) -> tuple[int, str, int, int]:
    """(reply_code, reply_text, class_id, method_id) of a Channel.Close/Connection.Close."""
    m = cmd.method
    assert isinstance(m, (spec.Channel.Close, spec.Connection.Close)), m
    return m.reply_code, m.reply_text, m.class_id, m.method_id


def describe(obj) -> str:
    """``Name(field=value, ...)`` for a pamqp method or properties object."""
    if isinstance(obj, Command):
        return describe(obj.method) + (f" body={obj.body[:40]!r}" if obj.body else "")
    return f"{obj.name}({', '.join(f'{k}={v!r}' for k, v in obj)})"
