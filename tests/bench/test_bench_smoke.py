"""The benchmark suite's smoke mode as a test, so CI runs it: every
scenario against a fresh Leveret with tiny counts (about 10 s), checking
only correctness (every message exactly once, in order, intact), never
speed. ``bench/run.py --smoke`` writes no results and no docs."""

from __future__ import annotations

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
