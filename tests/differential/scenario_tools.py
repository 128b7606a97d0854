"""Shared tools for the differential scenarios (Leveret vs. reference RabbitMQ).

A scenario is a plain function ``scenario(url) -> observed`` that runs the same
client steps against whichever broker ``url`` points at and returns plain data
(lists, dicts, strings, ints) that must be equal for both brokers. To make the
two runs comparable:

* :class:`Scope` opens a pika connection, gives every queue and exchange a
  unique real name behind a *logical* name (``"main"``, ``"dlx"``), and
  deletes everything it declared when the scenario ends;
* :meth:`Scope.norm` turns what a broker sent back into comparable data:
  real names become ``<main>``, timestamps (the x-death ``time`` field)
  become ``"<timestamp>"``, bytes become text;
* :meth:`Scope.message` observes one delivery: body, redelivered flag,
  exchange, routing key, and every property and header.

A scenario returns the fields it is about; besides, every delivery a scope
saw through :meth:`Scope.drain` or a :class:`Collector` is kept whole, in
order per queue (basic.get) and per consumer (``Scope.deliveries``), and
``DELIVERIES`` holds them per broker URL: the ``differential`` fixture
compares them too, so a property a scenario does not name still counts.

Nothing here knows which broker it talks to.
"""

from __future__ import annotations

import contextlib
import datetime
import time
import uuid
from typing import Any, Callable, Iterator

import pika
import pika.exceptions

from pika.compat import long as pika_long

from tests.interop.pika_helpers import params

# Every basic property of AMQP 0-9-1 (spec section 1.8, class basic;
# pika.BasicProperties attribute names): compared on every delivery.
ALL_PROPERTIES = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
                  "user_id", "app_id", "cluster_id")
# The ones a scenario's own observation shows by default (``Scope.message``).
OBSERVED_PROPERTIES = ("content_type", "correlation_id", "delivery_mode", "priority", "expiration", "headers")


#: broker URL -> the ``Scope.deliveries`` of each scope run against it
DELIVERIES: dict[str, list[dict[str, list[dict[str, Any]]]]] = {}


