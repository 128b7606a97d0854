"""The message database: an SQLite mirror of the WAL that people can query.

::

    from storage.mirror import MessageMirror, find, show, rebuild

    supervisor = MirrorSupervisor(db_path(data_dir), wal, options)  # the broker's side:
    await supervisor.start(); ...; await supervisor.stop()          # supervisor.py
    # the process (process.py) runs WalFollower (follower.py) over a MessageMirror:
    mirror = MessageMirror(data_dir / "messages.db")   # see writer.py for options
    await mirror.start()                               # mirror.watermark: last applied Position
    mirror.feed(record_type, payload, position)        # O(1), durable records only
    mirror.lag_seconds(); mirror.stats
    await mirror.stop()                                # applies what was fed, closes

    find(db_path, queue="orders", state="queued", headers={"x-tenant": "a"})  # -> [dict]
    show(db_path, 42)                                  # -> dict with "events", or None
    rebuild(data_dir)                                  # from <data_dir>/wal, broker stopped

The schema and the state rule are documented in ``schema.py``.
"""

from storage.mirror.query import MirrorNotFound, count, find, lookup, show, to_ms
from storage.mirror.rebuild import DB_NAME, WAL_DIR, RebuildError, db_path, rebuild, rebuild_async
from storage.mirror.schema import EVENTS, SCHEMA_VERSION, STATES
from storage.mirror.writer import MessageMirror

__all__ = ["MessageMirror", "count", "find", "lookup", "show", "to_ms", "rebuild", "rebuild_async",
           "db_path", "RebuildError", "MirrorNotFound", "DB_NAME", "WAL_DIR", "EVENTS", "STATES",
           "SCHEMA_VERSION"]
