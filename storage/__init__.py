"""Durability: WAL segments, recovery and the message database mirror.

The broker calls only the facade (``Storage``); ``storage.wal`` is the
write-ahead log library, ``storage.mirror`` the message database."""

from storage.facade import Storage

__all__ = ["Storage"]
