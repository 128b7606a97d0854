"""A minimal blocking AMQP 0-9-1 client on a raw socket, for benchmarks.

Client libraries (pika: ~10-20k msg/s) cannot push a broker to its limit
from Python, so the benchmarks speak the protocol themselves: pamqp builds
and parses the rare frames (handshake, channel.open, queue.declare,
basic.qos...), while the message path (``bench.amqp_load``) works on
pre-encoded bytes and parses deliveries and confirms with ``struct`` out of
one reused receive buffer.

    conn = Connection("127.0.0.1", 5672)          # handshake done, heartbeats off
    conn.open_channel(1)
    conn.rpc(1, commands.Queue.Declare(queue="q", durable=True), commands.Queue.DeclareOk)
    conn.close()

Units: sizes in bytes, timeouts in seconds. Errors: ``AMQPClosed`` when the
server closes the channel or connection (reply code and text), and
``ConnectionError`` when the socket ends.

amqps: ``Connection(..., tls_ca="ca.pem")`` speaks TLS, checking the
server's certificate against that CA (not its name). ``use_tls(ca)`` makes
it the default of every later connection, also in worker processes forked
afterwards (``bench/tls.py`` runs the unchanged scenarios that way).
"""

from __future__ import annotations

import select
import socket
import ssl
import struct

from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader

FRAME_HEAD = struct.Struct(">BHI")   # type, channel, payload size
FRAME_END = 0xCE
CLIENT_PROPERTIES = {
    "product": "leveret-bench-client",
    "capabilities": {"publisher_confirms": True, "basic.nack": True,
                     "consumer_cancel_notify": True, "per_consumer_qos": True},
}


#: CA file of the amqps connections made without ``tls_ca`` (None: plain AMQP)
DEFAULT_TLS_CA: str | None = None
#: socket timeout (seconds) of the connections made without ``timeout``
DEFAULT_TIMEOUT = 60.0


def use_tls(ca_file: str | None, timeout: float = 60.0) -> None:
    """Make later connections (in this process and the ones it forks) speak
    TLS with ``ca_file`` as their trusted CA (None: plain AMQP again), with
    a socket timeout of ``timeout`` seconds."""
    global DEFAULT_TLS_CA, DEFAULT_TIMEOUT
    DEFAULT_TLS_CA, DEFAULT_TIMEOUT = ca_file, timeout


def tls_client_context(ca_file: str) -> ssl.SSLContext:
    """A client context trusting ``ca_file``; the certificate's name is not
    checked (benchmarks connect to 127.0.0.1)."""
    context = ssl.create_default_context(cafile=ca_file)
    context.check_hostname = False
    return context


class AMQPClosed(Exception):
    """The server sent channel.close or connection.close: ``method`` is it."""

    def __init__(self, method):
        self.method = method
        super().__init__(f"{type(method).__name__}: {method.reply_code} {method.reply_text} "
                         f"(class {method.class_id}, method {method.method_id})")


