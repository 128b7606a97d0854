"""Durability: WAL segments, recovery and the message database mirror.

For now only the facade the broker calls exists: messages are held in
memory. The write-ahead log lands with issue 3 (see README)."""

from storage.facade import Storage

__all__ = ["Storage"]
