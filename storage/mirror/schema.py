"""The message database schema (SQLite, journal_mode=WAL).

The database lives at ``<data_dir>/messages.db``. One writer (the
``MessageMirror`` background task, or ``rebuild``) fills it from WAL
records; everyone else reads it (``storage.mirror.query``, the
``leveret messages`` commands, plain ``sqlite3``). Every time is an INTEGER
of milliseconds since the Unix epoch (UTC); the views ``messages_iso`` and
``message_events_iso`` add ISO-8601 UTC text columns
(``2026-05-09T07:35:25.123Z``) next to them.

View ``messages`` -- one row per persistent message that reached a durable
queue (one MESSAGE record in the WAL). It joins the table ``message_rows``
(every column but ``body``) with ``message_bodies`` (id, body): the bodies
live in a table of their own, so the rows that queries scan are ~100 bytes
and share no page with bodies (docs/message-database.md, "How fast it
applies"). Writers write the two tables; readers read the view:

==================  =========================================================
id                  INTEGER PRIMARY KEY: the broker's message id from the WAL
                    record (unique for the life of the data directory)
vhost               TEXT: virtual host it was published in
exchange            TEXT: exchange it was published to ("" = default exchange)
routing_key         TEXT: routing key of the basic.publish
queue_count         INTEGER: number of durable queues it was routed to
message_id          TEXT: the message-id property (NULL when absent; same
                    for every property column below)
correlation_id      TEXT: correlation-id property
content_type        TEXT: content-type property
content_encoding    TEXT: content-encoding property
type                TEXT: type property
app_id              TEXT: app-id property
user_id             TEXT: user-id property
timestamp           INTEGER: timestamp property, seconds since the Unix epoch
priority            INTEGER: priority property (0-255)
expiration          TEXT: expiration property (per-message TTL in ms, as text)
delivery_mode       INTEGER: delivery-mode property (2 = persistent)
reply_to            TEXT: reply-to property
headers             TEXT: headers table as JSON (an object). Strings,
                    numbers, booleans, void (null), arrays and nested tables
                    map to JSON directly; a byte string (field type 'x', or a
                    long string that is not UTF-8) becomes the string itself
                    when it is valid UTF-8, else ``{"$base64": "<base64>"}``;
                    a timestamp becomes ISO-8601 UTC text; a decimal its
                    text (``"1.25"``). Query with ``json_extract(headers,
                    '$."x-key"')`` or ``headers ->> '$."x-key"'``.
body_size           INTEGER: body length in bytes (always set)
body                BLOB: the body; NULL when longer than the mirror's body
                    limit (default 64 KiB) or when the row was written in
                    metadata-only mode (see ``meta.mode``)
published_at        INTEGER: publish time (ms), from the MESSAGE record
state               TEXT: current state, derived from the last event of the
                    message in each of its queues (rule below)
finished_at         INTEGER: time (ms) of the event that finished the message
                    in its last queue; NULL while it is queued or delivered
                    in any queue. Retention deletes by this column.
queue               TEXT: the queue, for a message routed to exactly one
                    durable queue; NULL when routed to several (their names
                    are in table ``message_queues (message, queue,
                    published_at)``, indexed by queue and time) or none
==================  =========================================================

State rule. Per queue the message is *ready* after ``routed`` or
``requeued``, *unacked* after ``delivered``, and *finished* after any other
event. ``state`` is ``queued`` if it is ready in at least one queue, else
``delivered`` if it is unacked in at least one queue, else the event that
finished it in the queue where it finished last (``acked``, ``rejected``,
``expired``, ``dead-lettered``, ``purged``, ``dropped``, ``deleted`` or
``deduplicated``).
A message routed to no queue is ``unrouted`` (and finished at publish).

Table ``message_events`` -- the timeline, one row per thing that happened
to a message in one queue, in WAL order:

==============  ==============================================================
id              INTEGER: increases in WAL order (timeline order); the table
                is keyed by (message, id) WITHOUT ROWID, so a timeline is
                one range of the table
message         INTEGER: ``messages.id`` (the writer deletes events with
                their message)
queue           TEXT: queue name
event           TEXT: one of EVENTS: ``routed`` (published into the queue),
                ``delivered`` (basic.deliver or basic.get-ok), ``requeued``
                (back to the ready list: reject/nack with requeue, recover,
                channel closed), and the finishing events ``acked``,
                ``rejected``, ``expired``, ``dead-lettered``, ``purged``,
                ``dropped`` (overflow), ``deleted`` (the queue was deleted),
                ``deduplicated`` (a duplicate dropped by x-message-deduplication;
                its queue is the deduplicating queue, or
                ``amq.x-deduplication:<exchange>`` for the exchange type)
at              INTEGER: when (ms), from the WAL record
consumer_tag    TEXT: for ``delivered``: the consumer tag ("" = basic.get);
                NULL for other events
delivery_count  INTEGER: for ``delivered``: 1 for the first delivery, 2 for
                the first redelivery, ...; NULL for other events
==============  ==============================================================

Table ``meta`` (key TEXT PRIMARY KEY, value): ``schema_version``;
``wal_segment``, ``wal_offset``, ``wal_length``: the WAL Position of the
last record applied (written in the same transaction as its rows, so the
database and its watermark never disagree); ``mode``: ``full`` or
``metadata-only`` (bodies are not being stored because the mirror fell
behind); ``bodies_missing``: how many messages were stored without their
body in metadata-only mode (bodies within the limit, not empty);
``body_limit``: the body size limit in bytes; ``next_event``: the id the
next event gets.

Indexes (each one costs every insert; these are what the queries of
``query.py`` need, measured at 10 million rows in docs/message-database.md):
``message_rows`` by message_id and correlation_id (partial: non-NULL only),
published_at, (queue, state, published_at), finished_at (partial, for
retention); ``message_queues`` by (queue, published_at). Schema 1 (bodies in
``messages``, rowid events, indexes by state and exchange) is migrated in
place at open (migrate.py).
"""

