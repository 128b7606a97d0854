"""The message database across a SIGKILL in the middle of a publish burst
(issue 22): a raw-socket publisher in confirm mode pipelines persistent
1 KiB messages, each with its own body, as fast as the broker takes them;
the broker is killed while it still publishes, so the database process is
behind the WAL and dies with it. After the restart, every confirmed message
is in ``messages.db`` with its body, and none is there twice (no second row,
no second ``routed`` event)."""

from __future__ import annotations

import asyncio

from pamqp import commands, frame
from pamqp.body import ContentBody
from pamqp.exceptions import UnmarshalingException
from pamqp.header import ContentHeader

from tests.interop.mirror_scenario import sql, wait_until

COUNT = 20_000
KILL_AFTER = 5_000      # confirms received before the SIGKILL
CHUNK = 500             # publishes written per loop pass
BODY = 1024


def body(i: int) -> bytes:
    return (b"%d:" % i).ljust(BODY, b"b")


class _Client:
    """Just enough AMQP 0-9-1 over a socket: open, channel 1 in confirm
    mode, pipelined publishes, confirms counted as they arrive."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.buf = b""
        self.confirmed = 0           # every tag up to this one is acked
        self.nacked = 0

    async def read_frame(self):
        while True:
            try:
                used, _channel, value = frame.unmarshal(self.buf)
                self.buf = self.buf[used:]
                return value
            except UnmarshalingException:
                data = await self.reader.read(1 << 16)
                if not data:
                    raise ConnectionError("closed")
                self.buf += data

    async def expect(self, kind):
        while not isinstance(value := await self.read_frame(), kind):
            assert not isinstance(value, (commands.Connection.Close, commands.Channel.Close)), value
        return value

    def send(self, channel: int, value) -> None:
        self.writer.write(frame.marshal(value, channel))

    async def open(self, queue: str) -> None:
        self.writer.write(b"AMQP\x00\x00\x09\x01")
        await self.expect(commands.Connection.Start)
        self.send(0, commands.Connection.StartOk(mechanism="PLAIN", response="\0guest\0guest",
                                                 locale="en_US"))
        tune = await self.expect(commands.Connection.Tune)
        self.send(0, commands.Connection.TuneOk(channel_max=tune.channel_max,
                                                frame_max=tune.frame_max, heartbeat=0))
        self.send(0, commands.Connection.Open(virtual_host="/"))
        await self.expect(commands.Connection.OpenOk)
        self.send(1, commands.Channel.Open())
        await self.expect(commands.Channel.OpenOk)
        self.send(1, commands.Confirm.Select())
        await self.expect(commands.Confirm.SelectOk)
        self.send(1, commands.Queue.Declare(queue=queue, durable=True))
        await self.expect(commands.Queue.DeclareOk)

    async def count_confirms(self) -> None:
        while True:
            value = await self.read_frame()
            if isinstance(value, commands.Basic.Ack):
                # multiple or not: with in-order confirms the tag is the new high mark
                self.confirmed = max(self.confirmed, value.delivery_tag)
            elif isinstance(value, commands.Basic.Nack):
                self.nacked += 1


def publishes(queue: str, first: int, n: int) -> bytes:
    out = []
    for i in range(first, first + n):
        props = commands.Basic.Properties(delivery_mode=2, message_id=f"m{i}")
        out.append(frame.marshal(commands.Basic.Publish(exchange="", routing_key=queue), 1))
        out.append(frame.marshal(ContentHeader(0, BODY, props), 1))
        out.append(frame.marshal(ContentBody(body(i)), 1))
    return b"".join(out)


async def burst_then_kill(proc, queue: str) -> int:
    """Publish until KILL_AFTER confirms, SIGKILL the broker while the
    publisher goes on; returns the number of confirmed messages (tags 1..n
    are messages 0..n-1)."""
    client = _Client(*await asyncio.open_connection(proc.host, proc.port))
    await client.open(queue)
    reader = asyncio.create_task(client.count_confirms())
    try:
        sent = 0
        while sent < COUNT:
            client.writer.write(publishes(queue, sent, CHUNK))
            sent += CHUNK
            await client.writer.drain()
            if client.confirmed >= KILL_AFTER:
                break
        assert client.confirmed >= KILL_AFTER or sent == COUNT
        while client.confirmed < KILL_AFTER:        # all sent before the kill point
            await asyncio.sleep(0.01)
            assert not reader.done(), reader
        proc.kill()
        try:
            await asyncio.wait_for(reader, 10)
        except (ConnectionError, OSError):
            pass
    finally:
        reader.cancel()
        client.writer.close()
    assert client.nacked == 0
    return client.confirmed


def test_every_confirmed_message_is_in_the_database_after_a_kill(fresh_broker, unique):
    proc = fresh_broker()
    queue = unique("burst")
    confirmed = asyncio.run(burst_then_kill(proc, queue))
    assert confirmed >= KILL_AFTER

    proc.start()
    wanted = f"SELECT count(*) FROM messages WHERE CAST(substr(message_id, 2) AS INTEGER) < {confirmed}"
    wait_until(lambda: sql(proc, wanted), [(confirmed,)], timeout=120)
    rows = sql(proc, "SELECT message_id, body FROM messages WHERE "
                     f"CAST(substr(message_id, 2) AS INTEGER) < {confirmed}")
    bodies = {message_id: stored for message_id, stored in rows}
    assert len(bodies) == confirmed
    wrong = [m for m, stored in bodies.items() if stored != body(int(m[1:]))]
    assert wrong == []
    assert sql(proc, "SELECT message_id FROM messages GROUP BY message_id HAVING count(*) > 1") == []
    assert sql(proc, "SELECT message FROM message_events WHERE event = 'routed' "
                     "GROUP BY message, queue HAVING count(*) > 1") == []
    assert sql(proc, "SELECT value FROM meta WHERE key = 'bodies_missing'") == [(0,)]
