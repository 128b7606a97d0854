"""Profile Leveret under one benchmark scenario with cProfile.

    PYTHONPATH=. .venv/bin/python bench/profile_broker.py pubsub --size 16 [--top 25] [--out prof.out]

Starts ``python -m cProfile -o <file> -m broker`` (fresh temporary data dir,
``--fsync always``), runs the scenario's full-profile variant(s) against it
(``bench/scenarios/<name>.py``), stops the broker with SIGTERM so cProfile
writes its file, and prints the top functions by own time (tottime) and by
cumulative time. cProfile slows the broker (about 2x), so read the shares,
not the rates. The temporary data dir (and the profile, unless ``--out``) is removed.
"""

from __future__ import annotations

import argparse
import io
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import PROFILES, summary_line  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from bench.scenarios.common import Ctx  # noqa: E402
from tests.interop.server_process import free_port, stop_process, wait_listening  # noqa: E402


class ProfiledLeveret:
    """Leveret under cProfile; ``stop()`` sends SIGTERM to this process only.
    ``extra_args``: more broker options (e.g. ``["--mirror", "off"]``);
    also used by bench/ttl_expiry.py and bench/delayed_exchange.py
    (``--profile``)."""

    name = "leveret"
    fsync = "always"

    def __init__(self, tmp: Path, out: Path, extra_args: list[str] | None = None):
        self.host, self.port, self.tmp, self.out = "127.0.0.1", free_port(), tmp, out
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 20.0) -> "ProfiledLeveret":
        cmd = [sys.executable, "-m", "cProfile", "-o", str(self.out), "-m", "broker", "--host", self.host,
               "--port", str(self.port), "--data-dir", str(self.tmp / "data"), "--fsync", "always",
               "--log-level", "warning", *self.extra_args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT)
        if wait_listening(self.proc, self.host, self.port, timeout):
            return self
        self.stop()
        raise RuntimeError("profiled broker did not listen")

    def stop(self) -> None:
        """SIGTERM (cProfile writes its file on exit); SIGKILL after 60 s."""
        stop_process(self.proc, 60)

    kill = stop


def print_profile(out: Path, top: int) -> None:
    """Print the ``top`` functions of the cProfile file ``out`` by own time
    and by cumulative time."""
    for key in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(out), stream=text).sort_stats(key).print_stats(top)
        print(f"\n== top {top} by {key} ==\n" + text.getvalue().split("\n\n", 2)[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--size", type=int, default=16, help="body bytes")
    parser.add_argument("--top", type=int, default=25, help="functions to print")
    parser.add_argument("--out", type=Path, help="keep the cProfile file here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="leveret-profile-"))
    out = args.out or tmp / "broker.prof"
    broker = ProfiledLeveret(tmp, out)
    try:
        broker.start()
        ctx = Ctx(broker, args.size, PROFILES["full"], f"profile.{args.scenario}", [])
        for row in SCENARIOS[args.scenario].run(ctx):
            print(summary_line({"broker": "leveret (cProfile)", "scenario": args.scenario, "size": args.size, **row}))
        broker.stop()
        print_profile(out, args.top)
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
