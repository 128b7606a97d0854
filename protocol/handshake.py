"""The connection handshake state machine (AMQP 0-9-1 spec §2.2.4 and
§4.2.2): protocol header -> start/start-ok -> tune/tune-ok -> open/open-ok.
Bytes and pamqp methods only; authentication and vhost checks are callbacks."""

from __future__ import annotations

from collections.abc import Callable

from pamqp import commands

from protocol import reply_codes
from protocol.constants import FRAME_MIN_SIZE, PROTOCOL_HEADER
from protocol.errors import AMQPError, connection_error
from protocol.methods import Method, encode_method
from protocol.sasl import EXTERNAL, offered_mechanisms, parse_response

AWAIT_PROTOCOL_HEADER = "awaiting protocol header"
AWAIT_START_OK = "awaiting connection.start-ok"
AWAIT_TUNE_OK = "awaiting connection.tune-ok"
AWAIT_OPEN = "awaiting connection.open"
OPEN = "open"


class BadProtocolHeader(Exception):
    """The peer did not send ``AMQP 0 0 9 1``; answer with
    ``REPLY_HEADER`` and close the socket (spec §4.2.2)."""

    REPLY_HEADER = PROTOCOL_HEADER


def looks_like_tls(head: bytes) -> bool:
    """True when the first bytes of a connection are a TLS handshake record
    (content type 22, version major 3: RFC 8446 §5.1), i.e. an amqps client
    on the plain port."""
    return head[:1] == b"\x16" and head[1:2] in (b"", b"\x03")


class HandshakeRefused(Exception):
    """RabbitMQ closes the socket without a frame (unknown SASL mechanism);
    the argument says why, for the log."""


class Handshake:
    """Drives one connection from its first byte to connection.open-ok.

    ``authenticate(username, password) -> bool`` and ``open_vhost(name)``
    (raises AMQPError: 530 NOT_ALLOWED for a vhost that does not exist or
    that the user may not open, or a connection limit) are supplied by the
    broker; so are, on a TLS connection with a verified client certificate,
    its common name ``certificate_user`` and
    ``authenticate_external(username) -> bool`` for SASL EXTERNAL (offered
    only then). The tune proposal is ``channel_max`` (channels), ``frame_max``
    (bytes) and ``heartbeat`` (seconds); after tune-ok the negotiated values
    are in the attributes of the same names. Errors: a failed login is 403
    ACCESS_REFUSED when the client announced the
    ``authentication_failure_close`` capability, else HandshakeRefused (the
    socket is closed without a frame, as RabbitMQ does:
    rabbitmq.com/auth-notification.html); 530 NOT_ALLOWED for a frame_max
    outside [4096, proposal], 503 COMMAND_INVALID for a method out of
    order; all are connection errors.
    """

    def __init__(self, server_properties: dict, channel_max: int, frame_max: int, heartbeat: int,
                 authenticate: Callable[[str, str], bool], open_vhost: Callable[[str], None],
                 certificate_user: str | None = None,
                 authenticate_external: Callable[[str], bool] | None = None):
        self.state = AWAIT_PROTOCOL_HEADER
        self.server_properties = server_properties
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = heartbeat
        self._authenticate = authenticate
        self._open_vhost = open_vhost
        self.username = ""
        self.vhost = ""
        self.client_properties: dict = {}
        self.mechanism = ""
        self.mechanisms = offered_mechanisms(certificate_user if authenticate_external is not None else None)
        self._certificate_user = certificate_user
        self._authenticate_external = authenticate_external

    def on_protocol_header(self, data: bytes) -> bytes:
        """Check the 8-byte protocol header; return the connection.start frame.
        Raises BadProtocolHeader."""
        if data != PROTOCOL_HEADER:
            raise BadProtocolHeader(data)
        self.state = AWAIT_START_OK
        start = commands.Connection.Start(
            version_major=0, version_minor=9, server_properties=self.server_properties,
            mechanisms=" ".join(self.mechanisms), locales="en_US")
        return encode_method(0, start)

    def on_method(self, method: Method) -> bytes:
        """Advance on a connection-class method from channel 0; returns the
        frames to send (possibly empty)."""
        handler = {
            AWAIT_START_OK: (commands.Connection.StartOk, self._on_start_ok),
            AWAIT_TUNE_OK: (commands.Connection.TuneOk, self._on_tune_ok),
            AWAIT_OPEN: (commands.Connection.Open, self._on_open),
        }.get(self.state)
        if handler is None or not isinstance(method, handler[0]):
            raise self._error(reply_codes.COMMAND_INVALID, f"unexpected {method.name} while {self.state}",
                              method)
        return handler[1](method)

    def _on_start_ok(self, method: commands.Connection.StartOk) -> bytes:
        self.client_properties = method.client_properties or {}
        self.mechanism = method.mechanism
        if method.mechanism not in self.mechanisms:
            raise HandshakeRefused(f"unsupported authentication mechanism '{method.mechanism}'")
        if method.mechanism == EXTERNAL:  # the TLS layer verified the certificate: no password
            credentials = (self._certificate_user, None)
            accepted = self._authenticate_external(self._certificate_user)
        else:
            credentials = parse_response(method.mechanism, method.response or b"")
            accepted = credentials is not None and self._authenticate(*credentials)
        if not accepted:
            capabilities = self.client_properties.get("capabilities") or {}
            if not capabilities.get("authentication_failure_close"):
                raise HandshakeRefused(f"login refused using authentication mechanism {method.mechanism}")
            raise connection_error(
                reply_codes.ACCESS_REFUSED,
                f"Login was refused using authentication mechanism {method.mechanism}. "
                "For details see the broker logfile.")
        self.username = credentials[0]
        self.state = AWAIT_TUNE_OK
        tune = commands.Connection.Tune(channel_max=self.channel_max, frame_max=self.frame_max,
                                        heartbeat=self.heartbeat)
        return encode_method(0, tune)

    def _on_tune_ok(self, method: commands.Connection.TuneOk) -> bytes:
        frame_max = method.frame_max or self.frame_max
        if frame_max < FRAME_MIN_SIZE:
            raise self._error(reply_codes.NOT_ALLOWED,
                              f"frame_max={frame_max} < {FRAME_MIN_SIZE} min size", method)
        if frame_max > self.frame_max:
            raise self._error(reply_codes.NOT_ALLOWED,
                              f"frame_max={frame_max} > {self.frame_max} max size", method)
        channel_max = method.channel_max
        if channel_max > self.channel_max:
            raise self._error(reply_codes.NOT_ALLOWED, f"negotiated channel_max = {channel_max} is higher than "
                              f"the maximum allowed value ({self.channel_max})", method)
        if channel_max == 0:  # RabbitMQ refuses 0; taking it as "the server's limit" is kinder
            channel_max = self.channel_max
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = method.heartbeat
        self.state = AWAIT_OPEN
        return b""

    def _on_open(self, method: commands.Connection.Open) -> bytes:
        try:
            self._open_vhost(method.virtual_host)
        except AMQPError as error:
            raise error.for_method(method.index >> 16, method.index & 0xFFFF) from None
        self.vhost = method.virtual_host
        self.state = OPEN
        return encode_method(0, commands.Connection.OpenOk())

    @staticmethod
    def _error(code: int, text: str, method: Method) -> AMQPError:
        return connection_error(code, text).for_method(method.index >> 16, method.index & 0xFFFF)
