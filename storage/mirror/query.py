"""Read-only queries on the message database (``leveret messages``).

The file is opened with the stdlib ``sqlite3`` as ``file:<path>?mode=ro``,
so queries never write and work while the broker runs (journal_mode=WAL:
readers do not block the writer). Times are ms since the Unix epoch.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
from pathlib import Path
from typing import Any

from storage.mirror.schema import EVENT_COLUMNS, MESSAGE_COLUMNS

#: columns ``find`` returns: every message column but the body, and
#: ``queue``: the queues the message was routed to, comma-separated (None
#: for an unrouted message): ``messages.queue`` when it went to one, else
#: its rows of ``message_queues``
FIND_COLUMNS = tuple(c for c in MESSAGE_COLUMNS if c != "body") + ("queue",)
_QUEUES_SQL = ("coalesce(messages.queue, (SELECT group_concat(queue, ',') FROM message_queues "
               "WHERE message = messages.id))")
#: ``count`` stops counting past this many messages (a count of every row of
#: a big database costs seconds; "more than 100000" says enough)
COUNT_CAP = 100_000
_SELECT = ", ".join(c if c != "queue" else f"{_QUEUES_SQL} AS queue" for c in FIND_COLUMNS)


class MirrorNotFound(FileNotFoundError):
    """There is no message database at the given path."""


def connect_ro(db_path: Path | str) -> sqlite3.Connection:
    """A read-only connection to the database at ``db_path``. Raises
    MirrorNotFound when the file does not exist, sqlite3.Error when it is
    not a database."""
    path = Path(db_path)
    if not path.is_file():
        raise MirrorNotFound(f"no message database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def to_ms(value: Any) -> int:
    """Milliseconds since the epoch from an int/float (already ms), a
    datetime (naive = UTC), or a string: digits (ms) or ISO-8601
    (``2026-05-09``, ``2026-05-09T07:35:25.123Z``, ``...+02:00``; naive =
    UTC). Raises ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO-8601 time or ms since the epoch: {value!r}") from None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp() * 1000)
    raise ValueError(f"not a time: {value!r}")


def _json_path(key: str) -> str:
    if '"' in key:
        raise ValueError(f"header names with a double quote cannot be queried: {key!r}")
    return f'$."{key}"'


def _message_dict(columns, row) -> dict:
    d = dict(zip(columns, row))
    if d.get("headers") is not None:
        d["headers"] = json.loads(d["headers"])
    return d


