"""Dead-lettering (rabbitmq.com/dlx.html): a message rejected without
requeue, expired, dropped by a length limit or past its delivery limit is
republished to the queue's ``x-dead-letter-exchange`` as a new message
carrying the ``x-death`` header, built exactly as RabbitMQ 3.10's
rabbit_dead_letter.erl does (make_msg, update_x_death_header,
detect_cycles).

Only the pure parts live here (``x_death_headers``, ``is_cycle``,
``dead_letter_properties``, ``copy_message``): they take and return plain
values. The copy is routed by the vhost's publish pipeline
(broker/vhost/publish.py), which the queue reaches through its vhost object
(broker/queues/lifecycle.py); the queues layer does not route.

It also holds the one parser of CC/BCC routing-key headers
(``routing_header_keys``), used at publish too
(broker/vhost/sender_selected.py): it lives in this lower layer because
dead-lettering must read a copy's CC keys again for x-death.
"""

from __future__ import annotations

import datetime
import time

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.queues.dead_letter_bytes import first_death_header
from broker.model.field_values import text
from broker.model.message import Message
from protocol.field_types import Long

#: reasons as they appear in x-death (dlx.html "Dead-Lettered Messages")
REJECTED, EXPIRED, MAXLEN, DELIVERY_LIMIT = "rejected", "expired", "maxlen", "delivery_limit"


def routing_header_keys(value) -> list[str] | None:
    """The routing keys of one CC or BCC header value
    (rabbit_basic:header_routes, rabbitmq.com/sender-selected.html): the
    long-string elements of an array, in order (bytes decoded as UTF-8;
    other elements, and strings that are not UTF-8, are skipped, as
    RabbitMQ keeps only ``longstr`` elements). None when ``value`` is not an
    array.

    The two callers treat None differently, and so does RabbitMQ: at
    publish a CC/BCC header that is not an array is an error (406,
    broker/vhost/sender_selected.py); a dead-lettered copy's header passed
    that check when it was published (RabbitMQ does not parse it again: it
    keeps the keys found at publish), so ``header_routes`` reads None as no
    keys and never fails a dead-lettering."""
    if not isinstance(value, list):
        return None
    keys = []
    for item in value:
        if isinstance(item, (bytes, bytearray)):
            try:
                item = bytes(item).decode("utf-8")
            except UnicodeDecodeError:
                continue
        if isinstance(item, str):
            keys.append(item)
    return keys


def header_routes(headers: dict | None) -> list[str]:
    """The CC then BCC routing keys of a headers table
    (``routing_header_keys``; a header that is not an array gives none)."""
    keys: list[str] = []
    for name in ("CC", "BCC"):
        keys.extend(routing_header_keys((headers or {}).get(name)) or ())
    return keys


def x_death_headers(headers: dict | None, reason: str, queue: str, exchange: str, routing_keys: list[str],
                    expiration: str | None, now: float | None = None) -> dict:
    """The headers of the dead-lettered copy (rabbit_dead_letter:update_x_death_header).

    The first death adds ``x-death`` = [{count: 1, reason, queue, time,
    exchange, routing-keys[, original-expiration]}] and the
    ``x-first-death-reason/queue/exchange`` headers. A later death for the
    same queue and reason increments that entry's ``count`` (its other
    fields stay as first recorded) and moves it to the front; any other
    death is prepended with count 1. ``routing_keys``: the message's
    publish routing key followed by its CC/BCC keys; ``now``: Unix seconds
    (the ``time`` field is a timestamp in whole seconds).
    """
    headers = dict(headers or {})
    when = datetime.datetime.fromtimestamp(int(time.time() if now is None else now), datetime.timezone.utc)
    info = {"reason": reason, "queue": queue, "time": when, "exchange": exchange,
            "routing-keys": list(routing_keys)}
    if expiration is not None:
        info["original-expiration"] = expiration
    deaths = headers.get("x-death")
    if not isinstance(deaths, list):
        headers["x-death"] = [{"count": Long(1), **info}]
        for key, value in (("x-first-death-reason", reason), ("x-first-death-queue", queue),
                           ("x-first-death-exchange", exchange)):
            headers.setdefault(key, value)
        return headers
    grouped = _group_by_queue_and_reason([d for d in deaths if isinstance(d, dict)])
    matches = [d for d in grouped if text(d.get("queue")) == queue and text(d.get("reason")) == reason]
    others = [d for d in grouped if d not in matches]
    if matches:
        entry = dict(matches[0])
        count = entry.get("count")
        entry["count"] = count + 1 if isinstance(count, int) else 1
    else:
        entry = {"count": 1, **info}
    headers["x-death"] = [dict(sorted(entry.items()))] + others
    return _long_counts(headers)


