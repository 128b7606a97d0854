"""A known message history written to a real WAL and fed to a real mirror,
checked row by row. Other mirror tests and the CLI tests import
``write_scenario`` from here."""

from __future__ import annotations

import datetime
import sqlite3
import time
from pathlib import Path

from pamqp import commands, header

from storage.mirror import MessageMirror, find, show
from storage.wal import (ACK, DELIVERED, MESSAGE, REASON_DEAD_LETTERED, REASON_EXPIRED,
                         REASON_PURGED, REASON_REJECTED, REQUEUED, WriteAheadLog, encode_ack,
                         encode_delivered, encode_message, encode_requeued)

#: publish time of message 1 (an hour ago, so the 7-day retention keeps it)
BASE = (time.time_ns() // 1_000_000 // 1000 - 3600) * 1000
BIG = b"B" * (64 * 1024 + 1)


def content_header(body: bytes, **props) -> bytes:
    """AMQP content-header payload for ``body`` with pamqp properties."""
    return header.ContentHeader(0, len(body), commands.Basic.Properties(**props)).marshal()


def scenario_records() -> list[tuple[int, bytes]]:
    """(record type, payload) of the scenario, in WAL order. Message ids:

    1 orders: delivered to c1, acked                     -> acked
    2 orders: delivered to c1, requeued, delivered to c2 (count 2), acked -> acked
    3 events fanout to audit + mail: audit delivered + acked, mail ready -> queued
    4 orders: expired                                     -> expired
    5 orders: delivered to c1, rejected, then dead-lettered -> dead-lettered
    6 orders: purged                                      -> purged
    7 orders: delivered to c1, unacked                    -> delivered
    8 orders: body over 64 KiB (not stored), basic.get, acked -> acked
    9 vhost "other", exchange "" (default), queue jobs     -> queued
    """
    t = BASE
    h = content_header
    recs = []

    def msg(mid, body, vhost="/", exchange="orders", key="order.created", queues=("orders",),
            **props):
        recs.append((MESSAGE, encode_message(mid, vhost, exchange, key, queues,
                                             h(body, **props), body, at_ms=t + mid * 1000)))

    def ev(rtype, payload):
        recs.append((rtype, payload))

    msg(1, b'{"order": 1}', content_type="application/json", delivery_mode=2,
        message_id="order-1", correlation_id="corr-1", app_id="shop", user_id="guest",
        priority=5, reply_to="replies",
        message_type="order.created", expiration="60000",
        timestamp=datetime.datetime(2026, 5, 9, 7, 0, 0),
        headers={"tenant": "acme", "n": 1, "vip": True, "tags": ["a", "b"]})
    ev(DELIVERED, encode_delivered(1, "orders", "c1", 1, at_ms=t + 1100))
    ev(ACK, encode_ack(1, "orders", at_ms=t + 1200))
    msg(2, b"two", delivery_mode=2, message_id="order-2", headers={"tenant": "globex", "n": 2})
    ev(DELIVERED, encode_delivered(2, "orders", "c1", 1, at_ms=t + 2100))
    ev(REQUEUED, encode_requeued(2, "orders", at_ms=t + 2200))
    ev(DELIVERED, encode_delivered(2, "orders", "c2", 2, at_ms=t + 2300))
    ev(ACK, encode_ack(2, "orders", at_ms=t + 2400))
    msg(3, b"three", exchange="events", key="", queues=("audit", "mail"), delivery_mode=2,
        message_id="evt-3", correlation_id="corr-1")
    ev(DELIVERED, encode_delivered(3, "audit", "a1", 1, at_ms=t + 3100))
    ev(ACK, encode_ack(3, "audit", at_ms=t + 3200))
    msg(4, b"four", delivery_mode=2, message_id="order-4", expiration="1")
    ev(ACK, encode_ack(4, "orders", REASON_EXPIRED, at_ms=t + 4100))
    msg(5, b"five", key="order.failed", delivery_mode=2, message_id="order-5")
    ev(DELIVERED, encode_delivered(5, "orders", "c1", 1, at_ms=t + 5100))
    ev(ACK, encode_ack(5, "orders", REASON_DEAD_LETTERED, at_ms=t + 5200))
    msg(6, b"six", delivery_mode=2)
    ev(ACK, encode_ack(6, "orders", REASON_PURGED, at_ms=t + 6100))
    msg(7, b"seven", delivery_mode=2, message_id="order-7")
    ev(DELIVERED, encode_delivered(7, "orders", "c1", 1, at_ms=t + 7100))
    msg(8, BIG, delivery_mode=2, message_id="big")
    ev(DELIVERED, encode_delivered(8, "orders", "", 1, at_ms=t + 8100))
    ev(ACK, encode_ack(8, "orders", at_ms=t + 8200))
    msg(9, b"nine", vhost="other", exchange="", key="jobs", queues=("jobs",), delivery_mode=2)
    return recs


#: expected (state, finished_at offset from BASE or None) per message id
EXPECTED_STATES = {1: ("acked", 1200), 2: ("acked", 2400), 3: ("queued", None),
                   4: ("expired", 4100), 5: ("dead-lettered", 5200), 6: ("purged", 6100),
                   7: ("delivered", None), 8: ("acked", 8200), 9: ("queued", None)}


async def write_scenario(data_dir: Path, mirror: MessageMirror | None = None,
                         records=None, **wal_options) -> list:
    """Append the scenario (or ``records``) to a real WAL in
    ``data_dir/wal`` and feed each record with its real Position to
    ``mirror`` (if given). Returns the Positions."""
    wal = WriteAheadLog(Path(data_dir) / "wal", **wal_options)
    wal.open().drain()
    positions = []
    try:
        for rtype, payload in (scenario_records() if records is None else records):
            pos = wal.append(rtype, payload)
            positions.append(pos)
            if mirror is not None:
                mirror.feed(rtype, payload, pos)
        await wal.sync()
    finally:
        wal.close()
    return positions


async def build_database(data_dir: Path, **mirror_options) -> Path:
    """The scenario's WAL plus a live-fed ``data_dir/messages.db``."""
    db = Path(data_dir) / "messages.db"
    mirror = MessageMirror(db, **mirror_options)
    await mirror.start()
    await write_scenario(data_dir, mirror)
    await mirror.stop()
    return db


def dump(db: Path) -> tuple[list, list, dict]:
    """Every messages row, every message_events row (by id) and meta."""
    conn = sqlite3.connect(db)
    try:
        return (conn.execute("SELECT * FROM messages ORDER BY id").fetchall(),
                conn.execute("SELECT * FROM message_events ORDER BY id").fetchall(),
                dict(conn.execute("SELECT key, value FROM meta").fetchall()))
    finally:
        conn.close()


async def test_scenario_rows_states_and_watermark(tmp_path):
    mirror = MessageMirror(tmp_path / "messages.db")
    await mirror.start()
    assert mirror.watermark is None
    positions = await write_scenario(tmp_path, mirror)
    await mirror.stop()
    assert mirror.watermark == positions[-1]
    stats = mirror.stats
    assert (stats["fed"], stats["applied"], stats["messages"]) == (24, 24, 9)
    assert (stats["orphans"], stats["duplicates"], stats["errors"]) == (0, 0, 0)
    assert stats["lag_seconds"] == 0.0 and stats["backlog"] == 0

    db = tmp_path / "messages.db"
    conn = sqlite3.connect(db)
    states = {i: (s, f) for i, s, f in conn.execute("SELECT id, state, finished_at FROM messages")}
    assert states == {i: (s, None if f is None else BASE + f)
                      for i, (s, f) in EXPECTED_STATES.items()}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    assert (meta["wal_segment"], meta["wal_offset"], meta["wal_length"]) == tuple(positions[-1])
    assert meta["mode"] == "full" and meta["schema_version"] == 2
    assert conn.execute("SELECT count(*) FROM message_events").fetchone()[0] == 25
    assert conn.execute("SELECT published_at_iso FROM messages_iso WHERE id = 1").fetchone()[0] \
        == datetime.datetime.fromtimestamp((BASE + 1000) / 1000, datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%S.000Z")
    conn.close()

    m1 = show(db, 1)
    assert {k: m1[k] for k in ("vhost", "exchange", "routing_key", "queue_count", "message_id",
                               "correlation_id", "content_type", "content_encoding", "type",
                               "app_id", "user_id", "timestamp", "priority", "expiration",
                               "delivery_mode", "reply_to", "headers", "body_size", "body",
                               "published_at")} == {
        "vhost": "/", "exchange": "orders", "routing_key": "order.created", "queue_count": 1,
        "message_id": "order-1", "correlation_id": "corr-1", "content_type": "application/json",
        "content_encoding": None, "type": "order.created", "app_id": "shop", "user_id": "guest",
        "timestamp": int(datetime.datetime(2026, 5, 9, 7, tzinfo=datetime.timezone.utc)
                         .timestamp()),
        "priority": 5, "expiration": "60000", "delivery_mode": 2, "reply_to": "replies",
        "headers": {"tenant": "acme", "n": 1, "vip": True, "tags": ["a", "b"]},
        "body_size": 12, "body": b'{"order": 1}', "published_at": BASE + 1000}
    assert [(e["queue"], e["event"], e["at"] - BASE, e["consumer_tag"], e["delivery_count"])
            for e in m1["events"]] == [("orders", "routed", 1000, None, None),
                                       ("orders", "delivered", 1100, "c1", 1),
                                       ("orders", "acked", 1200, None, None)]

    def timeline(i):
        return [(e["queue"], e["event"], e["consumer_tag"], e["delivery_count"])
                for e in show(db, i)["events"]]

    assert timeline(2) == [("orders", "routed", None, None), ("orders", "delivered", "c1", 1),
                           ("orders", "requeued", None, None), ("orders", "delivered", "c2", 2),
                           ("orders", "acked", None, None)]
    assert timeline(3) == [("audit", "routed", None, None), ("mail", "routed", None, None),
                           ("audit", "delivered", "a1", 1), ("audit", "acked", None, None)]
    assert timeline(5)[-1] == ("orders", "dead-lettered", None, None)
    assert timeline(8) == [("orders", "routed", None, None), ("orders", "delivered", "", 1),
                           ("orders", "acked", None, None)]
    m8 = show(db, 8)
    assert m8["body"] is None and m8["body_size"] == len(BIG)
    assert show(db, 9)["vhost"] == "other" and show(db, 9)["exchange"] == ""
    assert show(db, 42) is None
    assert [r["id"] for r in find(db)] == [9, 8, 7, 6, 5, 4, 3, 2, 1]


async def test_multi_queue_state_across_batches(tmp_path):
    """A fanout message finished in one queue in a later batch than the
    other: the state needs the other queue's history from the database."""
    db = tmp_path / "messages.db"
    mirror = MessageMirror(db, flush_interval=0)
    await mirror.start()
    h = content_header(b"x", delivery_mode=2)
    wal = WriteAheadLog(tmp_path / "wal")
    wal.open().drain()

    async def put(rtype, payload):
        mirror.feed(rtype, payload, wal.append(rtype, payload))
        await mirror.flush()              # one record per batch

    await put(MESSAGE, encode_message(1, "/", "fan", "", ["a", "b", "c"], h, b"x", at_ms=BASE))
    await put(DELIVERED, encode_delivered(1, "a", "ca", 1, at_ms=BASE + 1))
    assert show(db, 1)["state"] == "queued"           # still ready in b and c
    await put(ACK, encode_ack(1, "b", REASON_REJECTED, at_ms=BASE + 2))
    await put(ACK, encode_ack(1, "c", at_ms=BASE + 3))
    assert show(db, 1)["state"] == "delivered"        # unacked in a, finished elsewhere
    await put(ACK, encode_ack(1, "a", at_ms=BASE + 4))
    m = show(db, 1)
    assert (m["state"], m["finished_at"]) == ("acked", BASE + 4)   # a finished last
    await put(ACK, encode_ack(99, "a", at_ms=BASE + 5))            # unknown message
    await put(MESSAGE, encode_message(1, "/", "fan", "", ["a"], h, b"x", at_ms=BASE + 6))
    await mirror.stop()
    wal.close()
    assert (mirror.stats["orphans"], mirror.stats["duplicates"]) == (1, 1)
    assert len(show(db, 1)["events"]) == 7          # 3 routed + 4; the copy added none
    assert mirror.stats["batches"] == 7
