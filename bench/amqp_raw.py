"""A minimal asyncio AMQP 0-9-1 client for load generation, built with pamqp.

Only what the benchmarks need: open a connection and one channel (PLAIN
login, heartbeats off), declare a durable queue, publish pre-built frames
without waiting for anything, and consume with no-ack while discarding the
bytes. A Python client library would be the bottleneck at 10,000 msg/s;
this one builds each publish by patching a fixed-width message-id into a
pre-marshalled frame triple (basic.publish + content header + body,
AMQP 0-9-1 section 2.3.5), so the client costs about a microsecond per
message.
"""

from __future__ import annotations

import asyncio

from pamqp import commands, frame
from pamqp.body import ContentBody
from pamqp.exceptions import UnmarshalingException
from pamqp.header import ContentHeader

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
#: digits of the message-id property the publisher writes (zero-padded sequence number)
ID_DIGITS = 12


class RawConnection:
    """One connection with channel 1 open. ``await RawConnection.open(host,
    port)``; ``writer`` is the asyncio StreamWriter for bulk writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self._buf = b""
        self.frame_max = 131072

    @classmethod
    async def open(cls, host: str, port: int, user: str = "guest", password: str = "guest",
                   vhost: str = "/") -> "RawConnection":
        reader, writer = await asyncio.open_connection(host, port)
        conn = cls(reader, writer)
        writer.write(PROTOCOL_HEADER)
        await conn.expect(commands.Connection.Start)
        conn.send(0, commands.Connection.StartOk(
            client_properties={"product": "leveret-bench"}, mechanism="PLAIN",
            response=f"\0{user}\0{password}", locale="en_US"))
        tune = await conn.expect(commands.Connection.Tune)
        conn.frame_max = tune.frame_max or conn.frame_max
        conn.send(0, commands.Connection.TuneOk(channel_max=tune.channel_max,
                                                 frame_max=conn.frame_max, heartbeat=0))
        conn.send(0, commands.Connection.Open(virtual_host=vhost))
        await conn.expect(commands.Connection.OpenOk)
        conn.send(1, commands.Channel.Open())
        await conn.expect(commands.Channel.OpenOk)
        return conn

    def send(self, channel: int, value) -> None:
        self.writer.write(frame.marshal(value, channel))

    async def expect(self, kind):
        """Read frames until one of type ``kind``; returns it. Raises
        RuntimeError on connection.close / channel.close."""
        while True:
            while True:
                try:
                    used, _channel, value = frame.unmarshal(self._buf)
                    break
                except UnmarshalingException:
                    data = await self.reader.read(65536)
                    if not data:
                        raise ConnectionError("the broker closed the connection")
                    self._buf += data
            self._buf = self._buf[used:]
            if isinstance(value, kind):
                return value
            if isinstance(value, (commands.Connection.Close, commands.Channel.Close)):
                raise RuntimeError(f"broker closed: {value.reply_code} {value.reply_text}")

    async def declare_durable_queue(self, name: str) -> None:
        self.send(1, commands.Queue.Declare(queue=name, durable=True))
        await self.expect(commands.Queue.DeclareOk)

    async def consume_and_discard(self, queue: str) -> None:
        """basic.consume with no-ack, then read and drop everything until
        the connection closes (run it as a task, cancel it to stop)."""
        self.send(1, commands.Basic.Consume(queue=queue, consumer_tag="bench-consumer",
                                            no_ack=True))
        await self.expect(commands.Basic.ConsumeOk)
        self._buf = b""
        while await self.reader.read(1 << 20):
            pass

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


class PublishTemplate:
    """Pre-marshalled frames of one persistent basic.publish to ``exchange``
    / ``routing_key`` with a ``body_size``-byte body (at most one body
    frame) and a message-id of ``ID_DIGITS`` digits; ``frames(seq)`` returns
    the bytes with the message-id set to ``seq``."""

    def __init__(self, exchange: str, routing_key: str, body_size: int, frame_max: int):
        if body_size > frame_max - 8:
            raise ValueError(f"body of {body_size} bytes needs more than one frame")
        marker = "9" * ID_DIGITS
        props = commands.Basic.Properties(delivery_mode=2, message_id=marker,
                                          content_type="application/octet-stream")
        publish = frame.marshal(commands.Basic.Publish(exchange=exchange,
                                                       routing_key=routing_key), 1)
        head = frame.marshal(ContentHeader(0, body_size, props), 1)
        body = frame.marshal(ContentBody(b"x" * body_size), 1) if body_size else b""
        self._template = bytearray(publish + head + body)
        self._at = len(publish) + head.index(marker.encode())
        self._fmt = "%0" + str(ID_DIGITS) + "d"

    def frames(self, seq: int) -> bytes:
        t = self._template
        t[self._at:self._at + ID_DIGITS] = (self._fmt % seq).encode()
        return bytes(t)
