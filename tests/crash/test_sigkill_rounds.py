"""Crash loop (docs/architecture.md, "Durability contract"): a publisher process sends
persistent, confirmed messages to a durable queue while a consumer process
acks most deliveries and keeps some unacked; the broker is SIGKILLed at a
random moment and restarted on the same data directory and port, ROUNDS
times. The seed (printed, and named in every failure) fixes the schedule:
message counts, pacing, kill delays, which deliveries stay unacked; the
exact interleaving still depends on timing. LEVERET_CRASH_SEED replays
another seed, LEVERET_CRASH_ROUNDS changes the number of rounds.

Checked for every delivery (during the rounds and in the final drain):
- body and properties are exactly what was published (corpus.mismatch);
- it was published at all, and not acked durably before (an ack is known
  durable once a later confirmed publish on the same channel came back);
- a message seen before comes back only with redelivered=true, and at most
  once per round; each round (and the final drain) sees ascending numbers;
and at the end: every confirmed message was either acked or is still queued.
A nack, a channel error or a close sent by the broker is counted as a
problem (every publish here is persistent to a durable queue: a nack breaks
the contract). Every round must confirm at least MIN_CONFIRMED messages:
the kill waits for them (an event, not a delay), then for the round's
random delay.
"""

from __future__ import annotations

import contextlib
import os
import random
import time

import pika
import pytest

from tests.crash.conftest import SMALL_SEGMENTS
from tests.crash.corpus import LARGE_EVERY
from tests.crash.harness import Client, drain
from tests.interop.test_durability import _connect

SEED = int(os.environ.get("LEVERET_CRASH_SEED", "20261130"))
ROUNDS = int(os.environ.get("LEVERET_CRASH_ROUNDS", "36"))
PER_ROUND = (60, 260)          # messages the publisher sends in a round, at most
PACE = (0.0, 0.006)            # seconds between publishes
KILL_AFTER = (0.0, 1.2)        # seconds from the MIN_CONFIRMED-th confirm to the SIGKILL
MIN_CONFIRMED = 5              # confirms every round must reach before its kill
START_GUARD = 60.0             # seconds: hang guard for reaching MIN_CONFIRMED
ID_SPAN = 10_000               # round r publishes numbers r*ID_SPAN + i


class Ledger:
    """What the clients reported across rounds, and the contract checks."""

    def __init__(self):
        self.sent: set[int] = set()
        self.confirmed: set[int] = set()
        self.seen: dict[int, str] = {}      # message -> where it was first delivered
        self.acked: set[int] = set()
        self.durably_acked: set[int] = set()
        self.redelivered_back = 0
        self.problems: list[str] = []

    def publisher(self, lines: list[str], where: str) -> int:
        """Record one round's publisher lines; returns its confirms."""
        confirmed = 0
        for line in lines:
            kind, rest = line.split(" ", 1)
            if kind in ("ok", "sent"):
                (self.confirmed if kind == "ok" else self.sent).add(int(rest))
                confirmed += kind == "ok"
            elif kind == "nack":
                self.problems.append(f"{where}: persistent publish {rest} to a durable queue was nacked")
            else:
                self.problems.append(f"{where}: publisher: {line}")
        return confirmed

    def consumer(self, lines: list[str], where: str) -> None:
        delivered, acks, durable, fates = [], [], [], {}
        for line in lines:
            kind, *rest = line.split(" ", 3)
            if kind == "recv":
                delivered.append((int(rest[0]), rest[1] == "1", rest[2]))
                fates[int(rest[0])] = "unacked"
            elif kind == "ack":
                acks.append(int(rest[0]))
                fates[int(rest[0])] = "acked, ack not known durable"
            elif kind == "durable":
                durable = list(acks)
            elif kind != "hold":
                self.problems.append(f"{where}: consumer: {line}")
        fates.update((n, "acked durably") for n in durable)
        self.deliveries(delivered, where, fates)     # against the acks of earlier rounds
        self.acked.update(acks)
        self.durably_acked.update(durable)

    def deliveries(self, delivered: list[tuple[int, bool, str]], where: str, fates=None) -> None:
        """Check one round's (or the final drain's) deliveries, in order."""
        this_round: dict[int, str] = {}
        last = -1
        for index, (n, redelivered, verdict) in enumerate(delivered):
            bad = self.problems.append
            if verdict != "ok":
                bad(f"{where}: message {n}: {verdict}")
            if n not in self.sent:
                bad(f"{where}: message {n} was never published")
            if n in self.durably_acked:
                bad(f"{where}: message {n} came back after a durable ack")
            if n in self.seen and not redelivered:
                bad(f"{where}: message {n} delivered again with redelivered=false "
                    f"(first delivered in {self.seen[n]})")
            if n in this_round:
                bad(f"{where}: message {n} delivered twice")
            if n <= last:
                bad(f"{where}: message {n} delivered after {last} (out of order)")
            self.redelivered_back += n in self.seen
            last = max(last, n)
            this_round[n] = (f"{where}, delivery {index + 1} of {len(delivered)}, "
                             f"{(fates or {}).get(n)}")
        self.seen = {**this_round, **self.seen}

    def lost(self, remaining: set[int]) -> list[int]:
        """Confirmed messages neither acked by the consumer nor still queued."""
        return sorted(self.confirmed - self.acked - remaining)


