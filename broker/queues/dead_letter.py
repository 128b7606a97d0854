"""Dead-lettering (rabbitmq.com/dlx.html): a message rejected without
requeue, expired, dropped by a length limit or past its delivery limit is
republished to the queue's ``x-dead-letter-exchange`` as a new message
carrying the ``x-death`` header, built exactly as RabbitMQ 3.10's
rabbit_dead_letter.erl does (make_msg, update_x_death_header,
detect_cycles).

The pure parts (``x_death_headers``, ``is_cycle``, ``dead_letter_properties``)
take and return plain values; ``publish`` routes the copy in a vhost.
"""

from __future__ import annotations

import datetime
import logging
import time

from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.vhost import deduplication
from broker.queues import limits as queue_limits
from broker.vhost import sender_selected
from broker.queues.dead_letter_bytes import first_death_header
from broker.vhost.delayed_copies import hold_copies
from broker.model.message import Message
from broker.vhost.publish import persist
from protocol.field_types import Long

log = logging.getLogger(__name__)

#: reasons as they appear in x-death (dlx.html "Dead-Lettered Messages")
REJECTED, EXPIRED, MAXLEN, DELIVERY_LIMIT = "rejected", "expired", "maxlen", "delivery_limit"


def header_routes(headers: dict | None) -> list[str]:
    """The CC then BCC routing keys of a headers table (rabbit_basic:header_routes)."""
    keys: list[str] = []
    for name in ("CC", "BCC"):
        value = (headers or {}).get(name)
        if isinstance(value, list):
            keys.extend(_text(v) for v in value if isinstance(v, (str, bytes)))
    return keys


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


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
    matches = [d for d in grouped if _text(d.get("queue")) == queue and _text(d.get("reason")) == reason]
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
        key = (_text(death.get("queue")), _text(death.get("reason")))
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
        if isinstance(death, dict) and _text(death.get("queue")) == queue:
            return all(isinstance(d, dict) and _text(d.get("reason")) != REJECTED for d in seen)
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


def publish(vhost, message: Message, keys: list[str], reason: str, from_queue: str, deaths: list) -> int:
    """Route the dead-lettered copy ``message`` through its exchange (a
    missing DLX drops it, as RabbitMQ does) with every key in ``keys``;
    hold a copy at each delayed-message exchange on the way when it has an
    ``x-delay`` (broker/vhost/delayed_copies.py; not counted in the result);
    drop it where it is a duplicate (x-message-deduplication exchange or
    queues, broker/vhost/deduplication.py), leave out the queues it would cycle
    into (``deaths``: its x-death list, from ``copy_message``), persist it
    when persistent and routed to a durable queue, and enqueue it. Returns
    the number of queues it reached."""
    exchange = vhost.exchanges.get(message.exchange)
    if exchange is None:
        log.debug("vhost '%s' queue '%s': dead-letter exchange '%s' missing, message dropped",
                  vhost.name, from_queue, message.exchange)
        return 0
    held: list = []  # delayed-message exchanges on the way (broker/vhost/delayed_copies.py)
    queues = sender_selected.route(vhost, exchange, message, keys[1:], held)  # message.routing_key is keys[0]
    # the plugin's exchange route and queue decorator see dead-lettered copies like any publish
    if deduplication.exchange_duplicate(vhost, exchange, message):
        return 0
    if held:
        hold_copies(vhost, message, held)
    if queues:
        queues = deduplication.drop_queue_duplicates(vhost, message, queues)
    if reason != REJECTED and queues:
        cycling = [q for q in queues if is_cycle(q.name, deaths)]
        for queue in cycling:
            log.warning("vhost '%s': dead-letter cycle detected, message from queue '%s' not republished "
                        "to queue '%s'", vhost.name, from_queue, queue.name)
        queues = [q for q in queues if q not in cycling]
    if not queues:
        return 0
    queues, _refused = queue_limits.admit(queues, message)
    if queues:
        persist(vhost, message, queues)
    for queue in queues:
        queue.enqueue(message)
    return len(queues)
