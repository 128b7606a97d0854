"""WAL benchmark: append throughput with group commit, then replay time.

Writes N MESSAGE records (1 KiB bodies by default) from one asyncio task in
batches (append ``--batch`` records, then ``await wal.sync()``: one write +
one fsync per batch), closes the log, drops the segment files from the page
cache (posix_fadvise DONTNEED, so the replay reads the disk unless --warm),
then times ``open()`` + iterating every record (optionally decoding each
MESSAGE without copying its body, as a broker rebuilding its index does).

    .venv/bin/python bench/wal_replay.py                    # 1,000,000 x 1 KiB
    .venv/bin/python bench/wal_replay.py --records 100000 --no-fsync --decode --preencoded
    .venv/bin/python bench/wal_replay.py --records 300000 --window 2   # appends overlap fsyncs

Prints append records/s and MB/s, fsync count and mean batch latency, then
replay seconds, records/s, MB/s, and the process RSS (current and peak).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from storage.wal import MESSAGE, WriteAheadLog, decode_message, encode_message  # noqa: E402


def rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MiB."""
    current = 0.0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def write(directory: Path, records: int, body_size: int, batch: int, fsync: bool,
                segment_size: int, preencoded: bool, window: int) -> None:
    wal = WriteAheadLog(directory, segment_size=segment_size, fsync=fsync)
    wal.open().drain()
    header = bytes(14)
    body = os.urandom(body_size)
    fixed = encode_message(0, "/", "bench", "bench.key", ("bench-q",), header, body)
    outstanding: deque = deque()
    t0 = time.perf_counter()
    for start in range(0, records, batch):
        if preencoded:
            for i in range(start, min(start + batch, records)):
                wal.append(MESSAGE, fixed)
        else:
            for i in range(start, min(start + batch, records)):
                wal.append(MESSAGE, encode_message(i, "/", "bench", "bench.key", ("bench-q",),
                                                   header, body))
        if window <= 1:
            await wal.sync()
            continue
        outstanding.append(asyncio.ensure_future(wal.sync()))
        if len(outstanding) >= window:
            await outstanding.popleft()
        else:
            await asyncio.sleep(0)      # let the batch start; its fsync overlaps the next appends
    for fut in outstanding:
        await fut
    elapsed = time.perf_counter() - t0
    stats = wal.stats
    written = stats["written_bytes"]
    wal.close()
    print(f"append: {records:,} records, {written / 1e6:,.0f} MB in {elapsed:.2f} s = "
          f"{records / elapsed:,.0f} records/s, {written / 1e6 / elapsed:,.0f} MB/s "
          f"(fsync={'on' if fsync else 'off'}, {stats['fsyncs']} fsyncs, batch {batch}, "
          f"last fsync {stats['last_fsync_ms']:.2f} ms, max {stats['max_fsync_ms']:.2f} ms, "
          f"{stats['segments']} segments{', payload encoded once' if preencoded else ''}"
          f"{f', {window} batches in flight' if window > 1 else ''})")


def evict(directory: Path) -> None:
    for path in directory.glob("*.wal"):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def replay(directory: Path, segment_size: int, decode: bool) -> None:
    wal = WriteAheadLog(directory, segment_size=segment_size)
    t0 = time.perf_counter()
    result = wal.open()
    count = 0
    if decode:
        for rec in result:
            if rec.type == MESSAGE:
                decode_message(rec.payload, with_body=False)
                count += 1
    else:
        for rec in result:
            count += 1
    elapsed = time.perf_counter() - t0
    current, peak = rss_mib()
    wal.close()
    print(f"replay: {result.records:,} records, {result.bytes / 1e6:,.0f} MB, "
          f"{result.segments} segments in {elapsed:.2f} s = {result.records / elapsed:,.0f} "
          f"records/s, {result.bytes / 1e6 / elapsed:,.0f} MB/s"
          f"{' (with decode_message)' if decode else ''}; RSS {current:.0f} MiB, peak {peak:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--body-size", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=1000, help="records per sync")
    parser.add_argument("--window", type=int, default=1,
                        help="unsynced batches allowed before waiting (1: await each sync)")
    parser.add_argument("--segment-size", type=int, default=64 << 20)
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--preencoded", action="store_true",
                        help="append one pre-encoded payload (WAL cost only, no encode_message)")
    parser.add_argument("--decode", action="store_true", help="decode MESSAGE records on replay")
    parser.add_argument("--warm", action="store_true", help="keep the files in the page cache")
    parser.add_argument("--dir", type=Path, help="WAL directory (default: a temporary one, removed)")
    args = parser.parse_args()

    directory = args.dir or Path(tempfile.mkdtemp(prefix="leveret-wal-bench-")) / "wal"
    try:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        asyncio.run(write(directory, args.records, args.body_size, args.batch,
                          not args.no_fsync, args.segment_size, args.preencoded,
                          args.window))
        if not args.warm:
            evict(directory)
        replay(directory, args.segment_size, args.decode)
    finally:
        if args.dir is None:
            shutil.rmtree(directory.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
