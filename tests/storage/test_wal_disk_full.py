"""The WAL on a full disk (issue 15): a write that fails with a retryable
error (here EFBIG from a real file size limit, RLIMIT_FSIZE, standing for
ENOSPC) leaves the log open: the sync waits instead of succeeding or
failing, what was durable stays readable, and once the limit is lifted
the same batch is written and the sync completes; after a reopen every
record is there. Runs in a child process, so that the limit and the
ignored SIGXFSZ touch nothing else."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.interop.server_process import REPO_ROOT

CHILD = textwrap.dedent("""
    import asyncio, logging, resource, signal, sys
    from storage.wal import TOPOLOGY, WriteAheadLog
    from storage.wal import log as wal_log

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a killing signal
    wal_log.RETRY_WRITE_S = 0.05

    class Seen(logging.Handler):
        def __init__(self):
            super().__init__()
            self.retrying = asyncio.Event()
            self.recovered = asyncio.Event()
        def emit(self, record):
            if "retrying every" in record.getMessage():
                self.retrying.set()
            if "write succeeded again" in record.getMessage():
                self.recovered.set()

    async def main(directory):
        seen = Seen()
        logging.getLogger("storage.wal.log").addHandler(seen)
        wal = WriteAheadLog(directory, segment_size=1 << 20)
        for _ in wal.open():
            pass
        first = wal.append(TOPOLOGY, b"a" * 1000)
        await wal.sync()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))
        second = wal.append(TOPOLOGY, b"b" * 200_000)
        synced = asyncio.ensure_future(wal.sync())
        await asyncio.wait_for(seen.retrying.wait(), 10)
        assert not synced.done(), "a sync completed although its write failed"
        assert wal.read(first) == b"a" * 1000
        third = wal.append(TOPOLOGY, b"c" * 10)  # appends are still taken, in memory
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        await asyncio.wait_for(synced, 10)
        await asyncio.wait_for(wal.sync(), 10)
        assert seen.recovered.is_set()
        wal.close()
        again = WriteAheadLog(directory, segment_size=1 << 20)
        payloads = [record.payload for record in again.open()]
        again.close()
        assert payloads == [b"a" * 1000, b"b" * 200_000, b"c" * 10], [len(p) for p in payloads]
        print("OK")

    asyncio.run(main(sys.argv[1]))
""")


def test_full_disk_write_is_retried_and_sync_waits(tmp_path):
    result = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "wal")], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stdout + result.stderr
