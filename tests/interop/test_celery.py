"""Celery (from PyPI) against Leveret, as its users run it: a worker in its
own process (``celery worker -P solo``), results through the ``rpc://``
backend (replies on the client's own queue, matched by correlation id). A
task, a countdown task (held by the worker until due) and a retried task
(republished by the worker under the same task id); then the task
messages are found in the message database by their correlation id, the
task id (``leveret messages find --columns correlation_id``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

celery = pytest.importorskip("celery")

from tests.interop.server_process import REPO_ROOT, stop_process  # noqa: E402

TASKS = '''
import os

from celery import Celery

app = Celery("h4tasks", broker=os.environ["H4_BROKER_URL"], backend="rpc://")


@app.task
def add(x, y):
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self, value):
    """Fails on its first two runs, then returns ``value``."""
    if self.request.retries < 2:
        raise self.retry(countdown=0.2)
    return f"{value} after {self.request.retries} retries"
'''


@pytest.fixture
def celery_setup(fresh_broker, tmp_path):
    """(broker, Celery app for the client side, the worker process)."""
    broker = fresh_broker()
    url = f"amqp://guest:guest@127.0.0.1:{broker.port}//"
    (tmp_path / "h4tasks.py").write_text(TASKS)
    env = dict(os.environ, H4_BROKER_URL=url, PYTHONPATH=str(tmp_path))
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "h4tasks", "worker", "-P", "solo", "--loglevel", "info",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-Q", "celery"],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    sys.path.insert(0, str(tmp_path))
    os.environ["H4_BROKER_URL"] = url
    try:
        import h4tasks
        try:
            yield broker, h4tasks, worker
        finally:
            h4tasks.app.close()    # the client's connections, so that the broker stops at once
    finally:
        sys.path.remove(str(tmp_path))
        os.environ.pop("H4_BROKER_URL", None)
        sys.modules.pop("h4tasks", None)
        status = stop_process(worker, 20)
        worker_log = (tmp_path / "worker.log").read_text(errors="replace")
        assert status == 0, worker_log[-3000:]


def _find(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "broker", "messages", "find", "--data-dir", str(data_dir),
                           *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)


def _wait_for_acked(data_dir: Path, task_id: str, count: int) -> list[dict]:
    """The task's messages once ``count`` of them are there and acked (or
    after 30 s): the worker's ack may follow the result, and the message
    database follows the WAL a little behind."""
    deadline = time.monotonic() + 30
    while True:
        rows = json.loads(_find(data_dir, "--correlation-id", task_id, "--json").stdout)
        done = len(rows) >= count and all(r["state"] == "acked" for r in rows)
        if done or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def test_task_countdown_and_retry_through_leveret(celery_setup):
    broker, tasks, _worker = celery_setup
    plain = tasks.add.delay(2, 3)
    assert plain.get(timeout=60) == 5
    later = tasks.add.apply_async((20, 22), countdown=1)
    retried = tasks.flaky.delay("done")
    assert later.get(timeout=60) == 42
    assert retried.get(timeout=60) == "done after 2 retries"

    # every publish of a task is a message whose correlation-id is the task id
    assert [r["state"] for r in _wait_for_acked(broker.data_dir, plain.id, 1)] == ["acked"]
    assert [r["state"] for r in _wait_for_acked(broker.data_dir, later.id, 1)] == ["acked"]
    runs = _wait_for_acked(broker.data_dir, retried.id, 3)
    assert [(r["queue"], r["state"]) for r in runs] == [("celery", "acked")] * 3

    table = _find(broker.data_dir, "--columns", "id,correlation_id,routing_key,queue,state")
    assert table.returncode == 0, table.stderr
    header, _rule, *lines = table.stdout.splitlines()
    assert header.split() == ["id", "correlation_id", "routing_key", "queue", "state"]
    by_task = {}
    for line in lines:
        _id, task_id, routing_key, queue, state = line.split()
        by_task.setdefault(task_id, []).append((routing_key, queue, state))
    assert by_task[plain.id] == [("celery", "celery", "acked")]
    assert by_task[later.id] == [("celery", "celery", "acked")]
    assert by_task[retried.id] == [("celery", "celery", "acked")] * 3