def run_round(proc, ledger: Ledger, rng: random.Random, number: int, queue: str) -> float:
    """Clients on, MIN_CONFIRMED confirms, a random wait, SIGKILL, restart;
    returns the wait. Fails when the round confirmed fewer."""
    count = rng.randint(*PER_ROUND)
    pace = rng.uniform(*PACE)
    delay = rng.uniform(*KILL_AFTER)
    clients = [Client("publisher", proc.url, queue, number * ID_SPAN, count, pace),
               Client("consumer", proc.url, queue, queue + "-checkpoints", SEED + number)]
    where = f"seed {SEED} round {number}"
    try:
        clients[0].wait_for(lambda lines: sum(line.startswith("ok ") for line in lines) >= MIN_CONFIRMED,
                            START_GUARD)
        time.sleep(delay)               # the random kill moment (not synchronisation)
        proc.kill()
        confirmed = ledger.publisher(clients[0].finish(), where)
        ledger.consumer(clients[1].finish(), where)
        assert confirmed >= MIN_CONFIRMED, f"{where}: only {confirmed} confirms"
    finally:
        for client in clients:
            client.stop()
    proc.start()
    return delay


@pytest.mark.timeout(900)      # a hang guard only: ~36 rounds of a few seconds each
def test_sigkill_rounds_lose_no_confirmed_message(fresh_broker, unique):
    """Confirmed means durable, at-least-once for unacked deliveries, and
    properties/bodies intact, across ROUNDS random SIGKILLs."""
    print(f"crash loop seed {SEED} (LEVERET_CRASH_SEED={SEED} reproduces), {ROUNDS} rounds")
    rng = random.Random(SEED)
    proc = fresh_broker(*SMALL_SEGMENTS)
    queue = unique("crash")
    ledger = Ledger()
    started = time.monotonic()
    delays = [run_round(proc, ledger, rng, number, queue) for number in range(ROUNDS)]
    final = drain(proc, queue)
    ledger.deliveries(final, f"seed {SEED} final drain")
    lost = ledger.lost({n for n, _r, _v in final})
    print(f"{len(ledger.sent)} published, {len(ledger.confirmed)} confirmed "
          f"({sum(n % LARGE_EVERY == 0 for n in ledger.confirmed)} > 128 KiB), {len(ledger.acked)} acked "
          f"({len(ledger.durably_acked)} durably), {ledger.redelivered_back} redeliveries, "
          f"{len(final)} left at the end; kills after {min(delays):.2f}-{max(delays):.2f} s; "
          f"{time.monotonic() - started:.1f} s")
    assert not lost, f"seed {SEED}: {len(lost)} confirmed messages lost: {lost[:20]}"
    assert not ledger.problems, f"seed {SEED}: " + "\n".join(ledger.problems[:30])
    assert ledger.redelivered_back > 0, f"seed {SEED}: no delivery came back redelivered"


def test_delivered_message_comes_back_redelivered_when_killed_at_once(fresh_broker, unique):
    """At-least-once, the redelivered flag (docs/architecture.md): a message handed to
    a consumer (here basic.get, manual ack) and then caught by a SIGKILL
    comes back with redelivered=true. The kill lands right after get-ok
    arrives while the WAL thread is busy writing a 32 MiB publish made just
    before on the same connection, so the DELIVERED record is written only
    if the broker waits for it before sending the message."""
    proc = fresh_broker()
    queue, big = unique("q"), unique("big")
    connection = _connect(proc)
    busy, channel = connection.channel(), connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(queue, durable=True)
    channel.queue_declare(big, durable=True)
    channel.basic_publish("", queue, b"delivered once", pika.BasicProperties(delivery_mode=2))
    busy.basic_publish("", big, bytes(32 << 20), pika.BasicProperties(delivery_mode=2))
    method, _properties, body = channel.basic_get(queue)
    proc.kill()
    with contextlib.suppress(pika.exceptions.AMQPError):
        connection.close()
    assert body == b"delivered once" and not method.redelivered
    proc.start()
    with _connect(proc) as connection:
        method, _properties, body = connection.channel().basic_get(queue, auto_ack=True)
    assert body == b"delivered once"
    assert method.redelivered, "a message delivered before the crash came back with redelivered=false"
