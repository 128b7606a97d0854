"""Leveret's own routes on the message database and the queues:
GET ``/api/messages`` (the filters of ``leveret messages find``: vhost,
queue, exchange, routing_key, message_id, correlation_id, state, since,
until, ``header=NAME=VALUE`` repeated, limit), GET ``/api/messages/{id}``
(an id, message-id or correlation-id: the newest such message with its
timeline, as ``leveret messages show``), and GET
``/api/queues/vh/q/peek?offset=&count=``: ready messages in delivery
order without taking them (nothing recorded, no redelivered flag set, as
LavinMQ's peek). The database reads run in a thread: the event loop that
carries the AMQP traffic never waits for SQLite."""

from __future__ import annotations

import asyncio
import itertools
import json

from broker.management import http
from broker.management.auth import require
from broker.management.messages import render_body, render_properties
from broker.management.routing import MONITORING, Call, Routes
from broker.management.topology import find_queue
from broker.model.message import Message, QueuedMessage, from_cold
from broker.persistence.message_database import MirrorNotFound, db_path, find, lookup, show, to_json

#: the most messages one peek or one find returns
MAX_COUNT = 1000
_FILTERS = ("vhost", "queue", "exchange", "routing_key", "message_id", "correlation_id", "state", "since",
            "until")


def register(routes: Routes) -> None:
    routes.get("/messages", find_messages, MONITORING)
    routes.get("/messages/{id}", show_message, MONITORING)
    routes.get("/queues/{vhost}/{name}/peek", peek)


def _count(call: Call, key: str, default: int) -> int:
    value = http.integer(dict(call.query), key, default)
    if not 0 <= value <= MAX_COUNT:
        raise http.bad_request(f"{key} must be between 0 and {MAX_COUNT}")
    return value


async def _database(call: Call, function, *args, **kwargs):
    """``function(path, ...)`` of the message database in a thread; 404
    when there is none (--mirror off), 400 for a bad filter."""
    path = db_path(call.server.config.data_dir)
    try:
        return await asyncio.to_thread(function, path, *args, **kwargs)
    except MirrorNotFound as exc:
        raise http.ApiError(404, "Object Not Found", f"no message database: {exc}") from None
    except ValueError as exc:
        raise http.bad_request(str(exc)) from None


async def find_messages(call: Call):
    filters = {key: call.query[key] for key in _FILTERS if key in call.query}
    headers = {}
    for item in call.query.getall("header", []):
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise http.bad_request(f"header must be NAME=VALUE, got {item!r}")
        headers[name] = value
    rows = await _database(call, find, limit=_count(call, "limit", 100), headers=headers or None, **filters)
    return http.answer(json.loads(to_json(rows)))


async def show_message(call: Call, id: str):
    ids = await _database(call, lookup, id)
    if not ids:
        raise http.not_found()
    message = await _database(call, show, ids[0])
    if message is None:
        raise http.not_found()
    return http.answer(json.loads(to_json(message)))


def _peeked(queue, offset: int, count: int) -> list[tuple[Message, bool]]:
    """(message, redelivered) of ready messages ``offset`` .. ``offset +
    count`` in delivery order, reading stored bodies from the WAL."""
    items = list(itertools.islice(itertools.chain(queue.ready, queue.cold), offset, offset + count))
    ids = [abs(item) for item in items if type(item) is int]
    stored = iter(queue.vhost.storage.read_for_delivery(ids) if ids else ())
    result = []
    for item in items:
        if type(item) is QueuedMessage:
            result.append((item.message, item.redelivered))
        elif type(item) is int:
            exchange, routing_key, exchange_routing_key, header, body = next(stored)
            result.append((Message(exchange, routing_key, header, body, abs(item), exchange_routing_key), item < 0))
        elif type(item) is tuple:
            result.append((from_cold(item), False))
        else:
            result.append((item, False))
    return result


async def peek(call: Call, vhost: str, name: str):
    queue = find_queue(call, vhost, name)
    require(call, vhost, "read", "queue", name)
    offset = _count(call, "offset", 0)
    count = _count(call, "count", 1)
    encoding = call.query.get("encoding", "auto")
    rows = []
    for position, (message, redelivered) in enumerate(_peeked(queue, offset, count), start=offset):
        row = {"position": position, "exchange": message.exchange, "routing_key": message.routing_key,
               "redelivered": redelivered, "properties": render_properties(message),
               "payload_bytes": len(message.body or b"")}
        row.update(render_body(message.body or b"", encoding))
        rows.append(row)
    return http.answer(rows)
