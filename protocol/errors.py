"""The one exception type for AMQP errors (docs/architecture.md, "Errors")."""

from __future__ import annotations

from protocol import reply_codes


class AMQPError(Exception):
    """An error that the broker answers with channel.close or connection.close.

    ``reply_code`` is an AMQP reply code (spec §1.2), ``text`` the human part of
    reply-text (the code's name is prefixed when it is sent, as RabbitMQ does:
    ``"NOT_FOUND - no queue 'q' in vhost '/'"``), ``class_id``/``method_id``
    name the offending method (0, 0 when no method is at fault). Channel-level
    codes (403-406, 311-313) close the channel unless ``connection_level`` is
    forced, the others close the connection.
    """

    def __init__(self, reply_code: int, text: str, class_id: int = 0, method_id: int = 0,
                 connection_level: bool | None = None):
        super().__init__(f"{reply_codes.NAMES.get(reply_code, reply_code)} - {text}")
        self.reply_code = reply_code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id
        if connection_level is None:
            connection_level = reply_code not in reply_codes.CHANNEL_LEVEL
        self.connection_level = connection_level

    @property
    def reply_text(self) -> str:
        """The reply-text field as sent on the wire (at most 255 UTF-8 bytes)."""
        return str(self).encode()[:255].decode(errors="ignore")

    def for_method(self, class_id: int, method_id: int) -> "AMQPError":
        """Fill in the offending method's ids when the raiser did not know them."""
        if not self.class_id:
            self.class_id, self.method_id = class_id, method_id
        return self


def channel_error(reply_code: int, text: str) -> AMQPError:
    """Shorthand for a channel-level error (closes the channel only)."""
    return AMQPError(reply_code, text, connection_level=False)


def connection_error(reply_code: int, text: str) -> AMQPError:
    """Shorthand for a connection-level error (closes the connection)."""
    return AMQPError(reply_code, text, connection_level=True)
