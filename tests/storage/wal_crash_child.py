"""Child process for test_wal_crash: replay the WAL, then append + sync
records forever, printing after each sync the number of records that are
durable ("synced N"). The parent SIGKILLs it at a random moment.

Usage: python -m tests.storage.wal_crash_child DIR SEED
"""

import asyncio
import random
import sys

from storage.wal import TOPOLOGY, WriteAheadLog
from tests.storage.conftest import make_payload

SEGMENT_SIZE = 64 << 10


async def main(directory: str, seed: int) -> None:
    rng = random.Random(seed)
    wal = WriteAheadLog(directory, segment_size=SEGMENT_SIZE)
    count = wal.open().drain()
    print(f"replayed {count}", flush=True)
    while True:
        for _ in range(rng.randint(1, 60)):
            wal.append(TOPOLOGY, make_payload(count))
            count += 1
        await wal.sync()
        sys.stdout.write(f"synced {count}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
