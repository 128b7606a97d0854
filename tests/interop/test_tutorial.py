"""The RabbitMQ Python tutorials 1 ("Hello World!") and 2 ("Work queues"),
run unchanged in style as separate processes against the broker.

Scripts live in tests/interop/tutorial/ and take the broker from the
AMQP_HOST / AMQP_PORT environment variables. They use the tutorials' literal
queue names ('hello', 'task_queue'), so each test deletes them before and after.
https://www.rabbitmq.com/tutorials/tutorial-one-python.html,
https://www.rabbitmq.com/tutorials/tutorial-two-python.html
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pika.exceptions as pe
import pytest

from tests.interop.clients import blocking, get_all, wait_for

pytestmark = pytest.mark.timeout(90)

TUTORIAL = Path(__file__).resolve().parent / "tutorial"
WAITING = " [*] Waiting for messages. To exit press CTRL+C"


def script_env(broker, **extra: str) -> dict:
    return dict(os.environ, AMQP_HOST=broker.host, AMQP_PORT=str(broker.port),
                PYTHONUNBUFFERED="1", **extra)


def run(broker, script: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TUTORIAL / script), *args], cwd=TUTORIAL,
                          env=script_env(broker), capture_output=True, text=True, timeout=timeout)


class Background:
    """A tutorial script running in the background; its stdout lines are collected."""

    def __init__(self, broker, script: str, **env: str):
        self.proc = subprocess.Popen([sys.executable, str(TUTORIAL / script)], cwd=TUTORIAL,
                                     env=script_env(broker, **env), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> str:
        """Terminate (if still running) and return stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _out, err = self.proc.communicate()
        self.reader.join(5)
        return err or ""


def delete_queue(broker, name: str) -> None:
    with blocking(broker) as conn:
        conn.channel().queue_delete(name)


def consumer_count(broker, name: str) -> int:
    with blocking(broker) as conn:
        try:
            return conn.channel().queue_declare(name, passive=True).method.consumer_count
        except pe.ChannelClosedByBroker:
            return 0


@pytest.fixture
def hello_queue(broker):
    delete_queue(broker, "hello")
    yield "hello"
    delete_queue(broker, "hello")


@pytest.fixture
def task_queue(broker):
    delete_queue(broker, "task_queue")
    yield "task_queue"
    delete_queue(broker, "task_queue")


def test_hello_world_send_then_receive(broker, hello_queue):
    """Tutorial 1: send.py leaves 'Hello World!' in queue 'hello'; receive.py
    (prefetch 1, manual ack) prints it and exits; the queue ends empty."""
    sent = run(broker, "send.py")
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, " [x] Sent 'Hello World!'\n", "")
    with blocking(broker) as conn:
        assert conn.channel().queue_declare("hello", passive=True).method.message_count == 1
    received = run(broker, "receive.py")
    assert received.returncode == 0, received.stderr
    assert received.stdout.splitlines() == [WAITING, " [x] Received Hello World!"]
    with blocking(broker) as conn:
        declared = conn.channel().queue_declare("hello", passive=True).method
        assert (declared.message_count, declared.consumer_count) == (0, 0)


def test_hello_world_receiver_first(broker, hello_queue):
    """Tutorial 1 the other way round: the consumer waits, the producer's message
    is pushed to it."""
    receiver = Background(broker, "receive.py")
    try:
        wait_for(lambda: consumer_count(broker, "hello") == 1, timeout=20, interval=0.1,
                 what="receive.py to consume")
        sent = run(broker, "send.py")
        assert sent.returncode == 0, sent.stderr
        assert receiver.proc.wait(timeout=20) == 0
    finally:
        err = receiver.stop()
    assert receiver.lines == [WAITING, " [x] Received Hello World!"], err
    with blocking(broker) as conn:
        assert conn.channel().queue_declare("hello", passive=True).method.message_count == 0


def test_new_task_is_persistent_on_durable_queue(broker, task_queue):
    """Tutorial 2: new_task.py declares a durable 'task_queue' and publishes
    with delivery_mode 2; its argv becomes the body."""
    sent = run(broker, "new_task.py", "First", "message.")
    assert (sent.returncode, sent.stdout) == (0, " [x] Sent First message.\n"), sent.stderr
    with blocking(broker) as conn:
        ch = conn.channel()
        ch.queue_declare("task_queue", durable=True)     # same flags: accepted
        method, props, body = ch.basic_get("task_queue", auto_ack=True)
        assert (body, props.delivery_mode, method.redelivered) == (b"First message.", 2, False)
        with pytest.raises(pe.ChannelClosedByBroker) as info:
            ch.queue_declare("task_queue", durable=False)
        assert info.value.reply_code == 406


def test_work_queues_fair_dispatch(broker, task_queue):
    """Tutorial 2: two workers with prefetch 1 and manual acks; a long task
    keeps one worker busy while the other takes every short task; every task
    is done exactly once and the queue ends empty.

    A worker prints " [x] Done" before it acks, so a stop right after the
    last Done could cut the ack. Instead of sleeping, two long "sync" tasks
    are sent after the last Done: with prefetch 1, each worker takes one only
    once its previous ack was read, so both receiving one proves it; the
    two sync tasks come back (requeued) when the workers stop."""
    with blocking(broker) as conn:
        conn.channel().queue_declare("task_queue", durable=True)
    workers = [Background(broker, "worker.py", DOT_SECONDS="0.2") for _ in range(2)]
    sync = "sync" + "." * 50                 # 10 s of work: the first worker stays busy
    try:
        wait_for(lambda: consumer_count(broker, "task_queue") == 2, timeout=20, interval=0.1,
                 what="two workers to consume")
        long_task = "long" + "." * 25            # 5 s of work
        shorts = [f"short{i}." for i in range(4)]  # 0.2 s each
        for task in [long_task, *shorts]:
            sent = run(broker, "new_task.py", task)
            assert sent.returncode == 0, sent.stderr
        wait_for(lambda: sum(w.lines.count(" [x] Done") for w in workers) == 5, timeout=30,
                 interval=0.1, what="5 tasks done")
        for _ in workers:
            assert run(broker, "new_task.py", sync).returncode == 0
        wait_for(lambda: all(f" [x] Received {sync}" in w.lines for w in workers), timeout=30,
                 interval=0.1, what="each worker to take a sync task (its last ack was read)")
    finally:
        errors = [w.stop() for w in workers]
    received = [[line.removeprefix(" [x] Received ") for line in w.lines
                 if line.startswith(" [x] Received") and not line.endswith(sync)] for w in workers]
    assert sorted(received, key=len) == [[long_task], shorts], (received, errors)
    for w in workers:
        assert w.lines[0] == WAITING
        assert w.lines.count(" [x] Done") == len(received[workers.index(w)])
    wait_for(lambda: consumer_count(broker, "task_queue") == 0, timeout=10, interval=0.1,
             what="workers' consumers to go away")
    with blocking(broker) as conn:
        channel = conn.channel()
        assert get_all(channel, "task_queue") == [sync.encode()] * 2
