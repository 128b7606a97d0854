"""Per-message cost of the storage calls on the persistent hot paths, without
sockets (issue 5: ``drain`` and ``confirm``), for A/B runs of two checkouts.

    PYTHONPATH=. .venv/bin/python bench/persist_paths.py [--count 200000] [--size 16] [--fsync never|always]

Against a fresh Storage in a temporary directory, on one event loop:

- ``persist``: ``persist_message`` for ``count`` messages to one durable
  queue, with one ``sync`` per 1,000 (the confirm window's group commit);
- ``read``: the backlog read back 2,048 at a time, as ``Queue._refill`` does
  (``read_for_delivery`` when the checkout has it, else ``read_messages``);
- ``deliver``: ``record_delivered`` per message, then one sync per 1,000
  (a loop pass of deliveries held for their fsync);
- ``ack``: ``record_removed`` per message, one sync per 250 (a
  ``multiple=true`` ack).

Prints microseconds per message for each phase and the WAL's appended
record count. Only the ratio between two checkouts, run back to back on
the same machine, means anything.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from storage import Storage
from storage.wal import REASON_ACKED

HEADER = b"\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x10\x00\x02"  # basic, delivery-mode 2


async def run(count: int, size: int, fsync: bool) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="leveret-persist-paths-"))
    storage = Storage(tmp / "data", fsync=fsync)
    storage.open()
    body = b"x" * size
    out = {}
    try:
        t = time.perf_counter()
        for i in range(1, count + 1):
            storage.persist_message(i, "/", "", "q", ["q"], HEADER, body)
            if not i % 1000:
                await storage.sync()
        await storage.sync()
        out["persist"] = time.perf_counter() - t
        reader = getattr(storage, "read_for_delivery", None) or storage.read_messages
        t = time.perf_counter()
        for start in range(1, count + 1, 2048):
            reader(list(range(start, min(start + 2048, count + 1))))
        out["read"] = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(1, count + 1):
            storage.record_delivered(i, "q", "ctag", 1)
            if not i % 1000:
                await storage.sync()
        await storage.sync()
        out["deliver"] = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(1, count + 1):
            storage.record_removed(i, "q", REASON_ACKED)
            if not i % 250:
                await storage.sync()
        await storage.sync()
        out["ack"] = time.perf_counter() - t
        out["records"] = storage.wal.stats["appended_records"]
    finally:
        storage.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--fsync", choices=("never", "always"), default="never")
    args = parser.parse_args()
    out = asyncio.run(run(args.count, args.size, args.fsync == "always"))
    phases = " ".join(f"{name} {out[name] / args.count * 1e6:.2f}" for name in ("persist", "read", "deliver", "ack"))
    print(f"us/msg ({args.count} x {args.size} B, fsync {args.fsync}): {phases}; WAL records {out['records']}")


if __name__ == "__main__":
    main()