from __future__ import annotations

SCHEMA_VERSION = 2

#: every value of message_events.event
EVENTS = ("routed", "delivered", "requeued", "acked", "rejected", "expired",
          "dead-lettered", "purged", "dropped", "deleted", "deduplicated")
#: events after which the message is still in the queue
READY_EVENTS = frozenset(("routed", "requeued"))
UNACKED_EVENTS = frozenset(("delivered",))
#: every value of messages.state
STATES = ("queued", "delivered", "acked", "rejected", "expired", "dead-lettered",
          "purged", "dropped", "deleted", "deduplicated", "unrouted")

MODE_FULL = "full"
MODE_METADATA_ONLY = "metadata-only"

#: the message columns a MESSAGE record fills, in insert order
MESSAGE_COLUMNS = ("id", "vhost", "exchange", "routing_key", "queue_count", "message_id",
                   "correlation_id", "content_type", "content_encoding", "type", "app_id",
                   "user_id", "timestamp", "priority", "expiration", "delivery_mode",
                   "reply_to", "headers", "body_size", "body", "published_at", "state",
                   "finished_at")
#: the property columns, in the order ``rows.decode_properties`` returns them
PROPERTY_COLUMNS = MESSAGE_COLUMNS[5:18]
EVENT_COLUMNS = ("id", "message", "queue", "event", "at", "consumer_tag", "delivery_count")

_ISO = "strftime('%Y-%m-%dT%H:%M:%fZ', {0} / 1000.0, 'unixepoch')"

#: the columns of table message_rows, in order (the view's minus body, plus queue)
ROW_COLUMNS = tuple(c for c in MESSAGE_COLUMNS if c != "body") + ("queue",)

#: the tables and indexes of a schema-2 database (migrate.py brings a
#: schema-1 file to the same, before VIEWS are made)
TABLES = """
CREATE TABLE IF NOT EXISTS message_rows (
    id               INTEGER PRIMARY KEY,
    vhost            TEXT NOT NULL,
    exchange         TEXT NOT NULL,
    routing_key      TEXT NOT NULL,
    queue_count      INTEGER NOT NULL,
    message_id       TEXT,
    correlation_id   TEXT,
    content_type     TEXT,
    content_encoding TEXT,
    type             TEXT,
    app_id           TEXT,
    user_id          TEXT,
    timestamp        INTEGER,
    priority         INTEGER,
    expiration       TEXT,
    delivery_mode    INTEGER,
    reply_to         TEXT,
    headers          TEXT,
    body_size        INTEGER NOT NULL,
    published_at     INTEGER NOT NULL,
    state            TEXT NOT NULL,
    finished_at      INTEGER,
    queue            TEXT
);
CREATE INDEX IF NOT EXISTS messages_message_id ON message_rows(message_id)
    WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_correlation_id ON message_rows(correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_published_at ON message_rows(published_at);
CREATE INDEX IF NOT EXISTS messages_queue_state ON message_rows(queue, state, published_at);
CREATE INDEX IF NOT EXISTS messages_finished_at ON message_rows(finished_at)
    WHERE finished_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS message_bodies (
    id   INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);

CREATE TABLE IF NOT EXISTS message_queues (
    message      INTEGER NOT NULL,
    queue        TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    PRIMARY KEY (message, queue)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_queues_queue ON message_queues(queue, published_at);

CREATE TABLE IF NOT EXISTS message_events (
    id             INTEGER NOT NULL,
    message        INTEGER NOT NULL,
    queue          TEXT NOT NULL,
    event          TEXT NOT NULL,
    at             INTEGER NOT NULL,
    consumer_tag   TEXT,
    delivery_count INTEGER,
    PRIMARY KEY (message, id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
"""

VIEWS = f"""
CREATE VIEW IF NOT EXISTS messages AS
    SELECT r.id, r.vhost, r.exchange, r.routing_key, r.queue_count, r.message_id,
           r.correlation_id, r.content_type, r.content_encoding, r.type, r.app_id, r.user_id,
           r.timestamp, r.priority, r.expiration, r.delivery_mode, r.reply_to, r.headers,
           r.body_size, b.body, r.published_at, r.state, r.finished_at, r.queue
    FROM message_rows r LEFT JOIN message_bodies b ON b.id = r.id;
CREATE VIEW IF NOT EXISTS messages_iso AS
    SELECT *, {_ISO.format('published_at')} AS published_at_iso,
              {_ISO.format('finished_at')} AS finished_at_iso
    FROM messages;
CREATE VIEW IF NOT EXISTS message_events_iso AS
    SELECT *, {_ISO.format('at')} AS at_iso FROM message_events;
"""

SCHEMA = TABLES + VIEWS

#: pragmas of the writer's connection. synchronous=NORMAL: a power loss may
#: lose the last transactions, never corrupt the file; the watermark rolls
#: back with them, so the facade feeds those records again at start.
#: cache_size: 8 MiB of page cache (64 MiB cost the broker 50 MB of RSS in
#: bench/deep_queue.py for the same mirror throughput).
#: pragmas of a new database file, before its first table (page size, see
#: docs/message-database.md, "How fast it applies")
NEW_DATABASE_PRAGMAS = ("PRAGMA page_size=65536",)
WRITER_PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                  "PRAGMA busy_timeout=5000", "PRAGMA cache_size=-8192",
                  "PRAGMA temp_store=MEMORY")
