"""The message database runs in its own process (storage/mirror/process.py):
it lives as long as the broker, exits by itself when the broker is
SIGKILLed, catches up from its watermark at the next start, the WAL keeps
the segments it has not applied, and its death does not disturb publishing
or consuming (the broker restarts it)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from tests.interop.mirror_scenario import props, sql, wait_until
from tests.interop.pika_helpers import pika_connection

STARTED = re.compile(r"message database process started \(pid (\d+)\)")


def mirror_pids(proc) -> list[int]:
    """Pids of the message database processes the broker logged, in order."""
    return [int(p) for p in STARTED.findall(proc.log_text())]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def publish(proc, first: int, count: int) -> None:
    with pika_connection(proc) as connection:
        ch = connection.channel()
        ch.confirm_delivery()
        ch.queue_declare("q", durable=True)
        for i in range(first, first + count):
            ch.basic_publish("", "q", b"body", props(f"m{i}"))


def rows(proc) -> list:
    return sql(proc, "SELECT count(*), sum(state = 'acked') FROM messages")


def test_the_process_lives_and_dies_with_the_broker(fresh_broker):
    proc = fresh_broker()
    wait_until(lambda: len(mirror_pids(proc)), 1)
    pid, = mirror_pids(proc)
    assert alive(pid) and parent_of(pid) == proc.proc.pid
    assert b"storage.mirror.process" in Path(f"/proc/{pid}/cmdline").read_bytes()
    publish(proc, 0, 5)
    wait_until(lambda: rows(proc), [(5, 0)])
    proc.kill()                                           # SIGKILL: no goodbye on the pipe
    wait_until(lambda: alive(pid), False, timeout=10)
    assert "the broker closed the pipe" in proc.log_text()


def test_the_database_catches_up_after_a_restart(fresh_broker):
    proc = fresh_broker()
    publish(proc, 0, 10)
    wait_until(lambda: rows(proc), [(10, 0)])
    proc.stop()
    proc.extra_args = ["--mirror", "off"]                 # records the database does not see
    proc.start()
    publish(proc, 10, 10)
    proc.stop()
    assert rows(proc) == [(10, 0)]
    proc.extra_args = []
    proc.start()
    wait_until(lambda: rows(proc), [(20, 0)])
    assert sql(proc, "SELECT message_id FROM messages ORDER BY id")[-1] == ("m19",)


@pytest.mark.broker_log(r"message database process \(pid \d+\) exited unexpectedly with status -9")
def test_a_killed_process_does_not_disturb_the_broker(fresh_broker):
    proc = fresh_broker()
    publish(proc, 0, 20)
    wait_until(lambda: len(mirror_pids(proc)), 1)
    first, = mirror_pids(proc)
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: alive(first), False, timeout=10)
    publish(proc, 20, 20)                                 # confirmed while it is gone
    with pika_connection(proc) as connection:
        ch = connection.channel()
        got = []
        for _ in range(40):
            method, p, body = ch.basic_get("q")
            got.append(p.message_id)
            ch.basic_ack(method.delivery_tag)
    assert got == [f"m{i}" for i in range(40)]
    wait_until(lambda: "exited unexpectedly" in proc.log_text(), True)
    wait_until(lambda: len(mirror_pids(proc)), 2)         # restarted after a delay
    assert alive(mirror_pids(proc)[1])
    wait_until(lambda: rows(proc), [(40, 40)])
    assert proc.stop() == 0
    assert "message database process (pid" in proc.log_text().rsplit("shutting down", 1)[1]


def live_segments(proc) -> int:
    """WAL segment files holding records (a deleted one is a 16-byte tombstone)."""
    return sum(1 for p in (proc.data_dir / "wal").glob("*.wal") if p.stat().st_size > 16)


def test_the_wal_keeps_what_the_process_has_not_applied(fresh_broker):
    proc = fresh_broker("--wal-segment-size", "16384", "--compact-interval", "3600")
    wait_until(lambda: "messages.db opened" in proc.log_text(), True)
    pid, = mirror_pids(proc)
    os.kill(pid, signal.SIGSTOP)                          # it cannot read meanwhile
    try:
        with pika_connection(proc) as connection:
            ch = connection.channel()
            ch.confirm_delivery()
            ch.queue_declare("q", durable=True)
            for i in range(100):
                ch.basic_publish("", "q", b"x" * 1024, props(f"m{i}"))
            for _ in range(100):
                method, _p, _body = ch.basic_get("q")
                ch.basic_ack(method.delivery_tag)
            for i in range(100, 103):                     # more I/O batches: deletions run
                ch.basic_publish("", "q", b"y", props(f"m{i}"))
        assert live_segments(proc) > 5                    # every message acked, all kept
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: rows(proc), [(103, 100)])

    def settled() -> bool:
        publish(proc, 1000, 1)                            # a batch to carry the deletions
        return live_segments(proc) <= 2
    wait_until(settled, True)
