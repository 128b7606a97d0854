"""amqplib (Node.js, from npm) against the broker: a burst of publishes on
a confirm channel, then a close at once (tests/interop/node/confirm_burst.js).

amqplib fails the connection with "Frame on unknown channel" when a frame
follows channel.close-ok (a confirm sent after the close), and its close
never completes when the socket is closed right after connection.close-ok
while it still writes publishes it had queued (issue 17). RabbitMQ 3.10
passes both: checked with
``LEVERET_TEST_URL=$(bash ../shared/tools/reference-rabbitmq url)``.

Needs ``node`` and ``npm ci`` run in tests/interop/node (package-lock.json
pins amqplib); skipped, saying which is missing, without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).parent / "node"
SCRIPT = NODE_DIR / "confirm_burst.js"
#: publishes in the burst (the reported failing case)
BURST = 1000


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable, amqplib installed; skips loudly otherwise."""
    executable = shutil.which("node")
    if executable is None:
        pytest.skip("SKIPPED amqplib interop: no `node` on PATH (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "amqplib" / "package.json").is_file():
        pytest.skip(f"SKIPPED amqplib interop: amqplib is not installed: run `npm ci` in {NODE_DIR}")
    return executable


def _run(node: str, broker, mode: str) -> dict:
    """Run the burst against ``broker`` closing the ``mode`` ("channel" or
    "connection"); the script's JSON report."""
    url = f"amqp://guest:guest@{broker.host}:{broker.port}"
    done = subprocess.run([node, str(SCRIPT), url, mode, str(BURST)], cwd=NODE_DIR, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, f"amqplib run failed ({done.returncode}): {done.stdout}{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["channel", "connection"])
def test_confirm_burst_then_close(node, broker, mode):
    """Every publish callback is called (acked before the close, or failed
    with "channel closed"), amqplib reports no error and its close
    completes."""
    report = _run(node, broker, mode)
    assert report["errors"] == []
    assert report["closed"] is True
    assert report["acked"] + report["failed"] == BURST
