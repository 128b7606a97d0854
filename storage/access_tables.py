"""Durable access control: users, virtual hosts, permissions and limits, in
the topology database (``<data_dir>/topology.db``) beside the durable
exchanges, queues and bindings (rabbitmq.com/access-control.html; RabbitMQ
keeps them in its schema database too). Each change is one synchronous
SQLite transaction: committed means it survives SIGKILL.

Rows are plain values; broker.persistence.access_store turns them into the
broker's objects."""

from __future__ import annotations

import json
import sqlite3
from typing import NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, hashing_algorithm TEXT NOT NULL,
    tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vhosts (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, tags TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS permissions (
    user TEXT NOT NULL, vhost TEXT NOT NULL, configure TEXT NOT NULL, write TEXT NOT NULL,
    read TEXT NOT NULL, PRIMARY KEY (user, vhost));
CREATE TABLE IF NOT EXISTS limits (
    kind TEXT NOT NULL CHECK (kind IN ('vhost', 'user')), name TEXT NOT NULL, limits TEXT NOT NULL,
    PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS access_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: ``access_meta`` key set once the defaults (user, vhost, permissions) were
#: written: a data directory without it is fresh
SEEDED = "seeded"


class UserRow(NamedTuple):
    name: str
    password_hash: str  # base64, as RabbitMQ's definitions carry it; "" = no password
    hashing_algorithm: str  # e.g. "rabbit_password_hashing_sha256"
    tags: tuple[str, ...]


class VhostRow(NamedTuple):
    name: str
    description: str
    tags: tuple[str, ...]


class PermissionRow(NamedTuple):
    user: str
    vhost: str
    configure: str  # regular expressions
    write: str
    read: str


class LimitsRow(NamedTuple):
    kind: str  # "vhost" or "user"
    name: str
    limits: dict  # e.g. {"max-connections": 10}


class AccessState(NamedTuple):
    """Everything stored, and whether the defaults were ever written."""
    seeded: bool
    users: list[UserRow]
    vhosts: list[VhostRow]
    permissions: list[PermissionRow]
    limits: list[LimitsRow]


class AccessTables:
    """The access tables of an open topology database connection ``db``
    (autocommit mode). Every method commits before it returns; raises
    sqlite3.Error on I/O failure."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        db.executescript(SCHEMA)

    def _write(self, sql: str, params: tuple) -> None:
        with self._db:
            self._db.execute(sql, params)

    def load(self) -> AccessState:
        """Every row, in creation order (rowid)."""
        db = self._db
        seeded = db.execute("SELECT 1 FROM access_meta WHERE key = ?", (SEEDED,)).fetchone() is not None
        users = [UserRow(n, h, a, _split(t)) for n, h, a, t in
                 db.execute("SELECT name, password_hash, hashing_algorithm, tags FROM users ORDER BY rowid")]
        vhosts = [VhostRow(n, d, _split(t)) for n, d, t in
                  db.execute("SELECT name, description, tags FROM vhosts ORDER BY rowid")]
        permissions = [PermissionRow(*row) for row in
                       db.execute("SELECT user, vhost, configure, write, read FROM permissions ORDER BY rowid")]
        limits = [LimitsRow(k, n, json.loads(v)) for k, n, v in
                  db.execute("SELECT kind, name, limits FROM limits ORDER BY rowid")]
        return AccessState(seeded, users, vhosts, permissions, limits)

    def mark_seeded(self) -> None:
        self._write("INSERT OR REPLACE INTO access_meta VALUES (?, '1')", (SEEDED,))

    def save_user(self, row: UserRow) -> None:
        """Insert or replace the user (its permissions and limits stay)."""
        self._write("INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "password_hash = excluded.password_hash, hashing_algorithm = excluded.hashing_algorithm, "
                    "tags = excluded.tags", (row.name, row.password_hash, row.hashing_algorithm, _join(row.tags)))

    def delete_user(self, name: str) -> None:
        """Remove the user with its permissions and user limits."""
        with self._db:
            self._db.execute("DELETE FROM users WHERE name = ?", (name,))
            self._db.execute("DELETE FROM permissions WHERE user = ?", (name,))
            self._db.execute("DELETE FROM limits WHERE kind = 'user' AND name = ?", (name,))

    def save_vhost(self, row: VhostRow) -> None:
        self._write("INSERT INTO vhosts VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "description = excluded.description, tags = excluded.tags",
                    (row.name, row.description, _join(row.tags)))

    def delete_vhost(self, name: str) -> None:
        """Remove the vhost with its permissions and limits, and its
        exchanges, queues and bindings (tables of storage.topology, in the
        same database and the same transaction)."""
        with self._db:
            for sql in ("DELETE FROM vhosts WHERE name = ?", "DELETE FROM permissions WHERE vhost = ?",
                        "DELETE FROM limits WHERE kind = 'vhost' AND name = ?",
                        "DELETE FROM exchanges WHERE vhost = ?", "DELETE FROM queues WHERE vhost = ?",
                        "DELETE FROM bindings WHERE vhost = ?"):
                self._db.execute(sql, (name,))

    def save_permission(self, row: PermissionRow) -> None:
        self._write("INSERT INTO permissions VALUES (?, ?, ?, ?, ?) ON CONFLICT (user, vhost) DO UPDATE SET "
                    "configure = excluded.configure, write = excluded.write, read = excluded.read", row)

    def delete_permission(self, user: str, vhost: str) -> None:
        self._write("DELETE FROM permissions WHERE user = ? AND vhost = ?", (user, vhost))

    def save_limits(self, row: LimitsRow) -> None:
        """Store the limits of a vhost or user; an empty dict removes them."""
        if not row.limits:
            self._write("DELETE FROM limits WHERE kind = ? AND name = ?", (row.kind, row.name))
            return
        self._write("INSERT INTO limits VALUES (?, ?, ?) ON CONFLICT (kind, name) DO UPDATE SET "
                    "limits = excluded.limits", (row.kind, row.name, json.dumps(row.limits, sort_keys=True)))


def _join(tags: tuple[str, ...]) -> str:
    return ",".join(tags)


def _split(text: str) -> tuple[str, ...]:
    return tuple(tag for tag in text.split(",") if tag)
