"""Tables from the suite's rows: the Leveret/RabbitMQ ratio table with the
issue-5 targets, broker CPU/RSS and checks, the sink ceiling; JSON lines
in bench/results/ and the generated part of docs/performance.md.

A row is a dict with ``scenario``, ``variant``, ``kind``, ``size`` (body
bytes), ``broker`` ("leveret", "rabbitmq", "sink") and its figures: ``rate``
(msg/s), ``p50_ms``/``p99_ms`` (ms), ``cpu_pct`` (% of one core),
``rss_mb`` (MB = 10^6 bytes), ``rss_idle_mb``, ``per_conn_kb`` (kB = 10^3 bytes).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

# metric -> (label, unit, "higher"/"lower" is better)
METRIC_INFO = {
    "rate": ("throughput", "msg/s", "higher"),
    "p50_ms": ("latency p50", "ms", "lower"),
    "p99_ms": ("latency p99", "ms", "lower"),
    "rss_idle_mb": ("RSS, connections idle", "MB", "lower"),
    "per_conn_kb": ("RSS per connection", "kB", "lower"),
    "cpu_pct": ("broker CPU", "% core", "lower"),
}
# kind -> [(metric, target)]; target: ("ratio", ">=", x) on Leveret/RabbitMQ, ("abs", "<=", x) on Leveret's figure
METRICS = {
    "publish": [("rate", ("ratio", ">=", 1.5))],
    "confirm_w1000": [("rate", ("ratio", ">=", 1.5))],
    "confirm_w1": [("p50_ms", ("abs", "<=", 1.0)), ("p99_ms", None), ("rate", None)],
    "pubsub": [("rate", ("ratio", ">=", 1.5))],
    "pubsub_paced": [("p50_ms", None), ("p99_ms", ("ratio", "<=", 1.0))],
    "fanout": [("rate", ("ratio", ">=", 1.5))],
    "drain": [("rate", ("ratio", ">=", 1.5))],
    "many_idle": [("rss_idle_mb", ("ratio", "<=", 1.0)), ("per_conn_kb", None)],
    "many_busy": [("cpu_pct", None), ("p50_ms", None), ("p99_ms", None)],
}
# ceiling kind -> the broker kinds whose best rate it must exceed
CEILING_OF = {"ceiling_publish": ("publish", "pubsub"), "ceiling_confirm": ("confirm_w1000",),
              "ceiling_consume": ("pubsub", "drain")}
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def fmt(value, metric: str = "") -> str:
    if value is None:
        return "—"
    if metric.endswith("_ms"):
        return f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, float) and value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def _key(row: dict) -> tuple:
    return row["scenario"], row["variant"], row["size"]


def _size(size: int) -> str:
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def _met(target, lev, ratio) -> str:
    if target is None:
        return ""
    kind, op, limit = target
    value = ratio if kind == "ratio" else lev
    goal = f"{'ratio' if kind == 'ratio' else 'Leveret'} {op} {limit:g}"
    if value is None:
        return f"{goal}: n/a"
    ok = value >= limit if op == ">=" else value <= limit
    return f"{goal}: {'yes' if ok else '**no**'}"


def _ratio(ratio, target) -> str:
    """Two decimals, or three when two would round onto the target's limit."""
    if ratio is None:
        return "—"
    if target and target[0] == "ratio" and abs(ratio - target[2]) < 0.005:
        return f"{ratio:.3f}"
    return f"{ratio:.2f}"


def ratio_table(rows: list[dict]) -> str:
    """Markdown: one line per scenario/variant/size/metric: Leveret, RabbitMQ, ratio, target."""
    lev = {_key(r): r for r in rows if r["broker"] == "leveret"}
    ref = {_key(r): r for r in rows if r["broker"] == "rabbitmq"}
    out = ["| scenario | variant | body | metric | Leveret | RabbitMQ | Leveret/RabbitMQ | target |",
           "|---|---|---|---|---:|---:|---:|---|"]
    for key, lrow in lev.items():
        rrow = ref.get(key, {})
        for metric, target in METRICS.get(lrow.get("kind"), []):
            label, unit, better = METRIC_INFO[metric]
            lv, rv = lrow.get(metric), rrow.get(metric)
            ratio = lv / rv if lv is not None and rv else None
            note = ""
            if metric == "rss_idle_mb" and rrow.get("extrapolated"):
                note = f" (extrapolated from {rrow['connections']:,})"
            elif rrow.get("connections") and rrow["connections"] != lrow.get("connections"):
                note = f" ({rrow['connections']:,} conns)"
            out.append(f"| {key[0]} | {key[1]} | {_size(key[2])} | {label} ({unit}, {better} is better) | "
                       f"{fmt(lv, metric)} | {fmt(rv, metric)}{note} | {_ratio(ratio, target)} | "
                       f"{_met(target, lv, ratio)} |")
    return "\n".join(out)


def _checks(row: dict | None) -> str:
    if not row:
        return "—"
    if row.get("ok"):
        c = row.get("checks") or {}
        return f"ok ({c['unique']:,} exactly once)" if "unique" in c else "ok"
    return "**FAILED**: " + "; ".join(map(str, row.get("problems") or [row.get("error", "?")]))[:300]


