"""SASL responses of connection.start-ok: PLAIN (RFC 4616) and AMQPLAIN
(RabbitMQ's field-table mechanism, rabbitmq.com/access-control.html)."""

from __future__ import annotations

import struct

from pamqp import decode

MECHANISMS = ("PLAIN", "AMQPLAIN")


def parse_response(mechanism: str, response: bytes | str) -> tuple[str, str] | None:
    """Return ``(username, password)`` from a start-ok response, or None when
    the mechanism is unsupported or the response malformed."""
    raw = response.encode("utf-8", "surrogateescape") if isinstance(response, str) else bytes(response)
    if mechanism == "PLAIN":
        parts = raw.split(b"\x00")
        if len(parts) != 3:
            return None
        return _text(parts[1]), _text(parts[2])
    if mechanism == "AMQPLAIN":
        try:
            _, table = decode.field_table(struct.pack(">I", len(raw)) + raw)
        except Exception:
            return None
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if login is None or password is None:
            return None
        return _text(login), _text(password)
    return None


def _text(value: bytes | str) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")
