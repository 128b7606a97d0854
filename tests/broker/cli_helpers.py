"""Helpers of the command-line tests: a data directory holding the message
database scenario (tests/storage/test_mirror_scenario.py), and running
``leveret`` as a user does (``python -m broker``, without the caller's
``LEVERET_*`` variables)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A data directory with the scenario's WAL and its live-fed database
    (tests/storage/test_mirror_scenario.py lists the messages)."""
    import asyncio

    from tests.storage.test_mirror_scenario import build_database

    path = tmp_path_factory.mktemp("leveret-data")
    asyncio.run(build_database(path))
    return path


def run_leveret(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``leveret ARGS`` run to the end (60 s at most), text output captured;
    ``env`` adds variables."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LEVERET_")}
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env=environ)