class Long(int):
    """An integer the broker sent as a 64-bit field-table value ('l'); equal
    only to another Long, so a broker sending x-death ``count`` as a 32-bit
    int (which Java clients fail to cast to Long) shows up as a difference."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Long) and int(self) == int(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = int.__hash__

    def __repr__(self) -> str:
        return f"Long({int(self)})"


class Scope:
    """One scenario run against one broker: a connection, a confirming
    channel, and unique names; :meth:`cleanup` deletes them (see :func:`scope`)."""

    def __init__(self, url: str):
        self.url = url
        self.run_id = uuid.uuid4().hex[:10]
        self.real_to_logical: dict[str, str] = {}
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.connections: list[pika.BlockingConnection] = []
        #: "get <queue>" / "consumer <label>" -> full observations, in order
        self.deliveries: dict[str, list[dict[str, Any]]] = {}
        self.conn = self.connect()
        self.ch = self.channel(confirm=True)

    # -- lifecycle ---------------------------------------------------------

    def connect(self) -> pika.BlockingConnection:
        """A further connection (closed on exit)."""
        conn = pika.BlockingConnection(params(self.url))
        self.connections.append(conn)
        return conn

    def cleanup(self) -> None:
        """Delete every queue and exchange this scope declared, close connections."""
        try:
            with contextlib.closing(pika.BlockingConnection(params(self.url))) as conn:
                ch = conn.channel()
                for delete, name in [(1, q) for q in self.queues] + [(0, x) for x in self.exchanges]:
                    try:
                        ch.queue_delete(name) if delete else ch.exchange_delete(name)
                    except pika.exceptions.ChannelClosedByBroker:
                        ch = conn.channel()
        finally:
            for conn in self.connections:
                if conn.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        conn.close()

    def channel(self, confirm: bool = False):
        """A fresh channel on the main connection, in confirm mode if asked.

        The main channel ``ch`` confirms, so that a publish has reached its
        queues before the next step (RabbitMQ routes asynchronously: an
        unconfirmed publish may not be counted by the next queue.declare)."""
        ch = self.conn.channel()
        if confirm:
            ch.confirm_delivery()
        return ch

    # -- names ---------------------------------------------------------------

    def name(self, logical: str) -> str:
        """The real, unique name for ``logical`` (the same on every call)."""
        for real, log in self.real_to_logical.items():
            if log == logical:
                return real
        real = f"diff-{logical}-{self.run_id}"
        self.real_to_logical[real] = logical
        return real

    def queue(self, logical: str, ch=None, **arguments: Any) -> str:
        """Declare queue ``logical`` (non-durable) with x-arguments; returns its real name.

        Argument values that are logical names of exchanges/queues (strings
        starting with ``@``) are replaced by the real names."""
        real = self.name(logical)
        if real not in self.queues:
            self.queues.append(real)
        (ch or self.ch).queue_declare(real, arguments=self.resolve(arguments) or None)
        return real

    def exchange(self, logical: str, kind: str = "direct", ch=None, **arguments: Any) -> str:
        """Declare exchange ``logical`` of type ``kind``; returns its real name."""
        real = self.name(logical)
        if real not in self.exchanges:
            self.exchanges.append(real)
        (ch or self.ch).exchange_declare(real, kind, arguments=self.resolve(arguments) or None)
        return real

    def resolve(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Replace ``"@logical"`` string values by real names."""
        return {k: self.name(v[1:]) if isinstance(v, str) and v.startswith("@") else v
                for k, v in arguments.items()}

    # -- observation --------------------------------------------------------

    def norm(self, value: Any) -> Any:
        """Comparable form of ``value``: names made logical, timestamps and bytes normalised."""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            for real, logical in self.real_to_logical.items():
                value = value.replace(real, f"<{logical}>")
            return value
        if isinstance(value, pika_long):
            return Long(value)
        if isinstance(value, datetime.datetime):
            return "<timestamp>"
        if isinstance(value, dict):
            return {self.norm(k): self.norm(v) for k, v in sorted(value.items())}
        if isinstance(value, (list, tuple)):
            return [self.norm(v) for v in value]
        return value

    def message(self, method, props, body, *fields: str) -> dict[str, Any]:
        """Observe one delivery. ``fields`` picks the keys (default: body,
        redelivered, exchange, routing_key and OBSERVED_PROPERTIES)."""
        seen = self.whole(method, props, body)
        return {k: seen[k] for k in (fields or ("body", "redelivered", "exchange", "routing_key",
                                                *OBSERVED_PROPERTIES))}

    def whole(self, method, props, body) -> dict[str, Any]:
        """Everything about one delivery: body, redelivered, exchange,
        routing key and ALL_PROPERTIES."""
        seen = {
            "body": self.norm(body),
            "redelivered": bool(method.redelivered),
            "exchange": self.norm(method.exchange),
            "routing_key": self.norm(method.routing_key),
        }
        for prop in ALL_PROPERTIES:
            seen[prop] = self.norm(getattr(props, prop))
        return seen

    def drain(self, queue: str, *fields: str, ch=None) -> list:
        """basic.get (auto-ack) until ``queue`` is empty; observed messages.
        With a single field, the list holds that field's values only."""
        out = []
        for _ in range(10_000):
            method, props, body = (ch or self.ch).basic_get(queue, auto_ack=True)
            if method is None:
                return out
            self.deliveries.setdefault(f"get {self.norm(queue)}", []).append(self.whole(method, props, body))
            seen = self.message(method, props, body, *fields)
            out.append(seen[fields[0]] if len(fields) == 1 else seen)
        raise AssertionError(f"{queue} did not run dry")

    def wait_drain(self, queue: str, count: int, *fields: str, timeout: float = 5.0) -> list:
        """Drain ``queue`` repeatedly until ``count`` messages came (or timeout),
        then once more after a short pause to catch surplus messages."""
        out: list = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            out += self.drain(queue, *fields)
            if len(out) < count:
                time.sleep(0.05)
        time.sleep(0.1)
        return out + self.drain(queue, *fields)

    def count(self, queue: str) -> int:
        """message_count from a passive queue.declare-ok."""
        return self.ch.queue_declare(queue, passive=True).method.message_count

    def error(self, call: Callable[[], Any]) -> tuple[int, str] | str:
        """Run ``call``; the (code, normalised text) of the channel or
        connection close it provokes, or ``"ok"``. Reopens the main channel."""
        try:
            call()
        except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker) as exc:
            if not self.conn.is_open:
                self.conn = self.connect()
            self.ch = self.channel(confirm=True)
            return exc.reply_code, self.norm(exc.reply_text)
        return "ok"

    def publish(self, exchange: str, routing_key: str, body: str | bytes, ch=None,
                mandatory: bool = False, **properties: Any) -> str:
        """basic.publish; with a confirming channel returns ``"ack"``,
        ``"nack"`` or ``"returned"``, else ``"sent"``."""
        body = body.encode() if isinstance(body, str) else body
        props = pika.BasicProperties(**properties) if properties else None
        try:
            (ch or self.ch).basic_publish(exchange, routing_key, body, props, mandatory=mandatory)
        except pika.exceptions.NackError:
            return "nack"
        except pika.exceptions.UnroutableError:
            return "returned"
        return "ack" if getattr(ch or self.ch, "_delivery_confirmation", False) else "sent"


