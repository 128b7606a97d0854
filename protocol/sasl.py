"""SASL responses of connection.start-ok: PLAIN (RFC 4616) and AMQPLAIN
(RabbitMQ's field-table mechanism, rabbitmq.com/access-control.html); and
EXTERNAL (RFC 4422 appendix A), whose user is the common name of the
client's TLS certificate (rabbitmq.com/docs/ssl, "Using Client
Certificates for Authentication")."""

from __future__ import annotations

import struct

from pamqp import decode

MECHANISMS = ("PLAIN", "AMQPLAIN")
EXTERNAL = "EXTERNAL"


def offered_mechanisms(certificate_user: str | None) -> tuple[str, ...]:
    """The mechanisms connection.start announces: EXTERNAL too when the
    connection has a verified client certificate with a common name, as
    RabbitMQ offers it only then (rabbit_auth_mechanism_ssl should_offer)."""
    return MECHANISMS if certificate_user is None else (*MECHANISMS, EXTERNAL)


def certificate_user(peercert: dict | None) -> str | None:
    """The common name (CN) of the subject of a verified peer certificate,
    as ``ssl.SSLSocket.getpeercert()`` gives it (``{"subject": ((("commonName",
    "alice"),), ...)}``); None without a certificate or a CN. With several
    CNs, the last (most specific) one, as RabbitMQ's ``ssl_cert_login_from =
    common_name`` takes it."""
    names = [value for rdn in (peercert or {}).get("subject", ()) for key, value in rdn
             if key == "commonName"]
    return names[-1] if names else None


def parse_response(mechanism: str, response: bytes | str) -> tuple[str, str] | None:
    """Return ``(username, password)`` from a start-ok response, or None when
    the mechanism is unsupported or the response malformed (truncated,
    missing LOGIN/PASSWORD, or non-string values)."""
    raw = response.encode("utf-8", "surrogateescape") if isinstance(response, str) else bytes(response)
    if mechanism == "PLAIN":
        parts = raw.split(b"\x00")
        if len(parts) != 3:
            return None
        return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
    if mechanism == "AMQPLAIN":
        table = _amqplain_table(raw)
        if table is None:
            return None
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if not isinstance(login, bytes) or not isinstance(password, bytes):
            return None
        return login.decode("utf-8", "replace"), password.decode("utf-8", "replace")
    return None


def _amqplain_table(raw: bytes) -> dict | None:
    """The AMQPLAIN field table (sent without its 4-byte length prefix).
    Long strings ('S') are bounds-checked here because pamqp's decoder does
    not check a declared length against the bytes present; other value types
    go through pamqp."""
    table: dict = {}
    offset, end = 0, len(raw)
    try:
        while offset < end:
            key_len = raw[offset]
            key = raw[offset + 1:offset + 1 + key_len]
            offset += 1 + key_len
            if len(key) != key_len or offset >= end:
                return None
            kind = raw[offset:offset + 1]
            offset += 1
            if kind == b"S":
                (size,) = struct.unpack_from(">I", raw, offset)
                value = raw[offset + 4:offset + 4 + size]
                if len(value) != size:
                    return None
                offset += 4 + size
            else:
                consumed, value = decode.embedded_value(kind + raw[offset:])
                offset += consumed - 1
            table[key.decode("utf-8", "replace")] = value
    except (IndexError, struct.error, ValueError, TypeError):
        return None
    return table if offset == end else None