def _clients(row: dict) -> str:
    return f"{fmt(row.get('producer_cpu_pct'))} / {fmt(row.get('consumer_cpu_pct'))}"


def resource_table(rows: list[dict]) -> str:
    """Markdown: broker CPU (% of one core) and peak RSS per run, and the checks."""
    lev = {_key(r): r for r in rows if r["broker"] == "leveret"}
    ref = {_key(r): r for r in rows if r["broker"] == "rabbitmq"}
    out = ["| scenario | variant | body | Leveret CPU % | Leveret RSS MB | RabbitMQ CPU % | RabbitMQ RSS MB "
           "| client CPU % (producer / consumer), Leveret; RabbitMQ | Leveret checks | RabbitMQ checks |",
           "|---|---|---|---:|---:|---:|---:|---|---|---|"]
    for key, lrow in lev.items():
        rrow = ref.get(key) or {}
        out.append(f"| {key[0]} | {key[1]} | {_size(key[2])} | {fmt(lrow.get('cpu_pct'))} | {fmt(lrow.get('rss_mb'))} | "
                   f"{fmt(rrow.get('cpu_pct'))} | {fmt(rrow.get('rss_mb'))} | {_clients(lrow)}; {_clients(rrow)} | "
                   f"{_checks(lrow)} | {_checks(rrow or None)} |")
    return "\n".join(out)


def ceiling_table(rows: list[dict]) -> str:
    """Markdown: the load generator against the sink, and its headroom over
    the fastest broker figure it stands for."""
    out = ["| client process | body | against the sink (msg/s) | its CPU % | fastest broker figure (msg/s) | headroom |",
           "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        if r["broker"] != "sink":
            continue
        best = [x.get("rate") or 0 for x in rows if x["broker"] in ("leveret", "rabbitmq")
                and x.get("kind") in CEILING_OF.get(r["kind"], ()) and x["size"] == r["size"]]
        top = max(best, default=0)
        head = f"{r['rate'] / top:.1f}x" if top and r.get("rate") else "—"
        cpu = r.get("producer_cpu_pct", r.get("consumer_cpu_pct"))
        out.append(f"| {r['variant']} | {_size(r['size'])} | {fmt(r.get('rate'))} | {fmt(cpu)} | {fmt(top or None)} | "
                   f"{head} |")
    return "\n".join(out)


def append_jsonl(path: Path, rows: list[dict], meta: dict | None = None) -> None:
    """Append each of ``rows`` (with ``meta``'s keys first) to ``path`` as
    one JSON line; creates the directory."""
    meta = meta or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps({**meta, **row}, default=str) + "\n")


def write_doc(path: Path, body: str) -> None:
    """Replace the generated part of ``path`` (between the bench markers),
    keeping everything else; create the file if missing."""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    text = path.read_text() if path.exists() else "# Performance\n\n" + block + "\n"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    elif block not in text:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _first_variant(rows: list[dict], row: dict) -> str:
    return next(r["variant"] for r in rows if (r["broker"], r["scenario"], r["size"]) ==
                (row["broker"], row["scenario"], row["size"]))


def render(rows: list[dict], notes: list[str], meta: dict, machine: str, command: str, elapsed: float) -> str:
    """The whole report as markdown (also what goes into docs/performance.md)."""
    failed = [r for r in rows if not r.get("ok")]
    parts = [
        f"## Latest run: {meta['time']} (commit {meta['commit']}, {meta['mode']})",
        f"Machine: {machine}. Took {elapsed:.0f} s.",
        "Command, from the repository root: "
        + ("`make bench`, that is " if command == "bench/run.py" else "")
        + f"`PYTHONPATH=. .venv/bin/python {command}`. Leveret ran with `--fsync always` in every scenario; "
        "each scenario got a fresh Leveret, then the same scenario ran against the reference RabbitMQ "
        "(`../shared/tools/reference-rabbitmq start`, default configuration).",
        "### Leveret / RabbitMQ", ratio_table(rows),
        "### Broker CPU (% of one core, average over the measured phase) and peak RSS (MB), correctness",
        resource_table(rows),
        "### Load generator ceiling (against bench/sink.py, a server that discards everything)",
        ceiling_table(rows),
        "### Correctness",
        "Every message received exactly once, in order, intact, in every run." if not failed else
        "\n".join(f"- **{r['broker']} {r['scenario']} / {r['variant']} / {_size(r['size'])}**: "
                  + "; ".join(map(str, r.get("problems") or [r.get("error")])) for r in failed),
    ]
    busy = [f"{r['broker']} {r['scenario']} {_size(r['size'])} ({r['machine_busy_pct']:.0f} %)" for r in rows
            if (r.get("machine_busy_pct") or 0) >= 20 and r.get("variant") == _first_variant(rows, r)]
    if busy:
        notes = notes + ["the machine was still busy (% of both cores, other processes or the previous run's "
                         "leftovers) when these runs started, after waiting up to 3 s: " + ", ".join(busy)]
    if notes:
        parts += ["### Notes", "\n".join(f"- {n}" for n in dict.fromkeys(notes))]
    return "\n\n".join(parts) + "\n"
