"""Per-channel command assembly: a content-carrying method, then one content
header frame, then body frames until the header's body size is reached
(AMQP 0-9-1 spec §2.3.5.2 and §4.2.6). Any other order is 505
UNEXPECTED_FRAME, a connection error."""

from __future__ import annotations

from protocol import reply_codes
from protocol.errors import AMQPError, connection_error
from protocol.hot_methods import decode_content_header
from protocol.wire_check import check_content_header

IDLE = 0
AWAIT_HEADER = 1
AWAIT_BODY = 2


class ContentAssembler:
    """Collects one message's frames on one channel.

    ``start(method_payload)`` after a content method; then feed frames with
    ``on_header``/``on_body``, each returning ``None`` until the message is
    complete and then ``(method_payload, header_payload, body: bytes)``.
    ``max_size`` (bytes) bounds the declared body size: a larger one raises a
    channel-level AMQPError 406 PRECONDITION_FAILED, as RabbitMQ does
    (rabbitmq.com/configure.html, ``max_message_size``).
    """

    __slots__ = ("state", "method", "header", "body_size", "chunks", "received", "max_size")

    def __init__(self, max_size: int):
        self.state = IDLE
        self.max_size = max_size
        self.method = self.header = b""
        self.chunks: list[bytes] = []
        self.body_size = self.received = 0

    def start(self, method_payload: bytes) -> None:
        """Begin a message; 505 if the previous one is incomplete."""
        if self.state != IDLE:
            raise self.unexpected("method")
        self.method = method_payload
        self.state = AWAIT_HEADER

    def on_header(self, payload: bytes) -> tuple[bytes, bytes, bytes] | None:
        """Accept the content header frame's payload."""
        if self.state != AWAIT_HEADER:
            raise self.unexpected("content header")
        class_id, body_size = decode_content_header(payload)
        method = self.method
        if class_id != 60:
            raise self._error(f"expected content header for class 60, got one for class {class_id} instead")
        check_content_header(payload)
        if body_size > self.max_size:
            self.reset()
            raise AMQPError(reply_codes.PRECONDITION_FAILED,
                            f"message size {body_size} is larger than configured max size {self.max_size}",
                            method[0] << 8 | method[1], method[2] << 8 | method[3])
        if body_size == 0:
            self.reset()
            return method, payload, b""
        self.header = payload
        self.body_size = body_size
        self.received = 0
        self.state = AWAIT_BODY
        return None

    def on_body(self, payload: bytes) -> tuple[bytes, bytes, bytes] | None:
        """Accept one body frame's payload."""
        if self.state != AWAIT_BODY:
            raise self.unexpected("content body")
        self.received += len(payload)
        if self.received > self.body_size:
            raise connection_error(reply_codes.FRAME_ERROR,
                                   f"content body of {self.received} bytes exceeds declared size {self.body_size}")
        if self.received == self.body_size and not self.chunks:
            result = self.method, self.header, payload
        else:
            self.chunks.append(payload)
            if self.received < self.body_size:
                return None
            result = self.method, self.header, b"".join(self.chunks)
        self.reset()
        return result

    def reset(self) -> None:
        """Drop any partial message (channel closed or errored)."""
        self.state = IDLE
        self.method = self.header = b""
        self.chunks = []

    def unexpected(self, got: str) -> AMQPError:
        """The 505 UNEXPECTED_FRAME error for a ``got`` frame in this state."""
        expected = {IDLE: "method", AWAIT_HEADER: "content header", AWAIT_BODY: "content body"}[self.state]
        return self._error(f"expected {expected} frame, got {got} frame")

    def _error(self, text: str) -> AMQPError:
        """505 naming the pending content method, as RabbitMQ's assembler does."""
        error = connection_error(reply_codes.UNEXPECTED_FRAME, text)
        method = self.method
        if self.state != IDLE and len(method) >= 4:
            error.for_method(method[0] << 8 | method[1], method[2] << 8 | method[3])
        return error
