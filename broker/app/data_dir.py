"""The start-up check of the data directory, made before any recovery work:
the broker either can create, read and write everything it keeps there, or
stops at once with one line that names the path and the cause (exit status
``EXIT_DATA_DIR``), instead of a traceback from deep inside recovery or an
error that blames the listening address.

What it checks: the path is a directory (created with its parents when
missing); a file can be created and removed in it; each file the broker
keeps there (``topology.db``, ``messages.db``, the WAL segments ...) opens
for reading and writing; ``topology.db`` is an SQLite database. It tries the operations rather than asking
``os.access``, so that a read-only file system or an immutable directory is
found as well as a wrong owner or mode.
"""

from __future__ import annotations

import os
from pathlib import Path

#: exit status of the broker when its data directory cannot be used
EXIT_DATA_DIR = 5

#: sub-directories whose files are checked too (the WAL segments)
_SUBDIRECTORIES = ("wal",)
#: the SQLite file the broker cannot start without (the durable topology),
#: and how every SQLite database file begins (sqlite.org/fileformat.html, 1.3)
_TOPOLOGY = "topology.db"
_SQLITE_MAGIC = b"SQLite format 3\x00"


class DataDirError(Exception):
    """The data directory cannot be used; the message is the one line the
    broker logs (it names the path and the cause)."""


def check_data_dir(path: Path) -> None:
    """Make sure ``path`` is a directory this process can use; create it
    (and its parents) when missing. Raises DataDirError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DataDirError(f"data directory {path} is not a directory (it is a file)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"data directory {path} cannot be created: {_cause(exc)}") from None
    for directory in (path, *(path / name for name in _SUBDIRECTORIES)):
        if directory.is_dir():
            _check_directory(path, directory)
    _check_sqlite(path, path / _TOPOLOGY)


def _check_sqlite(data_dir: Path, file: Path) -> None:
    """A non-empty ``file`` must start as an SQLite database does (an empty
    one is a new database to SQLite)."""
    try:
        with open(file, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise DataDirError(f"data directory {data_dir}: cannot read {file}: {_cause(exc)}") from None
    if head and head != _SQLITE_MAGIC:
        raise DataDirError(f"data directory {data_dir}: {file} is not an SQLite database (damaged, or "
                           f"not a file of Leveret's)")


def _check_directory(data_dir: Path, directory: Path) -> None:
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise DataDirError(f"data directory {data_dir}: cannot read {directory}: {_cause(exc)}") from None
    probe = directory / f".leveret-write-check-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise DataDirError(f"data directory {data_dir}: {directory} is not writable: {_cause(exc)}") from None
    for name in names:
        file = directory / name
        if not file.is_file():  # the control socket, a sub-directory
            continue
        try:
            os.close(os.open(file, os.O_RDWR))
        except OSError as exc:
            raise DataDirError(f"data directory {data_dir}: cannot open {file} for reading and writing: "
                               f"{_cause(exc)}") from None


def _cause(exc: OSError) -> str:
    """The cause without the path (the message names it already)."""
    return exc.strerror or str(exc)
