"""The control channel's format: one JSON object per line (UTF-8, ``\\n``
ends it), one request, one reply, in order, on one connection.

Request: ``{"command": "queues.list", "args": {...}}`` (``args`` may be
left out). Reply: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "text", "code": N}``. The codes follow HTTP's
meaning, as RabbitMQ's management API does: 400 a malformed request or bad
arguments, 403 refused, 404 no such command or object, 409 in conflict with
the current state, 500 the command failed inside the broker.
"""

from __future__ import annotations

import json

BAD_REQUEST = 400
FORBIDDEN = 403
NOT_FOUND = 404
CONFLICT = 409
INTERNAL_ERROR = 500

#: longest request or reply line, bytes (a definitions import is the large one)
MAX_LINE = 64 << 20


class ControlError(Exception):
    """A command's failure as the client sees it: ``message`` (one line)
    and ``code`` (one of the codes above). Handlers raise it for bad
    arguments or missing objects; the client raises it for an error reply."""

    def __init__(self, message: str, code: int = BAD_REQUEST):
        super().__init__(message)
        self.message = message
        self.code = code


def encode(obj: object) -> bytes:
    """One line: ``obj`` as compact JSON plus ``\\n``. Raises TypeError for a
    value JSON cannot hold."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


def request(command: str, args: dict | None = None) -> bytes:
    """The request line for ``command`` with ``args``."""
    return encode({"command": command, "args": args or {}})


def parse_request(line: bytes) -> tuple[str, dict]:
    """``(command, args)`` from a request line. Raises ControlError 400 when
    the line is not a JSON object with a string ``command`` and an object
    ``args``."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"request is not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("command"), str):
        raise ControlError('request must be an object with a string "command"')
    args = obj.get("args", {})
    if not isinstance(args, dict):
        raise ControlError('"args" must be an object')
    return obj["command"], args


def ok(result: object) -> bytes:
    """A success reply line."""
    return encode({"ok": True, "result": result})


def error(exc: ControlError) -> bytes:
    """An error reply line."""
    return encode({"ok": False, "error": exc.message, "code": exc.code})


def parse_reply(line: bytes) -> object:
    """The result of a reply line. Raises ControlError with the reply's
    message and code for an error reply, or 500 for a line that is not a
    reply."""
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ControlError(f"broker sent a reply that is not JSON: {exc}", INTERNAL_ERROR) from None
    if not isinstance(obj, dict) or "ok" not in obj:
        raise ControlError("broker sent a reply without \"ok\"", INTERNAL_ERROR)
    if obj["ok"]:
        return obj.get("result")
    raise ControlError(str(obj.get("error", "unknown error")), int(obj.get("code", INTERNAL_ERROR)))
