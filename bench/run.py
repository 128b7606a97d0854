#!/usr/bin/env python3
"""Leveret's benchmark suite, side by side with the reference RabbitMQ (issue 5).

    make bench                                          # everything, ~7 minutes
    PYTHONPATH=. .venv/bin/python bench/run.py          # the same
    PYTHONPATH=. .venv/bin/python bench/run.py --smoke  # ~10 s, correctness only, Leveret only
    PYTHONPATH=. .venv/bin/python bench/run.py --scenarios pubsub,drain --sizes 1024 --no-reference

First the load generator's ceiling against ``bench.sink``; then for every
scenario (``bench/scenarios/``) and body size: a fresh Leveret (temporary
data dir, ``--fsync always``), then the same scenario against the reference
RabbitMQ right after (``../shared/tools/reference-rabbitmq start``; skipped
with a note when it does not answer, or with ``--no-reference``). Every run
checks that each message arrived exactly once, in order, intact.

Prints the Leveret/RabbitMQ ratio table (with the issue's targets), broker
CPU and RSS, appends every row to ``bench/results/suite.jsonl`` and, after a
full run of every scenario, rewrites the generated part of
``docs/performance.md``. Exit status 1 if any correctness check failed
(speed never fails the run).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.scenarios import CEILING, SCENARIOS  # noqa: E402
from bench.scenarios.common import Ctx, wait_quiet  # noqa: E402
from bench.targets import REFERENCE_TOOL, REFERENCE_URL, Leveret, Reference, Sink  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "suite.jsonl"
DOC = ROOT / "docs" / "performance.md"
SIZES = (16, 1024)
# times in seconds, rates in msg/s, counts in messages; dicts are keyed by body size (bytes)
PROFILES = {
    "full": dict(publish_s=3.0, confirm_count={16: 120_000, 1024: 100_000}, confirm_w1_s=2.0,
                 pubsub_s=4.0, paced_rate=10_000, paced_s=4.0, fanout_s=2.5, fanout_queues=10,
                 fanout_workers=2, drain_count=200_000, many_conns=1000, many_workers=4, many_rate=1.0,
                 many_s=4.0, many_settle_s=2.0, many_idle_s=2.0, ceiling_consume=400_000, idle_timeout=5.0,
                 max_count=None, grace_s=0.2, quiet_s=3.0),
    "smoke": dict(publish_s=0.2, confirm_count=2000, confirm_w1_s=0.2, pubsub_s=0.2, paced_rate=2000,
                  paced_s=0.3, fanout_s=0.2, fanout_queues=10, fanout_workers=2, drain_count=2000,
                  many_conns=20, many_workers=2, many_rate=10.0, many_s=0.4, many_settle_s=0.1,
                  many_idle_s=0.1, ceiling_consume=20_000, idle_timeout=3.0, max_count=5000, grace_s=0.05,
                  quiet_s=0.0),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny counts, correctness only, Leveret only, nothing written (~10 s)")
    parser.add_argument("--no-reference", action="store_true", help="do not run against RabbitMQ")
    parser.add_argument("--start-reference", action="store_true",
                        help=f"start the reference RabbitMQ with {REFERENCE_TOOL} if it is not running")
    parser.add_argument("--reference-url", default=REFERENCE_URL)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="body sizes, bytes (>= 16)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the sink ceiling runs")
    parser.add_argument("--no-docs", action="store_true", help=f"do not rewrite {DOC.relative_to(ROOT)}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines file to append rows to")
    args = parser.parse_args(argv)
    args.scenario_list = [s for s in args.scenarios.split(",") if s]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    args.size_list = [int(s) for s in args.sizes.split(",") if s]
    if unknown or any(s < 16 for s in args.size_list):
        parser.error(f"unknown scenario(s) {sorted(unknown)} or a size below 16 bytes")
    return args


def git_commit() -> str:
    """HEAD's short hash, "+dirty" if code (not docs or results) differs from it."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs",
                            ":!bench/results"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return out.stdout.strip() + ("+dirty" if dirty else "")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 1e6
    rabbit = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True,
                            text=True).stdout.strip() or "?"
    return (f"{os.cpu_count()} cores ({model}), {mem:.0f} GB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, RabbitMQ {rabbit} (Debian package)")


