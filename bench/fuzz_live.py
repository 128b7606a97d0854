"""Live fuzzing of a Leveret broker (issue 15): many connections send
mutated AMQP frame streams while a canary publishes persistent messages
with confirms and consumes them on another connection. The broker must
not crash, must not hit an internal error, and the canary must lose
nothing it had confirmed.

    python -m bench.fuzz_live --duration 600 --connections 24
    python -m bench.fuzz_live --port 5672 --log /path/to/broker.log   # a broker already running

Without ``--port`` the script starts a broker (``python -m broker`` on a
free port, data in a temporary directory, log next to it) and stops it at
the end. Each *case* is one TCP connection: a valid handshake (or, one
case in ten, a mutated one), then a stream of valid frames — channel.open,
declares with field-table arguments, binds, qos, publishes with
properties and bodies, consume, acks, tx, confirm.select, close — cut,
flipped, spliced, with lengths set to extremes; what the broker answers is
read until it closes the connection or 0.3 s pass. Figures printed at the
end (one line each): cases, cases answered with connection.close (by reply
code), broker crashes, internal errors in its log, canary messages
confirmed and lost, broker RSS at start and end.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aio_pika
from pamqp import commands, encode
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp.body import ContentBody

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
CANARY_QUEUE = "fuzz-canary"


def method(channel: int, m) -> bytes:
    return pframe.marshal(m, channel)


def publish(channel: int, rnd: random.Random, queue: str) -> bytes:
    body = rnd.randbytes(rnd.choice([0, 10, 300, 5000]))
    props = commands.Basic.Properties(
        content_type=rnd.choice([None, "text/plain"]), delivery_mode=rnd.choice([None, 1, 2]),
        headers=rnd.choice([None, {"a": 1, "b": "x", "c": {"d": [1, 2.5, "e"]}}]),
        priority=rnd.choice([None, 3]), message_id=rnd.choice([None, "m1"]), expiration=rnd.choice([None, "60000"]))
    data = method(channel, commands.Basic.Publish(exchange="", routing_key=queue, mandatory=rnd.random() < 0.3))
    data += pframe.marshal(pheader.ContentHeader(0, len(body), props), channel)
    if body:
        data += pframe.marshal(ContentBody(body), channel)
    return data


def handshake() -> bytes:
    start_ok = commands.Connection.StartOk(
        client_properties={"product": "fuzz", "capabilities": {"connection.blocked": True}},
        mechanism="PLAIN", response="\x00guest\x00guest", locale="en_US")
    return (PROTOCOL_HEADER + method(0, start_ok)
            + method(0, commands.Connection.TuneOk(channel_max=64, frame_max=131072, heartbeat=0))
            + method(0, commands.Connection.Open(virtual_host="/")))


def session(rnd: random.Random) -> bytes:
    """A valid stream of frames after the handshake."""
    queue = f"fz-{rnd.randrange(50)}"
    parts = [method(1, commands.Channel.Open())]
    steps = [
        lambda: method(1, commands.Queue.Declare(queue=queue, auto_delete=True, arguments=rnd.choice([
            {}, {"x-max-length": 10}, {"x-message-ttl": 100, "x-dead-letter-exchange": ""},
            {"x-max-priority": 5, "x-overflow": "reject-publish"}]))),
        lambda: method(1, commands.Exchange.Declare(exchange=f"fzx-{rnd.randrange(5)}", exchange_type="topic",
                                                    auto_delete=True, arguments={"alternate-exchange": "amq.direct"})),
        lambda: method(1, commands.Queue.Bind(queue=queue, exchange="amq.topic", routing_key="a.#",
                                              arguments={"k": "v"})),
        lambda: method(1, commands.Basic.Qos(prefetch_count=rnd.randrange(5))),
        lambda: publish(1, rnd, queue),
        lambda: publish(1, rnd, queue),
        lambda: method(1, commands.Basic.Consume(queue=queue, consumer_tag="c", arguments={"x-priority": 2})),
        lambda: method(1, commands.Basic.Ack(delivery_tag=rnd.randrange(4), multiple=rnd.random() < 0.5)),
        lambda: method(1, commands.Basic.Get(queue=queue)),
        lambda: method(1, commands.Confirm.Select()),
        lambda: method(1, commands.Tx.Select()),
        lambda: method(1, commands.Tx.Commit()),
        lambda: method(1, commands.Basic.Reject(delivery_tag=1, requeue=False)),
        lambda: method(rnd.randrange(1, 4), commands.Channel.Open()),
        lambda: method(1, commands.Queue.Purge(queue=queue)),
        lambda: method(1, commands.Channel.Close(reply_code=200, reply_text="", class_id=0, method_id=0)),
    ]
    parts += [rnd.choice(steps)() for _ in range(rnd.randrange(1, 12))]
    return b"".join(parts)


def mutate(data: bytes, rnd: random.Random, keep: int = 0) -> bytes:
    """A few byte-level mutations after the first ``keep`` bytes."""
    out = bytearray(data)
    for _ in range(rnd.randrange(1, 5)):
        if len(out) <= keep:
            out += rnd.randbytes(rnd.randrange(1, 9))
            continue
        at = rnd.randrange(keep, len(out))
        action = rnd.randrange(6)
        if action == 0:
            del out[at + rnd.randrange(len(out) - at):]
        elif action == 1:
            out[at] = rnd.randrange(256)
        elif action == 2:
            out[at:at] = rnd.randbytes(rnd.randrange(1, 9))
        elif action == 3:
            del out[at:at + rnd.randrange(1, 9)]
        elif action == 4:
            out[at:at] = out[at:at + rnd.randrange(1, 64)] * rnd.randrange(1, 4)
        else:
            out[at:at + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff", b"\x00\x01"])
    return bytes(out)


def close_code(data: bytes) -> int | None:
    """The reply code of the first connection.close in ``data`` (None when absent)."""
    pos = 0
    while pos + 7 <= len(data):
        kind, channel, size = struct.unpack_from(">BHI", data, pos)
        payload = data[pos + 7:pos + 7 + size]
        if kind == 1 and channel == 0 and payload[:4] == b"\x00\x0a\x00\x32" and len(payload) >= 6:
            return struct.unpack_from(">H", payload, 4)[0]
        if kind not in (1, 2, 3, 8):
            return None
        pos += 8 + size
    return None


async def one_case(host: str, port: int, rnd: random.Random, tally: collections.Counter) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        tally["connect failed"] += 1
        return
    try:
        if rnd.random() < 0.1:
            stream = mutate(handshake(), rnd)
        else:
            head = handshake()
            stream = head + mutate(session(rnd), rnd)
        writer.write(stream)
        received = bytearray()
        deadline = asyncio.get_running_loop().time() + 0.3
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                break
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except (asyncio.TimeoutError, ConnectionError):
                break
            if not chunk:
                break
            received += chunk
            if close_code(bytes(received)):
                break  # answered: the case is over
        code = close_code(bytes(received))
        tally[f"close {code}" if code else "no close"] += 1
    finally:
        writer.transport.abort()


async def fuzzer(host: str, port: int, seed: int, stop: asyncio.Event, tally: collections.Counter) -> None:
    rnd = random.Random(seed)
    while not stop.is_set():
        await one_case(host, port, rnd, tally)
        tally["cases"] += 1


async def canary(url: str, stop: asyncio.Event, result: dict) -> None:
    """Publish persistent messages with confirms; consume them elsewhere."""
    publisher = await aio_pika.connect(url)
    consumer = await aio_pika.connect(url)
    received: set[int] = set()
    confirmed: set[int] = set()
    try:
        pub = await publisher.channel()
        await pub.declare_queue(CANARY_QUEUE, durable=True)
        con = await consumer.channel()
        queue = await con.declare_queue(CANARY_QUEUE, durable=True)

        async def on_message(message):
            received.add(int(message.body))
            await message.ack()
        await queue.consume(on_message)
        seq = 0
        while not stop.is_set():
            seq += 1
            await pub.default_exchange.publish(
                aio_pika.Message(str(seq).encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=CANARY_QUEUE)
            confirmed.add(seq)
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 30
        while not confirmed <= received and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        result.update(confirmed=len(confirmed), lost=len(confirmed - received))
        await publisher.close()
        await consumer.close()


def rss(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def start_broker(workdir: Path) -> tuple[subprocess.Popen, int, Path]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = workdir / "broker.log"
    proc = subprocess.Popen([sys.executable, "-m", "broker", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", str(workdir / "data")],
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parents[1])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, log_path
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"broker did not start: {log_path.read_text()[-2000:]}")


async def run(args) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="leveret-fuzz-"))
    proc = None
    if args.port:
        port, log_path, pid = args.port, Path(args.log) if args.log else None, args.pid
    else:
        proc, port, log_path = start_broker(workdir)
        pid = proc.pid
    url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
    rss_start = rss(pid) if pid else 0
    stop = asyncio.Event()
    tally: collections.Counter = collections.Counter()
    result: dict = {}
    canary_task = asyncio.create_task(canary(url, stop, result))
    fuzzers = [asyncio.create_task(fuzzer("127.0.0.1", port, args.seed + i, stop, tally))
               for i in range(args.connections)]
    started = time.monotonic()
    crashed = False
    while time.monotonic() - started < args.duration:
        await asyncio.sleep(1)
        if proc is not None and proc.poll() is not None:
            crashed = True
            break
    stop.set()
    await asyncio.gather(*fuzzers, return_exceptions=True)
    canary_error = None
    try:
        await canary_task
    except Exception as exc:  # the canary's connection failed: the broker misbehaved
        canary_error = exc
    rss_end = rss(pid) if pid and not crashed else 0
    log_text = log_path.read_text(errors="replace") if log_path else ""
    internal = log_text.count("internal error") + log_text.count("Traceback")
    if proc is not None and not crashed:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    elapsed = time.monotonic() - started
    print(f"duration_s {elapsed:.0f}")
    print(f"connections {args.connections}")
    print(f"cases {tally['cases']} ({tally['cases'] / elapsed:.0f}/s)")
    for key in sorted(k for k in tally if k.startswith("close") or k in ("no close", "connect failed")):
        print(f"  {key}: {tally[key]}")
    print(f"crashes {int(crashed)}")
    print(f"internal_errors {internal}")
    print(f"canary_confirmed {result.get('confirmed', 0)}")
    print(f"canary_lost {result.get('lost', 'unknown')}{f' (canary failed: {canary_error!r})' if canary_error else ''}")
    print(f"rss_start_mb {rss_start / 2**20:.1f}")
    print(f"rss_end_mb {rss_end / 2**20:.1f}")
    if log_path:
        print(f"broker_log {log_path}")
    failed = crashed or internal or result.get("lost", 1) or canary_error
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds to fuzz (default 60)")
    parser.add_argument("--connections", type=int, default=16, help="fuzzing connections at once (default 16)")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "1")))
    parser.add_argument("--port", type=int, help="fuzz a broker already listening on 127.0.0.1:PORT")
    parser.add_argument("--log", help="that broker's log file (to count internal errors)")
    parser.add_argument("--pid", type=int, help="that broker's pid (for RSS)")
    sys.exit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
