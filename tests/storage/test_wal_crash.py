"""SIGKILL a process that appends and syncs; every record it reported as
synced must be back, intact and in order, after reopening. Even rounds kill
the child while it appends, odd rounds at a random time from its start (so
sometimes during its own recovery). The seed is in every failure message."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from storage.wal import TOPOLOGY

from tests.storage.conftest import make_payload, open_wal

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 8


def run_child_and_kill(directory: Path, seed: int, delay: float,
                       after_ready: bool) -> tuple[int, int | None]:
    """Start the child and SIGKILL it ``delay`` s after it has replayed the
    log (``after_ready``) or after starting it (which may land during its
    recovery). Returns (highest synced count it printed, replayed count it
    printed or None)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tests.storage.wal_crash_child",
                             str(directory), str(seed)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline() if after_ready else b""
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    synced, replayed = 0, None
    for line in (first + out).decode().split("\n")[:-1]:       # only complete lines
        word, number = line.split()
        if word == "synced":
            synced = int(number)
        else:
            replayed = int(number)
    return synced, replayed


def test_sigkill_loses_no_synced_record(tmp_path):
    directory = tmp_path / "wal"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    synced_total = 0
    present = 0
    for round_no in range(ROUNDS):
        after_ready = round_no % 2 == 0
        delay = rng.uniform(0.05, 0.35) if after_ready else rng.uniform(0.05, 0.5)
        synced, replayed = run_child_and_kill(directory, seed + round_no, delay, after_ready)
        where = f"seed {seed} round {round_no}"
        if replayed is not None:
            assert replayed == present, where    # the child saw what the last reopen saw
        wal, recs = open_wal(directory, segment_size=64 << 10)
        assert len(recs) >= synced, f"{where}: {synced} synced, {len(recs)} back"
        for i, rec in enumerate(recs):
            assert rec.type == TOPOLOGY and rec.payload == make_payload(i), f"{where}: record {i}"
        wal.close()
        synced_total = max(synced_total, synced)
        present = len(recs)
    assert synced_total > 0, f"seed {seed}: the child never got to sync anything"
    assert len(list(directory.glob("*.wal"))) > 1     # rollover happened under fire