def _where(vhost: str | None = None, queue: str | None = None, exchange: str | None = None,
           routing_key: str | None = None, message_id: str | None = None,
           correlation_id: str | None = None, headers: dict | None = None, state: str | None = None,
           since: Any = None, until: Any = None) -> tuple[str, list]:
    """The ``WHERE`` clause (empty when no filter) and its parameters for
    ``find``'s filters."""
    where, params = [], []
    for column, value in (("vhost", vhost), ("exchange", exchange), ("routing_key", routing_key),
                          ("message_id", message_id), ("correlation_id", correlation_id),
                          ("state", state)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    since_ms = None if since is None else to_ms(since)
    until_ms = None if until is None else to_ms(until)
    if queue is not None:
        # schema 2: the one queue in messages.queue, several in message_queues
        # (which has published_at, so the time range bounds that side too)
        sub, sub_params = "SELECT message FROM message_queues WHERE queue = ?", [queue]
        for op, bound in ((">=", since_ms), ("<", until_ms)):
            if bound is not None:
                sub += f" AND published_at {op} ?"
                sub_params.append(bound)
        where.append(f"(queue = ? OR id IN ({sub}))")
        params += [queue, *sub_params]
    for key, value in (headers or {}).items():
        path = _json_path(str(key))
        if isinstance(value, str):
            # instr first: a cheap test that skips the JSON parse of most rows;
            # sound because the stored JSON is compact and unescaped for such
            # values (the value, or its JSON text, appears verbatim)
            if not any(c in value for c in '"\\') and value.isprintable():
                where.append("instr(headers, ?) > 0")
                params.append(value)
            where.append("(headers ->> ? = ? OR headers -> ? = ?)")
            params += [path, value, path, value]
        else:
            where.append("headers -> ? = json(?)")
            params += [path, json.dumps(value)]
    if since_ms is not None:
        where.append("published_at >= ?")
        params.append(since_ms)
    if until_ms is not None:
        where.append("published_at < ?")
        params.append(until_ms)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def find(db_path: Path | str, limit: int | None = 100, **filters: Any) -> list[dict]:
    """Messages matching every given filter, newest (highest id) first.

    Filters (keyword arguments, None: any): ``vhost``, ``exchange``,
    ``routing_key``, ``message_id``, ``correlation_id``, ``state``: equal
    to. ``queue``: routed to that queue (any event in it). ``headers``:
    {name: value}; a str value matches a header whose value is that string
    or whose JSON text is it (``"42"`` matches 42 and "42", ``"true"``
    matches true); another value matches a header equal to it as JSON
    (``json_extract``). ``since`` / ``until``: published_at >= since and <
    until (see ``to_ms`` for the accepted forms). ``limit``: at most that
    many rows (None: all).

    Returns one dict per message with the ``FIND_COLUMNS`` (no body);
    ``headers`` is decoded from JSON (dict or None). Raises MirrorNotFound,
    ValueError for a bad time or header name, sqlite3.Error."""
    where, params = _where(**filters)
    sql = f"SELECT {_SELECT} FROM messages{where} ORDER BY id DESC"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    conn = connect_ro(db_path)
    try:
        return [_message_dict(FIND_COLUMNS, row) for row in conn.execute(sql, params)]
    finally:
        conn.close()


def count(db_path: Path | str, cap: int = COUNT_CAP, **filters: Any) -> int:
    """How many messages match ``filters`` (those of ``find``), counted up
    to ``cap + 1``: a result above ``cap`` means "more than ``cap``". Tells
    what a ``limit`` left out. Raises as ``find``."""
    where, params = _where(**filters)
    conn = connect_ro(db_path)
    try:
        return conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM messages{where} LIMIT ?)",
                            [*params, cap + 1]).fetchone()[0]
    finally:
        conn.close()


def lookup(db_path: Path | str, key: str) -> list[int]:
    """The ids of the messages ``key`` names, newest first: the message
    with that internal id when ``key`` is digits and there is one, else
    those whose message-id or correlation-id property is ``key``. Raises
    MirrorNotFound, sqlite3.Error."""
    conn = connect_ro(db_path)
    try:
        if key.isdigit() and conn.execute("SELECT 1 FROM messages WHERE id = ?", (int(key),)).fetchone():
            return [int(key)]
        return [row[0] for row in conn.execute(
            "SELECT id FROM messages WHERE message_id = ? UNION "
            "SELECT id FROM messages WHERE correlation_id = ? ORDER BY id DESC", (key, key))]
    finally:
        conn.close()


def show(db_path: Path | str, id: int) -> dict | None:
    """The message with internal id ``id``: every ``messages`` column
    (``body`` as bytes or None, ``headers`` decoded from JSON) plus
    ``events``: its timeline as a list of dicts (id, queue, event, at,
    consumer_tag, delivery_count) in WAL order, which is time order.
    Returns None when there is no such message. Raises MirrorNotFound,
    sqlite3.Error."""
    conn = connect_ro(db_path)
    try:
        row = conn.execute(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WHERE id = ?",
                           (int(id),)).fetchone()
        if row is None:
            return None
        message = _message_dict(MESSAGE_COLUMNS, row)
        cols = [c for c in EVENT_COLUMNS if c != "message"]
        message["events"] = [dict(zip(cols, r)) for r in conn.execute(
            f"SELECT {', '.join(cols)} FROM message_events WHERE message = ? ORDER BY id",
            (int(id),))]
        return message
    finally:
        conn.close()
