"""The ways of writing the message database, measured one by one in plain
SQLite (the stdlib ``sqlite3``, journal_mode=WAL, synchronous=NORMAL, as the
mirror writes): CPU microseconds per message row (user + system of this
process, the steadier figure on a shared machine) and wall microseconds,
for ``--rows`` rows (default 100,000) in transactions of ``--batch``
(default 10,000). Each line changes one thing against the line it names,
so docs/message-database.md can say what each way is worth:

* binding all 23 columns of a row (schema 1) against only its 10 non-NULL
  ones, and a JSON array through ``json_each`` (one parameter per batch);
* a 1 KiB body in the row, in a body table of its own (4, 16 and 64 KiB
  pages), or appended to a plain file (fsynced per batch);
* the secondary indexes of schema 1 against those of schema 2;
* event rows: rowid table with two indexes (schema 1), without indexes,
  and keyed (message, id) WITHOUT ROWID (schema 2);
* the same events with explicit ids in one ``executemany``.

    .venv/bin/python bench/mirror_sqlite_methods.py [--rows 100000] [--batch 10000]
        [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

BODY = b"x" * 1024
MESSAGE_TABLE = """CREATE TABLE m (id INTEGER PRIMARY KEY, vhost TEXT, exchange TEXT,
    routing_key TEXT, queue_count INT, message_id TEXT, correlation_id TEXT, content_type TEXT,
    content_encoding TEXT, type TEXT, app_id TEXT, user_id TEXT, timestamp INT, priority INT,
    expiration TEXT, delivery_mode INT, reply_to TEXT, headers TEXT, body_size INT, body BLOB,
    published_at INT, state TEXT, finished_at INT, queue TEXT);"""
ALL_23 = "INSERT INTO m VALUES (" + ",".join("?" * 23) + ", NULL)"
SPARSE = ("INSERT INTO m (id, vhost, exchange, routing_key, queue_count, message_id, "
          "delivery_mode, body_size, published_at, state, queue) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
SPARSE_BODY = SPARSE.replace("body_size,", "body_size, body,").replace("?)", "?,?)")
INDEXES_1 = """CREATE INDEX a ON m(message_id); CREATE INDEX b ON m(correlation_id);
    CREATE INDEX c ON m(exchange, routing_key); CREATE INDEX d ON m(published_at);
    CREATE INDEX e ON m(state); CREATE INDEX f ON m(finished_at) WHERE finished_at IS NOT NULL;"""
INDEXES_2 = """CREATE INDEX a ON m(message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX b ON m(correlation_id) WHERE correlation_id IS NOT NULL;
    CREATE INDEX d ON m(published_at); CREATE INDEX e ON m(queue, state, published_at);
    CREATE INDEX f ON m(finished_at) WHERE finished_at IS NOT NULL;"""
EVENTS_ROWID = """CREATE TABLE e (id INTEGER PRIMARY KEY, message INT, queue TEXT, event TEXT,
    at INT, consumer_tag TEXT, delivery_count INT);"""
EVENTS_KEYED = """CREATE TABLE e (id INT, message INT, queue TEXT, event TEXT, at INT,
    consumer_tag TEXT, delivery_count INT, PRIMARY KEY (message, id)) WITHOUT ROWID;"""
EVENT_IDX = "CREATE INDEX f ON e(message, id); CREATE INDEX g ON e(queue, message);"


def sparse(i: int) -> tuple:
    return (i, "/", "", "orders", 1, "%012d" % i, 2, 1024, 1_796_000_000_000 + i, "queued",
            "orders")


def full(i: int) -> tuple:
    return (i, "/", "", "orders", 1, "%012d" % i, None, None, None, None, None, None, None, None,
            None, 2, None, None, 1024, None, 1_796_000_000_000 + i, "queued", None)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(work: Path, name: str, schema: str, write, rows: int, batch: int,
            page_size: int = 65536) -> None:
    """Run ``write(conn, first, last)`` per batch in a fresh database."""
    path = work / "t.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA page_size={page_size}")
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-8192"):
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(schema)
    c0, w0 = cpu(), time.perf_counter()
    for first in range(1, rows + 1, batch):
        conn.execute("BEGIN")
        write(conn, first, min(rows, first + batch - 1))
        conn.execute("COMMIT")
    c, w = cpu() - c0, time.perf_counter() - w0
    conn.close()
    print(f"  {name:62s} CPU {c * 1e6 / rows:6.1f} us  wall {w * 1e6 / rows:6.1f} us",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="leveret-sqlite-", dir=args.dir))
    n, b = args.rows, args.batch
    rng = lambda a, z: range(a, z + 1)  # noqa: E731
    body_file = os.open(work / "bodies", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def to_file(conn, a, z):
        conn.executemany(SPARSE, [sparse(i) for i in rng(a, z)])
        os.write(body_file, b"".join([BODY] * (z - a + 1)))
        os.fdatasync(body_file)

    print(f"{n:,} rows, {b:,} per transaction (times per message row):")
    m = MESSAGE_TABLE
    cases = [
        ("message row: all 23 columns bound (schema 1), no index", m,
         lambda c, a, z: c.executemany(ALL_23, [full(i) for i in rng(a, z)])),
        ("message row: its 10 non-NULL columns bound, no index", m,
         lambda c, a, z: c.executemany(SPARSE, [sparse(i) for i in rng(a, z)])),
        ("message row: a JSON array through json_each, no index", m,
         lambda c, a, z: c.execute(
             "INSERT INTO m (id, vhost, exchange, routing_key, queue_count, message_id, "
             "delivery_mode, body_size, published_at, state, queue) SELECT value->>0, "
             "value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, "
             "value->>8, value->>9, value->>10 FROM json_each(?)",
             (json.dumps([sparse(i) for i in rng(a, z)]),))),
        ("  + indexes of schema 1", m + INDEXES_1,
         lambda c, a, z: c.executemany(SPARSE, [sparse(i) for i in rng(a, z)])),
        ("  + indexes of schema 2", m + INDEXES_2,
         lambda c, a, z: c.executemany(SPARSE, [sparse(i) for i in rng(a, z)])),
        ("  + 1 KiB body in the row (4 KiB pages, schema 1)", m,
         lambda c, a, z: c.executemany(SPARSE_BODY, [(*sparse(i), BODY) for i in rng(a, z)]),
         4096),
        ("  + 1 KiB body in the row (64 KiB pages)", m,
         lambda c, a, z: c.executemany(SPARSE_BODY, [(*sparse(i), BODY) for i in rng(a, z)])),
    ]
    for page in (4096, 16384, 65536):
        cases.append((f"  + 1 KiB body in a table of its own ({page // 1024} KiB pages)",
                      m + "CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB);",
                      lambda c, a, z: (c.executemany(SPARSE, [sparse(i) for i in rng(a, z)]),
                                       c.executemany("INSERT INTO bodies VALUES (?, ?)",
                                                     [(i, BODY) for i in rng(a, z)])), page))
    cases += [
        ("  + 1 KiB body appended to a plain file, fdatasync per batch", m, to_file),
        ("event row: rowid table + (message, id), (queue, message) (schema 1)",
         EVENTS_ROWID + EVENT_IDX,
         lambda c, a, z: c.executemany("INSERT INTO e (message, queue, event, at) VALUES "
                                       "(?,?,?,?)", [(i, "orders", "routed", 1) for i in rng(a, z)])),
        ("event row: rowid table, no index", EVENTS_ROWID,
         lambda c, a, z: c.executemany("INSERT INTO e (message, queue, event, at) VALUES "
                                       "(?,?,?,?)", [(i, "orders", "routed", 1) for i in rng(a, z)])),
        ("event row: keyed (message, id) WITHOUT ROWID, explicit id (schema 2)", EVENTS_KEYED,
         lambda c, a, z: c.executemany("INSERT INTO e (id, message, queue, event, at) VALUES "
                                       "(?,?,?,?,?)", [(i, i, "orders", "routed", 1)
                                                       for i in rng(a, z)])),
    ]
    for case in cases:
        measure(work, *case[:3], n, b, *case[3:])
    os.close(body_file)
    for p in work.iterdir():
        p.unlink()
    work.rmdir()


if __name__ == "__main__":
    sys.exit(main())