def _long_counts(headers: dict) -> dict:
    """``count`` as RabbitMQ encodes it: a 64-bit ``l`` (protocol.field_types)."""
    for death in headers["x-death"]:
        if isinstance(death, dict) and isinstance(death.get("count"), int):
            death["count"] = Long(death["count"])
    return headers


def _group_by_queue_and_reason(deaths: list[dict]) -> list[dict]:
    """Merge entries of the same (queue, reason), summing counts
    (rabbit_dead_letter:group_by_queue_and_reason; order of first sight)."""
    out: dict = {}
    for death in deaths:
        key = (text(death.get("queue")), text(death.get("reason")))
        if key in out:
            merged = dict(out[key])
            merged["count"] = (merged.get("count") or 1) + (death.get("count") or 1)
            out[key] = merged
        else:
            out[key] = dict(death) if "count" in death else {"count": 1, **death}
    return list(out.values())


def is_cycle(queue: str, deaths: list) -> bool:
    """A copy headed for ``queue`` is cycling when ``queue`` already appears
    in its x-death and no death up to that entry was a rejection
    (rabbit_dead_letter:is_cycle; dlx.html "Routing Dead-Lettered Messages":
    a fully automatic cycle is dropped)."""
    seen = []
    for death in deaths:
        seen.append(death)
        if isinstance(death, dict) and text(death.get("queue")) == queue:
            return all(isinstance(d, dict) and text(d.get("reason")) != REJECTED for d in seen)
    return False


def dead_letter_properties(properties: Basic.Properties, reason: str, queue: str, exchange: str,
                           routing_key: str, dlx_routing_key: str | None,
                           now: float | None = None, bcc: list | None = None) -> tuple[Basic.Properties, list[str]]:
    """The properties of the dead-lettered copy and the routing keys it is
    republished with (rabbit_dead_letter:make_msg): the expiration property
    is removed (kept as ``original-expiration`` in x-death); with an
    ``x-dead-letter-routing-key`` the copy goes with that one key and loses
    its CC header, otherwise with its original routing keys (publish key,
    CC, then ``bcc``: the BCC keys removed at publish, which x-death does
    not list)."""
    headers = properties.headers
    routing_keys = [routing_key] + header_routes(headers)
    new_headers = x_death_headers(headers, reason, queue, exchange, routing_keys, properties.expiration, now)
    if dlx_routing_key is not None:
        new_headers.pop("CC", None)
        keys = [dlx_routing_key]
    else:
        keys = routing_keys + list(bcc or ())
    fields = {name: getattr(properties, name) for name in properties.__slots__}
    fields.update(headers=new_headers, expiration=None)
    return Basic.Properties(**fields), keys


def copy_message(message_exchange: str, message_routing_key: str, header: bytes, body: bytes,
                 reason: str, queue: str, dlx: str, dlx_routing_key: str | None,
                 bcc: list | None = None, now: float | None = None) -> tuple[Message, list[str], list]:
    """The new Message (new id, new content header bytes) to publish to
    ``dlx``, its routing keys and its x-death list (for ``is_cycle``).
    A first death is built as bytes (broker/queues/dead_letter_bytes.py), anything
    else with a pamqp round trip; ``now``: Unix seconds. Raises ValueError
    when the header is malformed."""
    when = int(time.time() if now is None else now)
    new_header = first_death_header(header, reason, queue, message_exchange, message_routing_key, when)
    if new_header is not None:
        keys = [dlx_routing_key] if dlx_routing_key is not None else [message_routing_key, *(bcc or ())]
        return Message(dlx, keys[0], new_header, body), keys, [{"queue": queue, "reason": reason}]
    content_header = ContentHeader()
    content_header.unmarshal(header)
    properties, keys = dead_letter_properties(content_header.properties, reason, queue, message_exchange,
                                              message_routing_key, dlx_routing_key, now=when, bcc=bcc)
    new_header = ContentHeader(0, len(body), properties).marshal()
    return Message(dlx, keys[0], new_header, body), keys, properties.headers["x-death"]
