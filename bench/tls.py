#!/usr/bin/env python3
"""amqps benchmark: the ``publish`` and ``pubsub`` scenarios of the suite
(bench/scenarios/), unchanged, with every connection over TLS, against
Leveret's amqps listener and the reference RabbitMQ's
(``reference-rabbitmq url-tls``, CA from ``reference-rabbitmq ca``).

    PYTHONPATH=. .venv/bin/python bench/tls.py                  # ~2 minutes
    PYTHONPATH=. .venv/bin/python bench/tls.py --sizes 1024 --scenarios pubsub
    PYTHONPATH=. .venv/bin/python bench/tls.py --smoke          # seconds, Leveret only

Leveret gets a fresh process per scenario and size (``--fsync always``,
a server certificate made by ``openssl`` for the run, no client
certificate asked for), then the same scenario runs against RabbitMQ. The
clients check each server's certificate against its CA. Prints the
Leveret/RabbitMQ table and appends every row to
``bench/results/tls.jsonl``; the figures in docs/performance.md ("TLS")
come from it. Exit status 1 if a correctness check failed.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import amqp_client, report  # noqa: E402
from bench.run import PROFILES, git_commit, run_one  # noqa: E402
from bench.scenarios import SCENARIOS  # noqa: E402
from bench.targets import REFERENCE_TOOL, Leveret, Reference  # noqa: E402
from tests.interop.server_process import free_port  # noqa: E402
from tests.interop.tls_certs import make_pki  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tls.jsonl"
#: seconds a client waits on RabbitMQ's socket: over TLS on a busy machine
#: its flow control stopped reading an unpaced publisher for more than the
#: default 60 s (connection state "flow", queue nearly empty)
REFERENCE_TIMEOUT = 600.0
TLS_SCENARIOS = ("publish", "pubsub")


def reference_tls() -> tuple[str, str] | None:
    """The reference RabbitMQ's amqps URL and CA file, or None when the
    tool cannot tell."""
    try:
        url, ca = (subprocess.run(["bash", str(REFERENCE_TOOL), what], capture_output=True, text=True,
                                  timeout=30, check=True).stdout.strip() for what in ("url-tls", "ca"))
    except (OSError, subprocess.SubprocessError):
        return None
    return (url, ca) if url and ca else None


def leveret_tls(fsync: str, pki) -> Leveret:
    """A Leveret whose ``port`` is its amqps listener (plain AMQP stays on,
    unused by the scenario)."""
    tls_port = free_port()
    target = Leveret(fsync=fsync, extra_args=["--tls-port", str(tls_port), *pki.server_args()])
    target.port = tls_port
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny counts, Leveret only, nothing written")
    parser.add_argument("--no-reference", action="store_true", help="do not run against RabbitMQ")
    parser.add_argument("--scenarios", default=",".join(TLS_SCENARIOS), help="publish and/or pubsub")
    parser.add_argument("--sizes", default="16,1024", help="body sizes, bytes (>= 16)")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if set(scenarios) - set(TLS_SCENARIOS) or any(s < 16 for s in sizes):
        parser.error(f"scenarios are {', '.join(TLS_SCENARIOS)}; sizes >= 16")
    params = PROFILES["smoke" if args.smoke else "full"]
    notes: list[str] = ["every connection over TLS (amqps); Leveret: TLS 1.3 with the standard library's ssl"]
    reference = None
    if not (args.smoke or args.no_reference):
        found = reference_tls()
        if found is None:
            notes.append(f"SKIPPED the reference runs: {REFERENCE_TOOL} gave no url-tls/ca")
        else:
            reference = (Reference(found[0]), found[1])
    started, run_id = time.monotonic(), "tls" + datetime.datetime.now().strftime("%H%M%S")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="leveret-tls-bench-") as tmp:
        pki = make_pki(Path(tmp))
        for name in scenarios:
            module = SCENARIOS[name]
            for size in sizes:
                amqp_client.use_tls(str(pki.ca.cert))
                leveret = leveret_tls(module.FSYNC, pki)
                try:
                    leveret.start()
                    rows += run_one(module, leveret, size, params, run_id, notes)
                finally:
                    leveret.stop()
                if reference is not None:
                    amqp_client.use_tls(reference[1], timeout=REFERENCE_TIMEOUT)
                    rows += run_one(module, reference[0], size, params, run_id, notes)
    amqp_client.use_tls(None)
    elapsed = time.monotonic() - started
    meta = {"run_id": run_id, "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "mode": "smoke" if args.smoke else "full", "transport": "amqps"}
    print("\n" + report.ratio_table(rows) + "\n\n" + report.resource_table(rows), flush=True)
    if not args.smoke:
        report.append_jsonl(RESULTS, rows, meta)
    failed = [r for r in rows if not r.get("ok")]
    print(f"\n{len(rows)} runs in {elapsed:.0f} s; {len(failed)} failed correctness checks; "
          + "; ".join(notes), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
