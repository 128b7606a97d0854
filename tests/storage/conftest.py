"""Helpers for the WAL tests: real files under tmp_path, real fsync."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from storage.wal import WriteAheadLog
from storage.wal.segment import segment_name


def make_payload(i: int, size: int | None = None) -> bytes:
    """Deterministic payload for record number ``i`` (default size varies
    with ``i`` between 40 and ~1.3 KiB)."""
    if size is None:
        size = 40 + (i * 37) % 1300
    seed = hashlib.blake2b(struct.pack(">Q", i), digest_size=32).digest()
    return (struct.pack(">Q", i) + seed * (size // 32 + 1))[:size]


def open_wal(directory: Path, **kwargs) -> tuple[WriteAheadLog, list]:
    """A WriteAheadLog opened on ``directory`` and its replayed records."""
    wal = WriteAheadLog(directory, **kwargs)
    return wal, list(wal.open())


def seg_path(directory: Path, number: int) -> Path:
    return Path(directory) / segment_name(number)


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes((b[0] ^ 0x40,)))


@pytest.fixture
def wal_dir(tmp_path) -> Path:
    return tmp_path / "wal"
