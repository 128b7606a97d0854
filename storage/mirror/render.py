"""Text and JSON rendering of query results (for ``leveret messages``):
the text of a table cell (the command line lays the table out), one
message with its body and timeline, JSON."""

from __future__ import annotations

import base64
import datetime
import json

from storage.mirror.schema import PROPERTY_COLUMNS

#: the columns ``leveret messages find`` shows unless ``--columns`` says
DEFAULT_COLUMNS = ("id", "published_at", "exchange", "routing_key", "queue", "message_id", "state",
                   "body_size")
#: columns holding numbers (right-aligned in a table)
NUMERIC_COLUMNS = frozenset(("id", "queue_count", "timestamp", "priority", "delivery_mode", "body_size"))
_PROPERTY_LABELS = [c for c in PROPERTY_COLUMNS if c != "headers"]
#: bytes per line of a hex dump
HEX_WIDTH = 16


def iso(ms: int | None) -> str | None:
    """ISO-8601 UTC text with milliseconds (``2026-05-09T07:35:25.123Z``)
    for ms since the epoch; None stays None."""
    if ms is None:
        return None
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def cell(column: str, value) -> str:
    """The text of one value of a ``find`` row in a table: times as ISO
    text, the default exchange (empty name) as ``(default)``, headers as
    JSON, a missing value as an empty cell."""
    if column == "exchange" and value == "":
        return "(default)"
    if value is None:
        return ""
    if column in ("published_at", "finished_at"):
        return iso(value)
    if column == "headers":
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def jsonable(message: dict) -> dict:
    """A copy fit for ``json.dumps``: ``published_at_iso`` /
    ``finished_at_iso`` / each event's ``at_iso`` added; a body becomes
    ``body`` text plus ``body_encoding`` ``utf-8`` or ``base64``."""
    out = dict(message)
    if "published_at" in out:
        out["published_at_iso"] = iso(out["published_at"])
    if "finished_at" in out:
        out["finished_at_iso"] = iso(out["finished_at"])
    if "body" in out:
        body = out["body"]
        if body is None:
            out["body_encoding"] = None
        else:
            try:
                out["body"], out["body_encoding"] = body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                out["body"] = base64.b64encode(body).decode("ascii")
                out["body_encoding"] = "base64"
    if "events" in out:
        out["events"] = [{**e, "at_iso": iso(e["at"])} for e in out["events"]]
    return out


def to_json(value) -> str:
    """``value`` (a message dict or a list of them) as indented JSON."""
    if isinstance(value, list):
        value = [jsonable(v) for v in value]
    else:
        value = jsonable(value)
    return json.dumps(value, indent=2, ensure_ascii=False)


def _describe(event: dict) -> str:
    name, queue = event["event"], event["queue"]
    if name == "routed":
        return f"routed to queue {queue!r}"
    if name == "delivered":
        who = (f"consumer {event['consumer_tag']!r}" if event.get("consumer_tag")
               else "basic.get")
        return f"delivered from {queue!r} to {who} (delivery {event.get('delivery_count')})"
    if name == "requeued":
        return f"requeued in {queue!r}"
    return f"{name} in {queue!r}"


def hex_dump(data: bytes, width: int = HEX_WIDTH) -> list[str]:
    """``data`` as ``xxd``-style lines: offset, ``width`` bytes in hex,
    the same bytes as ASCII (``.`` for anything not printable)."""
    lines = []
    for offset in range(0, len(data), width):
        chunk = data[offset:offset + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<{width * 3 - 1}}  {text}")
    return lines


def body_lines(body: bytes, preview: int) -> list[str]:
    """The first ``preview`` bytes of ``body``: as text when they decode
    as UTF-8 (a character cut at the end of the preview is dropped), else
    as a hex dump; ``...`` when the body is longer."""
    shown = body[:preview]
    try:
        lines = shown.decode("utf-8").splitlines() or [""]
    except UnicodeDecodeError as exc:
        if len(body) > preview and exc.start >= len(shown) - 3 and exc.reason == "unexpected end of data":
            lines = shown[:exc.start].decode("utf-8").splitlines() or [""]
        else:
            lines = hex_dump(shown)
    if len(body) > preview:
        lines.append("...")
    return lines


def format_message(message: dict, body_preview: int = 1024) -> str:
    """Human-readable text for ``query.show``: routing, properties,
    body (first ``body_preview`` bytes, see ``body_lines``), then the event
    timeline. Labels are aligned on the longest one."""
    m = message
    fields = [("published at", iso(m["published_at"])), ("vhost", m["vhost"]),
              ("exchange", m["exchange"] or "(default)"), ("routing key", m["routing_key"])]
    if m.get("finished_at") is not None:
        fields.append(("finished at", iso(m["finished_at"])))
    properties = [(c, m[c]) for c in _PROPERTY_LABELS if m.get(c) is not None]
    if m.get("headers") is not None:
        properties.append(("headers", json.dumps(m["headers"], ensure_ascii=False)))
    width = max(len(label) for label, _value in fields + properties)
    lines = [f"message {m['id']}  state {m['state']}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in fields]
    lines.append("properties")
    lines += [f"  {label:<{width}}  {value}" for label, value in properties]
    body = m.get("body")
    if body is None:
        note = "not stored" if m["body_size"] else "empty"
        lines.append(f"body ({m['body_size']} bytes, {note})")
    else:
        lines.append(f"body ({m['body_size']} bytes)")
        lines += [f"  {line}" for line in body_lines(body, body_preview)]
    lines.append("timeline")
    for e in m.get("events", []):
        lines.append(f"  {iso(e['at'])}  {e['event']:<13} {_describe(e)}")
    return "\n".join(lines)
