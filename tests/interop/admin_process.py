"""A broker process that applies admin operations and then waits to be
killed: ``python -m tests.interop.admin_process DATA_DIR OPERATIONS_JSON``
starts the broker (tests.interop.inprocess_broker) on DATA_DIR, calls
``server.admin.<method>(actor, *args)`` for each ``[method, args...]`` of
the JSON list, prints ``applied`` and sleeps. The crash tests SIGKILL it
(by its pid) to show that what an admin call returned from is durable."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.interop.inprocess_broker import InProcessBroker


def main(data_dir: str, operations: str) -> None:
    broker = InProcessBroker(Path(data_dir)).start()
    for method, *args in json.loads(operations):
        broker.admin(method, *args)
    print("applied", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main(*sys.argv[1:3])
