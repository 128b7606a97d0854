"""Where the control socket lives, and a way to reach it from any path.

A Unix socket address holds at most 107 bytes of path on Linux (``sun_path``
is 108 bytes with its NUL); a data directory deep in a file system (a
test's temporary directory, a container volume) can be longer. Such a path
is reached through the directory's descriptor:
``/proc/self/fd/<fd>/leveret.sock`` resolves to the same file (Linux).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: the socket's name inside the data directory
SOCKET_NAME = "leveret.sock"
#: longest path a sockaddr_un holds (Linux: 108 bytes with the NUL)
MAX_SUN_PATH = 107


def socket_path(data_dir: Path) -> Path:
    """``<data_dir>/leveret.sock``."""
    return Path(data_dir) / SOCKET_NAME


@contextmanager
def reachable(path: Path) -> Iterator[str]:
    """Yield an address for ``bind``/``connect`` that names ``path``: the
    path itself when short enough, else a ``/proc/self/fd`` path through a
    descriptor of its directory, open while the context lasts. Raises
    OSError (FileNotFoundError, PermissionError...) when the directory
    cannot be opened."""
    if len(os.fsencode(path)) <= MAX_SUN_PATH:
        yield str(path)
        return
    fd = os.open(path.parent, getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)
