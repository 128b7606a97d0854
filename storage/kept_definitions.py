"""Definitions Leveret keeps without acting on them yet: policies, topic
permissions, runtime parameters (other than vhost limits) and global
parameters from an imported RabbitMQ definitions file
(rabbitmq.com/docs/definitions), so that the next export gives them back.
They live in the topology database (``<data_dir>/topology.db``) beside the
access tables; each change is one synchronous SQLite transaction.

A row is ``(section, vhost, key, body)``: the section's name as in the
definitions document, the vhost ("" for a global parameter), the record's
identity within the section and vhost (see ``KEY_FIELDS``) and the whole
record as JSON text."""

from __future__ import annotations

import json
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS kept_definitions (
    section TEXT NOT NULL, vhost TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (section, vhost, key));
"""

#: section -> the record fields that identify it within its vhost (as
#: RabbitMQ's import replaces an existing policy, parameter... of that name)
KEY_FIELDS = {
    "policies": ("name",),
    "topic_permissions": ("user", "exchange"),
    "parameters": ("component", "name"),
    "global_parameters": ("name",),
}


def record_key(section: str, record: dict) -> str:
    """The identity of ``record`` in ``section`` as one text (JSON of its
    key fields). Raises KeyError for an unknown section or a missing field."""
    return json.dumps([record[field] for field in KEY_FIELDS[section]], ensure_ascii=False)


class KeptDefinitions:
    """The ``kept_definitions`` table of an open topology database
    connection ``db`` (autocommit mode). Every method commits before it
    returns; raises sqlite3.Error on I/O failure."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db
        db.executescript(SCHEMA)

    def save(self, section: str, records: list[dict]) -> None:
        """Insert or replace ``records`` of ``section`` (each with a
        ``vhost`` field, except global parameters), in one transaction."""
        rows = [(section, record.get("vhost", ""), record_key(section, record),
                 json.dumps(record, ensure_ascii=False, sort_keys=True)) for record in records]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO kept_definitions VALUES (?, ?, ?, ?)", rows)

    def load(self) -> dict[str, list[dict]]:
        """section -> its records, in the order they were first stored."""
        kept: dict[str, list[dict]] = {section: [] for section in KEY_FIELDS}
        for section, body in self._db.execute("SELECT section, body FROM kept_definitions ORDER BY rowid"):
            kept.setdefault(section, []).append(json.loads(body))
        return kept

    def forget_vhost(self, vhost: str) -> int:
        """Delete every record of ``vhost``; returns how many there were."""
        with self._db:
            return self._db.execute("DELETE FROM kept_definitions WHERE vhost = ? AND section != "
                                    "'global_parameters'", (vhost,)).rowcount

    def forget_user(self, user: str) -> int:
        """Delete the topic permissions of ``user``; returns how many."""
        rows = [(vhost, key) for vhost, key, body in self._db.execute(
            "SELECT vhost, key, body FROM kept_definitions WHERE section = 'topic_permissions'")
            if json.loads(body).get("user") == user]
        with self._db:
            self._db.executemany("DELETE FROM kept_definitions WHERE section = 'topic_permissions' AND vhost = ? "
                                 "AND key = ?", rows)
        return len(rows)