def run_one(module, target, size: int, params: dict, run_id: str, notes: list) -> list[dict]:
    """One scenario against one started target; failures become a failed row."""
    ctx = Ctx(target, size, params, f"bench.{run_id}.{target.name}.{size}", notes)
    base = {"scenario": module.NAME, "size": size, "broker": target.name,
            "machine_busy_pct": wait_quiet(timeout=params["quiet_s"])}
    if target.name == "leveret":
        base["fsync"] = target.fsync
    try:
        rows = [{**base, **row} for row in module.run(ctx)]
    except Exception as exc:  # reported as a failed row; the suite goes on
        detail = traceback.format_exc(limit=3)
        if isinstance(target, Leveret):
            detail += f"\nbroker {'alive' if target.alive() else 'DEAD'}; log tail:\n{target.log_tail()}"
        rows = [{**base, "variant": "(failed)", "kind": None, "ok": False, "problems": [repr(exc)],
                 "error": detail}]
    if isinstance(target, Leveret) and not target.alive():
        for row in rows:
            row["ok"] = False
            row.setdefault("problems", []).append("Leveret process died")
    for row in rows:
        print(summary_line(row), flush=True)
        if not row.get("ok") and row.get("error"):
            print(row["error"], flush=True)
    return rows


def summary_line(row: dict) -> str:
    parts = [f"{row['broker']:>8} {row['scenario']:>8} {row['size']:>5} B  {row['variant']:<36}"]
    for key, label in (("rate", "msg/s"), ("p50_ms", "ms p50"), ("p99_ms", "ms p99"), ("rss_idle_mb", "MB idle"),
                       ("per_conn_kb", "kB/conn"), ("cpu_pct", "% CPU"), ("rss_mb", "MB RSS"),
                       ("producer_cpu_pct", "% producer"), ("consumer_cpu_pct", "% consumer")):
        if row.get(key) is not None:
            parts.append(f"{report.fmt(row[key], key)} {label}")
    parts.append("ok" if row.get("ok") else "FAILED " + "; ".join(map(str, row.get("problems", [])))[:400])
    return "  ".join(parts)


def main(argv=None) -> int:
    args = parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    params = PROFILES[mode]
    started = time.monotonic()
    run_id = datetime.datetime.now().strftime("%H%M%S")
    notes: list[str] = []
    reference = None
    if args.smoke or args.no_reference:
        notes.append("reference RabbitMQ not run (" + ("--smoke" if args.smoke else "--no-reference") + ")")
    else:
        reference = Reference(args.reference_url)
        ok, why = reference.available()
        if not ok and args.start_reference:
            subprocess.run([str(REFERENCE_TOOL), "start"], check=False)
            reference = Reference(args.reference_url)
            ok, why = reference.available()
        if not ok:
            notes.append(f"SKIPPED the reference runs: {why}")
            print(f"NOTE: {notes[-1]}", flush=True)
            reference = None
        elif reference.pid is None:
            notes.append("reference RabbitMQ pid unknown (no pid file): its CPU/RSS are not reported")

    rows: list[dict] = []
    if not args.no_ceiling:
        for size in args.size_list:
            sink = Sink(size).start()
            try:
                rows += run_one(CEILING, sink, size, params, run_id, notes)
            finally:
                sink.stop()
    for name in args.scenario_list:
        module = SCENARIOS[name]
        for size in args.size_list:
            leveret = Leveret(fsync=module.FSYNC)
            try:
                leveret.start()
                rows += run_one(module, leveret, size, params, run_id, notes)
            finally:
                leveret.stop()
            if reference is not None:
                rows += run_one(module, reference, size, params, run_id, notes)

    elapsed = time.monotonic() - started
    failed = [r for r in rows if not r.get("ok")]
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {"run_id": run_id, "time": now.isoformat(timespec="seconds"), "commit": git_commit(), "mode": mode}
    command = "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    tables = report.render(rows, notes, meta, machine(), command.strip(), elapsed)
    print("\n" + tables, flush=True)
    if not args.smoke:
        report.append_jsonl(args.results, rows, meta)
        complete = set(args.scenario_list) == set(SCENARIOS) and not args.no_ceiling and reference is not None
        if complete and not args.no_docs:
            report.write_doc(DOC, tables)
            print(f"\nwrote {DOC.relative_to(ROOT)}; appended {len(rows)} rows to {args.results}", flush=True)
    print(f"\n{len(rows)} runs in {elapsed:.0f} s; {len(failed)} failed correctness checks", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
