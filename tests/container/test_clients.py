"""Clients outside the container use the broker through its published port:
a selection of the pika and aio-pika interop tests (tests/interop) runs
against the container, as they run against the reference RabbitMQ, through
``LEVERET_TEST_URL`` (tests/interop/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.container import engine

pytestmark = pytest.mark.timeout(300)  # the first test may wait for the image build

#: pika (blocking and select connections, the RabbitMQ tutorials run as
#: scripts) and aio-pika: connect, log in (and be refused), publish with
#: confirms, consume, ack. Not the tutorials' fair-dispatch test: it races a
#: 5 s task against four script starts, which a loaded machine can lose.
SMOKE_TESTS = (
    "tests/interop/test_tutorial.py::test_hello_world_send_then_receive",
    "tests/interop/test_tutorial.py::test_hello_world_receiver_first",
    "tests/interop/test_tutorial.py::test_new_task_is_persistent_on_durable_queue",
    "tests/interop/test_connection.py::test_server_properties_seen_by_pika",
    "tests/interop/test_connection.py::test_server_properties_seen_by_aio_pika",
    "tests/interop/test_connection.py::test_login_refused_pika",
    "tests/interop/test_connection.py::test_login_refused_aio_pika",
    "tests/interop/test_confirm_tx.py::test_aio_pika_confirms_1000_with_window",
    "tests/interop/test_basic_consume.py::test_aio_pika_consumer",
    "tests/interop/test_basic_consume.py::test_select_connection_consumer",
)


def test_pika_and_aio_pika_smoke_tests_pass_against_the_container(container):
    box = container()
    env = dict(os.environ, LEVERET_TEST_URL=box.url, PYTHONPATH=str(engine.REPO_ROOT))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SMOKE_TESTS],
                            cwd=engine.REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"{result.stdout[-4000:]}{result.stderr[-2000:]}\n{box.logs()[-3000:]}"
    passed = int(summary.split(" passed")[0].split()[-1]) if " passed" in summary else 0
    assert passed >= len(SMOKE_TESTS) and "skipped" not in summary, summary
