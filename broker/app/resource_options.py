"""The command-line options of the resource alarms and limits
(docs/alarms.md): sizes in bytes with RabbitMQ's units, the memory
watermark as a fraction or a size, the connection limit. ``broker.app.cli``
adds ``RESOURCE_OPTIONS`` to its ``serve`` options; the same parsers check
the ``LEVERET_*`` variables."""

from __future__ import annotations

import argparse

#: RabbitMQ's size units (rabbitmq.com/configure.html, "memory and disk
#: limits"): binary for k/kiB/M/MiB/G/GiB, decimal for kB/MB/GB
_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30,
          "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def byte_size(text: str) -> int:
    """An argparse ``type`` accepting a size in bytes >= 0, with an
    optional RabbitMQ unit: ``50000000``, ``50MB``, ``512MiB``, ``2G``."""
    raw = text.strip()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").strip()
    unit = raw[len(digits):].strip().lower()
    if not digits.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size in bytes (e.g. 50000000, 50MB, 512MiB): {text!r}")
    return int(digits) * _UNITS[unit]


def watermark(text: str) -> float:
    """An argparse ``type`` for ``--memory-high-watermark``: a fraction
    in [0, 1] of the memory available (``0.4``), or an absolute size above
    1 byte (``1073741824``, ``1GiB``) as RabbitMQ's
    ``vm_memory_high_watermark.relative`` / ``.absolute``."""
    try:
        value = float(text)
    except ValueError:
        return float(byte_size(text))
    if 0 <= value <= 1:
        return value
    if 1 < value < 2**63 and value == int(value):
        return float(int(value))
    raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1 or a size in bytes, got {text}")


def _connection_limit(text: str) -> int:
    """An argparse ``type`` accepting a number of connections, 0 (no limit) or more."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be between 0 and {2**31 - 1}, got {value}")
    return value


#: (config field, flag, metavar, type, help), as broker.app.cli.SERVE_OPTIONS
RESOURCE_OPTIONS = (
    ("memory_high_watermark", "--memory-high-watermark", "F|B", watermark,
     "publishers are blocked above this memory use: a fraction of the machine's (or cgroup's) "
     "memory, or bytes (units as 1GiB, 512MB)"),
    ("disk_free_limit", "--disk-free-limit", "B", byte_size,
     "publishers are blocked when the data directory's disk has less free space, bytes "
     "(never below two WAL segments)"),
    ("max_connections", "--max-connections", "N", _connection_limit,
     "most client connections open at once; connection.open beyond gets 530 (0: no limit)"),
)
