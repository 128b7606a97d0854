"""The message database (``<data_dir>/messages.db``, storage/mirror) as the
broker application uses it, so that ``broker.app`` imports no ``storage``
module (docs/architecture.md, "Layers"):

* the process that follows the WAL and applies it to the database, run by
  the server (``keep_wal_segments``, ``message_database_process``);
* what ``leveret messages find|show`` (broker/app/cli_messages.py) and
  ``leveret db rebuild`` (broker/app/cli_tools.py) run: ``find``,
  ``count``, ``lookup``, ``show``, ``rebuild``, ``db_path``, ``to_ms``,
  the column names (``FIND_COLUMNS``, ``DEFAULT_COLUMNS``,
  ``NUMERIC_COLUMNS``), ``COUNT_CAP``, the states (``STATES``) and the renderers
  ``cell``, ``format_message``, ``to_json``, re-exported with the errors
  they raise (``MirrorNotFound``, ``RebuildError``, ``WalError``).
"""

from __future__ import annotations

from pathlib import Path

from broker.persistence.store import Store
from storage.mirror import (STATES, MirrorNotFound, RebuildError, count, db_path, find, lookup, rebuild, show,
                            to_ms)
from storage.mirror.query import COUNT_CAP, FIND_COLUMNS
from storage.mirror.render import DEFAULT_COLUMNS, NUMERIC_COLUMNS, cell, format_message, to_json
from storage.mirror.supervisor import MirrorSupervisor
from storage.wal import WalError

__all__ = ["COUNT_CAP", "DEFAULT_COLUMNS", "FIND_COLUMNS", "MirrorNotFound", "MirrorSupervisor", "NUMERIC_COLUMNS",
           "RebuildError", "STATES", "WalError", "cell", "count", "db_path", "find", "format_message",
           "keep_wal_segments", "lookup", "message_database_process", "rebuild", "show", "to_json", "to_ms"]


def keep_wal_segments(store: Store) -> None:
    """Make the WAL of ``store`` keep every segment (deletion floor 0)
    until the message database process reports the ones it still needs:
    call it before recovery, as the process may be behind the WAL."""
    store.backend.wal.set_deletion_floor(0)


def message_database_process(store: Store, path: Path, options: dict, *, log_level: str,
                             log_format: str | None) -> MirrorSupervisor:
    """The supervisor (not started yet) of the process that applies the
    WAL of ``store`` to the database at ``path``. ``options``:
    ``storage.mirror.MessageMirror`` keyword arguments
    (``Config.mirror_options``); ``log_level`` / ``log_format``: the
    broker's. ``start()`` raises OSError when the process cannot be
    spawned; ``stop()`` waits (bounded) for it to apply the WAL up to its
    final durable end."""
    return MirrorSupervisor(path, store.backend.wal, options, log_level=log_level, log_format=log_format)
