"""The benchmark suite's smoke mode as a test, so CI runs it: every
scenario against a fresh Leveret with tiny counts (about 10 s), checking
only correctness (every message exactly once, in order, intact), never
speed. ``bench/run.py --smoke`` writes no results and no docs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_bench_smoke_passes():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
    assert "0 failed correctness checks" in proc.stdout


@pytest.mark.timeout(120)
def test_ttl_expiry_bench_runs():
    """bench/ttl_expiry.py at a tiny count: every message dead-lettered,
    none early (its exit status), the broker's own lateness reported."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ttl_expiry.py"), "--count", "3000",
                           "--min-ttl", "0.2", "--max-ttl", "0.6", "--no-record"], cwd=ROOT,
                          capture_output=True, text=True, timeout=110, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["arrived"] == 3000 and result["early"] == 0
    assert "from_confirm_worst_ms" in result
