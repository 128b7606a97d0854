"""Text and JSON rendering of query results (for ``leveret messages``)."""

from __future__ import annotations

import base64
import datetime
import json

from storage.mirror.schema import PROPERTY_COLUMNS

TABLE_COLUMNS = ("id", "published_at", "exchange", "routing_key", "message_id", "state",
                 "body_size")
_PROPERTY_LABELS = [c for c in PROPERTY_COLUMNS if c != "headers"]


def iso(ms: int | None) -> str | None:
    """ISO-8601 UTC text with milliseconds (``2026-05-09T07:35:25.123Z``)
    for ms since the epoch; None stays None."""
    if ms is None:
        return None
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _cell(column: str, value) -> str:
    if value is None:
        return ""
    if column == "published_at":
        return iso(value)
    return str(value)


def format_table(rows: list[dict]) -> str:
    """A fixed-width table of ``TABLE_COLUMNS`` (published_at as ISO text),
    one line per row, or ``(no messages)``."""
    if not rows:
        return "(no messages)"
    cells = [[_cell(c, r.get(c)) for c in TABLE_COLUMNS] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(TABLE_COLUMNS)]
    right = {"id", "body_size"}

    def fmt(values):
        return "  ".join(v.rjust(w) if c in right else v.ljust(w)
                         for c, v, w in zip(TABLE_COLUMNS, values, widths)).rstrip()

    return "\n".join([fmt(TABLE_COLUMNS), fmt(["-" * w for w in widths]), *map(fmt, cells)])


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


def format_message(message: dict, body_preview: int = 200) -> str:
    """Human-readable text for ``query.show``: routing, properties,
    body (first ``body_preview`` bytes), then the event timeline."""
    m = message
    lines = [f"message {m['id']}  state {m['state']}",
             f"  published at   {iso(m['published_at'])}",
             f"  vhost          {m['vhost']}",
             f"  exchange       {m['exchange'] or '(default)'}",
             f"  routing key    {m['routing_key']}"]
    if m.get("finished_at") is not None:
        lines.append(f"  finished at    {iso(m['finished_at'])}")
    lines.append("properties")
    for column in _PROPERTY_LABELS:
        if m.get(column) is not None:
            lines.append(f"  {column:<15}{m[column]}")
    if m.get("headers") is not None:
        lines.append(f"  {'headers':<15}{json.dumps(m['headers'], ensure_ascii=False)}")
    body = m.get("body")
    if body is None:
        note = "not stored" if m["body_size"] else "empty"
        lines.append(f"body ({m['body_size']} bytes, {note})")
    else:
        shown = body[:body_preview]
        more = " ..." if len(body) > body_preview else ""
        lines.append(f"body ({m['body_size']} bytes)")
        lines.append(f"  {shown!r}{more}")
    lines.append("timeline")
    for e in m.get("events", []):
        lines.append(f"  {iso(e['at'])}  {e['event']:<13} {_describe(e)}")
    return "\n".join(lines)