def per_consumer(seen: list[tuple[str, str, bool]]) -> dict[str, list[tuple[str, bool]]]:
    """Deliveries grouped by consumer label, each consumer's in arrival
    order: AMQP orders the deliveries of one queue to one consumer
    (spec section 4.7), not the interleaving between consumers."""
    out: dict[str, list[tuple[str, bool]]] = {}
    for label, body, redelivered in seen:
        out.setdefault(label, []).append((body, redelivered))
    return dict(sorted(out.items()))


class Collector:
    """Messages delivered to pika consumers, tagged with the consumer's label."""

    def __init__(self, scope: Scope):
        self.scope = scope
        self.seen: list[tuple[str, str, bool]] = []
        self.unacked: dict[str, list] = {}

    def consume(self, ch, queue: str, label: str, auto_ack: bool = False,
                arguments: dict | None = None) -> str:
        """Start a consumer labelled ``label``; deliveries stay unacked unless ``auto_ack``."""
        def on_message(channel, method, props, body):
            self.seen.append((label, body.decode(), bool(method.redelivered)))
            self.scope.deliveries.setdefault(f"consumer {label}", []).append(
                self.scope.whole(method, props, body))
            if not auto_ack:
                self.unacked.setdefault(label, []).append((channel, method.delivery_tag))
        return ch.basic_consume(queue, on_message, auto_ack=auto_ack, arguments=arguments)

    def ack_all(self, label: str) -> None:
        for channel, tag in self.unacked.pop(label, []):
            channel.basic_ack(tag)

    def wait(self, count: int, timeout: float = 10.0, settle: float = 0.2) -> list[tuple[str, str, bool]]:
        """Pump every connection until ``count`` deliveries in total (or timeout),
        then ``settle`` seconds more to catch surplus ones."""
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            self.pump(0.05)
        self.pump(settle)
        return list(self.seen)

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            for conn in self.scope.connections:
                if conn.is_open:
                    conn.process_data_events(time_limit=0)
            if time.monotonic() >= end:
                return
            time.sleep(0.01)


@contextlib.contextmanager
def scope(url: str) -> Iterator[Scope]:
    """``with scope(url) as s:`` -- a :class:`Scope` cleaned up on exit."""
    s = Scope(url)
    try:
        yield s
    finally:
        DELIVERIES.setdefault(url, []).append(s.deliveries)
        s.cleanup()


def death(queue: str, reason: str, keys: list[str], count: int = 1, exchange: str = "", **extra: Any) -> dict:
    """One expected, normalised x-death entry (https://www.rabbitmq.com/dlx.html);
    ``queue``/``keys``/``exchange`` in logical form (``"<main>"``)."""
    entry = {"count": Long(count), "exchange": exchange, "queue": queue, "reason": reason,
             "routing-keys": keys, "time": "<timestamp>"}
    entry.update({k.replace("_", "-"): v for k, v in extra.items()})
    return dict(sorted(entry.items()))


def dead_headers(deaths: list[dict], **other: Any) -> dict:
    """Expected headers of a dead-lettered message: ``x-death`` (newest first),
    ``x-first-death-*`` taken from the oldest entry, plus ``other`` headers."""
    first = deaths[-1]
    headers = {"x-death": deaths, "x-first-death-exchange": first["exchange"],
               "x-first-death-queue": first["queue"], "x-first-death-reason": first["reason"]}
    headers.update(other)
    return dict(sorted(headers.items()))