class Connection:
    """One AMQP connection over a blocking TCP socket, handshake done.

    ``frame_max`` is what the client accepts (the result of the negotiation
    is ``self.frame_max``, bytes); heartbeats are turned off (tune-ok
    heartbeat 0). Received bytes land in ``buf`` (a ``bytearray`` of
    ``buffer_size`` bytes, reused); ``pos``..``end`` is the unparsed part.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 5672, user: str = "guest",
                 password: str = "guest", vhost: str = "/", frame_max: int = 131072,
                 buffer_size: int = 4 << 20, timeout: float | None = None, tls_ca: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=timeout or DEFAULT_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        tls_ca = tls_ca or DEFAULT_TLS_CA
        self.tls = tls_ca is not None
        if self.tls:
            self.sock = tls_client_context(tls_ca).wrap_socket(self.sock, server_hostname=host)
        self.buf = bytearray(buffer_size)
        self.view = memoryview(self.buf)
        self.pos = self.end = 0
        self.frame_max = frame_max
        self._handshake(user, password, vhost)

    # ---- bytes in --------------------------------------------------------

    def fill(self, block: bool = True) -> int:
        """Receive more bytes after ``end`` (moving the unparsed bytes to the
        front first when past half the buffer). Returns the byte count, 0
        when ``block`` is False and nothing is waiting. Raises
        ConnectionError when the server closed the socket."""
        if self.pos > len(self.buf) // 2 or self.pos == self.end or self.end == len(self.buf):
            remaining = self.end - self.pos
            self.buf[:remaining] = self.view[self.pos:self.end]
            self.pos, self.end = 0, remaining
        try:
            n = (self._tls_recv(block) if self.tls else
                 self.sock.recv_into(self.view[self.end:], 0, 0 if block else socket.MSG_DONTWAIT))
        except BlockingIOError:
            return 0
        if n == 0:
            raise ConnectionError("server closed the connection")
        self.end += n
        return n

    def _tls_recv(self, block: bool) -> int:
        """``recv_into`` for a TLS socket (which takes no flags), then what
        the TLS layer has already decrypted, so that a selector on the
        socket (``bench.consumer.consume_all``) misses nothing. Raises
        BlockingIOError when not ``block`` and nothing is waiting."""
        sock, view = self.sock, self.view
        if not block and not sock.pending() and not select.select([sock], [], [], 0)[0]:
            raise BlockingIOError
        n = sock.recv_into(view[self.end:])
        while n and sock.pending() and self.end + n < len(view):
            n += sock.recv_into(view[self.end + n:])
        return n

    def next_frame(self) -> tuple[int, int, int, int]:
        """Block until a whole frame is buffered; consume it and return
        ``(type, channel, payload_start, payload_end)`` (offsets into
        ``buf``, valid until the next ``fill``)."""
        while True:
            if self.end - self.pos >= 7:
                ftype, channel, size = FRAME_HEAD.unpack_from(self.buf, self.pos)
                stop = self.pos + 7 + size
                if stop < self.end:
                    if self.buf[stop] != FRAME_END:
                        raise ConnectionError(f"bad frame end at offset {stop}")
                    start, self.pos = self.pos + 7, stop + 1
                    return ftype, channel, start, stop
                if 8 + size > len(self.buf):
                    raise ConnectionError(f"frame of {size} bytes exceeds the receive buffer")
            self.fill()

    def read_method(self):
        """The next method frame decoded by pamqp as ``(channel, method)``,
        skipping heartbeats; raises AMQPClosed on channel/connection close
        (after answering it) and ValueError on a content frame."""
        while True:
            ftype, channel, start, stop = self.next_frame()
            if ftype == 8:
                continue
            if ftype != 1:
                raise ValueError(f"unexpected frame type {ftype} on channel {channel}")
            _, _, method = pframe.unmarshal(bytes(self.view[start - 7:stop + 1]))
            if isinstance(method, commands.Connection.Close):
                self.send_method(0, commands.Connection.CloseOk())
                raise AMQPClosed(method)
            if isinstance(method, commands.Channel.Close):
                self.send_method(channel, commands.Channel.CloseOk())
                raise AMQPClosed(method)
            return channel, method

    # ---- bytes out -------------------------------------------------------

    def send(self, data) -> None:
        """Write ``data`` (bytes-like) completely; blocks while the socket is full."""
        self.sock.sendall(data)

    def send_method(self, channel: int, method) -> None:
        self.sock.sendall(pframe.marshal(method, channel))

    def rpc(self, channel: int, method, reply_type):
        """Send ``method`` on ``channel`` and return the next method, which
        must be a ``reply_type`` (else ValueError)."""
        self.send_method(channel, method)
        _, reply = self.read_method()
        if not isinstance(reply, reply_type):
            raise ValueError(f"expected {reply_type.__name__}, got {type(reply).__name__}")
        return reply

    # ---- handshake and small commands --------------------------------------

    def _handshake(self, user: str, password: str, vhost: str) -> None:
        self.send(pframe.marshal(pheader.ProtocolHeader(), 0))
        _, start = self.read_method()
        if not isinstance(start, commands.Connection.Start):
            raise ValueError(f"expected connection.start, got {type(start).__name__}")
        tune = self.rpc(0, commands.Connection.StartOk(
            client_properties=CLIENT_PROPERTIES, mechanism="PLAIN", response=f"\0{user}\0{password}",
            locale="en_US"), commands.Connection.Tune)
        if tune.frame_max:
            self.frame_max = min(self.frame_max, tune.frame_max)
        self.send_method(0, commands.Connection.TuneOk(channel_max=tune.channel_max,
                                                       frame_max=self.frame_max, heartbeat=0))
        self.rpc(0, commands.Connection.Open(virtual_host=vhost), commands.Connection.OpenOk)

    def open_channel(self, channel: int = 1) -> None:
        self.rpc(channel, commands.Channel.Open(), commands.Channel.OpenOk)

    def queue_declare(self, channel: int, queue: str, durable: bool = True, passive: bool = False) -> int:
        """queue.declare; returns the ready message count from declare-ok."""
        ok = self.rpc(channel, commands.Queue.Declare(queue=queue, durable=durable, passive=passive),
                      commands.Queue.DeclareOk)
        return ok.message_count

    def close(self) -> None:
        """connection.close + wait for close-ok (best effort), then the socket."""
        try:
            self.send_method(0, commands.Connection.Close(reply_code=200, reply_text="bye", class_id=0, method_id=0))
            while True:   # skip deliveries still in flight; close-ok is class 10 method 51
                ftype, _, start, _ = self.next_frame()
                if ftype == 1 and self.buf[start:start + 4] == b"\x00\x0a\x00\x33":
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            self.sock.close()
