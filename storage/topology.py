"""Durable topology: exchanges, queues and bindings that survive a restart
(rabbitmq.com/queues.html#durability). Declarations are rare, so each change
is one synchronous SQLite transaction in ``<data_dir>/topology.db``.
Arguments are stored as AMQP field tables (pamqp's encoding), so every AMQP
value type round-trips exactly."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

from pamqp import decode, encode

from storage.access_tables import AccessTables
from storage.kept_definitions import KeptDefinitions

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchanges (
    vhost TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    auto_delete INTEGER NOT NULL, internal INTEGER NOT NULL, arguments BLOB NOT NULL,
    PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS queues (
    vhost TEXT NOT NULL, name TEXT NOT NULL, auto_delete INTEGER NOT NULL, arguments BLOB NOT NULL,
    PRIMARY KEY (vhost, name));
CREATE TABLE IF NOT EXISTS bindings (
    vhost TEXT NOT NULL, source TEXT NOT NULL, destination TEXT NOT NULL,
    destination_kind TEXT NOT NULL CHECK (destination_kind IN ('queue', 'exchange')),
    routing_key TEXT NOT NULL, arguments BLOB NOT NULL,
    PRIMARY KEY (vhost, source, destination, destination_kind, routing_key, arguments));
"""


class ExchangeRow(NamedTuple):
    vhost: str
    name: str
    type: str
    auto_delete: bool
    internal: bool
    arguments: dict


class QueueRow(NamedTuple):
    vhost: str
    name: str
    auto_delete: bool
    arguments: dict


class BindingRow(NamedTuple):
    vhost: str
    source: str
    destination: str
    destination_kind: str  # "queue" or "exchange"
    routing_key: str
    arguments: dict


def _table(arguments: dict | None) -> bytes:
    return encode.field_table(arguments or {})


def _untable(blob: bytes) -> dict:
    return decode.field_table(blob)[1] if blob else {}


class TopologyStore:
    """The durable-topology database. Every method commits before it
    returns (SQLite with ``synchronous=FULL``); raises sqlite3.Error on I/O
    failure."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        #: users, vhosts, permissions, limits (storage/access_tables.py),
        #: in the same database; set by ``open``
        self.access: AccessTables | None = None
        #: policies, topic permissions, parameters kept from imported
        #: definitions (storage/kept_definitions.py); set by ``open``
        self.kept: KeptDefinitions | None = None

    def open(self) -> None:
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.access = AccessTables(self._db)
        self.kept = KeptDefinitions(self._db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
            self.access = None
            self.kept = None

    def _write(self, sql: str, params: tuple) -> None:
        with self._db:
            self._db.execute(sql, params)

    def save_exchange(self, row: ExchangeRow) -> None:
        self._write("INSERT OR REPLACE INTO exchanges VALUES (?, ?, ?, ?, ?, ?)",
                    (row.vhost, row.name, row.type, int(row.auto_delete), int(row.internal), _table(row.arguments)))

    def delete_exchange(self, vhost: str, name: str) -> None:
        """Remove the exchange and every binding from or to it."""
        with self._db:
            self._db.execute("DELETE FROM exchanges WHERE vhost = ? AND name = ?", (vhost, name))
            self._db.execute("DELETE FROM bindings WHERE vhost = ? AND (source = ? OR "
                             "(destination = ? AND destination_kind = 'exchange'))", (vhost, name, name))

    def save_queue(self, row: QueueRow) -> None:
        self._write("INSERT OR REPLACE INTO queues VALUES (?, ?, ?, ?)",
                    (row.vhost, row.name, int(row.auto_delete), _table(row.arguments)))

    def delete_queue(self, vhost: str, name: str) -> None:
        """Remove the queue and every binding to it."""
        with self._db:
            self._db.execute("DELETE FROM queues WHERE vhost = ? AND name = ?", (vhost, name))
            self._db.execute("DELETE FROM bindings WHERE vhost = ? AND destination = ? AND "
                             "destination_kind = 'queue'", (vhost, name))

    def save_binding(self, row: BindingRow) -> None:
        self._write("INSERT OR REPLACE INTO bindings VALUES (?, ?, ?, ?, ?, ?)",
                    (row.vhost, row.source, row.destination, row.destination_kind, row.routing_key,
                     _table(row.arguments)))

    def delete_binding(self, row: BindingRow) -> None:
        self._write("DELETE FROM bindings WHERE vhost = ? AND source = ? AND destination = ? AND "
                    "destination_kind = ? AND routing_key = ? AND arguments = ?",
                    (row.vhost, row.source, row.destination, row.destination_kind, row.routing_key,
                     _table(row.arguments)))

    def load(self) -> tuple[list[ExchangeRow], list[QueueRow], list[BindingRow]]:
        """Everything stored, in declaration order (rowid)."""
        db = self._db
        exchanges = [ExchangeRow(v, n, t, bool(a), bool(i), _untable(args)) for v, n, t, a, i, args
                     in db.execute("SELECT * FROM exchanges ORDER BY rowid")]
        queues = [QueueRow(v, n, bool(a), _untable(args))
                  for v, n, a, args in db.execute("SELECT * FROM queues ORDER BY rowid")]
        bindings = [BindingRow(v, s, d, k, rk, _untable(args))
                    for v, s, d, k, rk, args in db.execute("SELECT * FROM bindings ORDER BY rowid")]
        return exchanges, queues, bindings


