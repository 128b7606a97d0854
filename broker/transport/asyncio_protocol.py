"""The asyncio side of a connection: an ``asyncio.Protocol`` that hands
bytes and flow-control events to ``broker.transport.connection.Connection``
(docs/architecture.md, "Performance principles"), and the amqps port's
first protocol, which runs the TLS handshake before handing the socket to
it."""

from __future__ import annotations

import asyncio
import logging
import ssl

from broker.transport.connection import Connection

log = logging.getLogger(__name__)

#: OpenSSL's reasons when the first bytes on the amqps port are not a TLS
#: record: a plain AMQP client (``AMQP\x00\x00\x09\x01``), an HTTP request
_NOT_TLS = ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE",
            "UNEXPECTED_RECORD", "PACKET_LENGTH_TOO_LONG", "WRONG_SSL_VERSION")


class AMQPProtocol(asyncio.Protocol):
    """One per accepted socket (per TLS session on the amqps port)."""

    __slots__ = ("server", "connection", "_early")

    def __init__(self, server):
        self.server = server
        self.connection: Connection | None = None
        #: bytes decrypted before ``connection_made`` (TLS: the client's
        #: first frames can come in the same read as its handshake's end)
        self._early = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection = Connection(self.server, transport)  # type: ignore[arg-type]
        self.server.connections.add(self.connection)
        if self._early:
            early, self._early = self._early, b""
            self.connection.data_received(early)

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        if connection is None:
            self._early += data
            return
        connection.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self.connection.pause_writing()

    def resume_writing(self) -> None:
        self.connection.resume_writing()


class TLSAcceptor(asyncio.Protocol):
    """The first protocol of a socket accepted on the amqps port: runs the
    server side of the TLS handshake (``loop.start_tls`` with ``context``,
    within ``timeout`` seconds), then gives the TLS transport to a new
    ``AMQPProtocol``.

    A handshake that fails (a plain AMQP client on this port, an untrusted
    or missing client certificate with ``--tls-verify peer``, a TLS version
    below 1.2) closes this socket only, with one log line naming the peer
    and OpenSSL's reason (RabbitMQ's TLS guide,
    rabbitmq.com/docs/troubleshooting-ssl). The handshake runs here rather
    than in ``create_server(ssl=...)`` because asyncio reports a failed
    server-side handshake nowhere.
    """

    #: handshakes in progress (a task needs a reference until it ends)
    _pending: set[asyncio.Task] = set()

    def __init__(self, server, context: ssl.SSLContext, timeout: float):
        self.server = server
        self.context = context
        self.timeout = timeout
        #: bytes read before start_tls took the socket over
        self._early = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # the ClientHello belongs to the TLS layer; uvloop starts reading
        # after connection_made whatever it did, hence also ``data_received``
        transport.pause_reading()  # type: ignore[attr-defined]
        task = asyncio.get_running_loop().create_task(self._handshake(transport))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def data_received(self, data: bytes) -> None:
        self._early += data

    async def _handshake(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername") or ("?", 0)
        local = transport.get_extra_info("sockname") or ("?", 0)
        name = f"connection {peer[0]}:{peer[1]} -> {local[0]}:{local[1]}"
        protocol = AMQPProtocol(self.server)
        starting = asyncio.get_running_loop().create_task(asyncio.get_running_loop().start_tls(
            transport, protocol, self.context, server_side=True, ssl_handshake_timeout=self.timeout))
        # ready callbacks run in order: once this task resumes, start_tls has
        # paused the socket and installed its TLS protocol, which has not
        # read anything yet; the bytes this acceptor read go to it first
        await asyncio.sleep(0)
        if self._early and transport.get_protocol() is not self:  # type: ignore[attr-defined]
            _feed(transport.get_protocol(), self._early)  # type: ignore[attr-defined]
            self._early = b""
        try:
            tls = await starting
        except (OSError, asyncio.TimeoutError) as exc:
            _log_failure(name, exc)
            transport.close()
            return
        log.debug("%s: TLS handshake done (%s, %s)", name, tls.get_extra_info("ssl_object").version(),
                  (tls.get_extra_info("cipher") or ("?",))[0])
        protocol.connection_made(tls)

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket went before the handshake began; ``_handshake`` logs it."""


def _feed(protocol: asyncio.BaseProtocol, data: bytes) -> None:
    """Give ``data`` to ``protocol`` as its transport would: through
    ``get_buffer``/``buffer_updated`` for a buffered protocol (asyncio's and
    uvloop's TLS protocols are), else ``data_received``."""
    if not hasattr(protocol, "buffer_updated"):
        protocol.data_received(data)  # type: ignore[attr-defined]
        return
    view = memoryview(data)
    while view:
        buffer = protocol.get_buffer(len(view))  # type: ignore[attr-defined]
        size = min(len(buffer), len(view))
        buffer[:size] = view[:size]
        protocol.buffer_updated(size)  # type: ignore[attr-defined]
        view = view[size:]


def _log_failure(name: str, exc: BaseException) -> None:
    """One line for a failed TLS handshake: OpenSSL's reason, and what it
    most likely means."""
    if isinstance(exc, asyncio.TimeoutError):
        log.warning("%s: TLS handshake not finished in time, closing", name)
    elif isinstance(exc, ssl.SSLError):
        hint = " (not a TLS client: plain AMQP on the amqps port?)" if exc.reason in _NOT_TLS else ""
        log.warning("%s: TLS handshake failed: %s%s", name, exc.reason or exc, hint)
    elif isinstance(exc, ConnectionError):
        log.info("%s: socket closed during the TLS handshake (%s)", name, exc)
    else:
        log.warning("%s: TLS handshake failed: %s", name, exc)
