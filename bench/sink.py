"""A sink "broker" that discards everything: the load generator's ceiling.

It speaks just enough AMQP 0-9-1 for ``bench.amqp_client``: the connection
handshake, channel.open/close, confirm.select, queue/exchange declare, bind,
delete and purge (all answered "ok"), basic.qos. Published messages are
counted and thrown away; in confirm mode every batch of bytes read is
confirmed with one basic.ack (multiple=true). ``queue.declare`` answers with
``message_count`` = every basic.publish the sink has received since it
started (all connections), so a publisher can check what "landed". On
``basic.consume`` the sink streams an endless run of pre-encoded
deliveries (bodies in the ``bench.publisher`` layout, sequence numbers from 0,
timestamps of the moment each batch is written) as fast as the socket takes
them, ignoring prefetch and acks: that measures a consumer's ceiling.

    python -m bench.sink --port 5699 [--size 16]   # size of the bodies it delivers, bytes

``SinkProcess`` starts it as a subprocess on a free port (``start``/``stop``,
``pid``), like ``tests.interop.server_process.BrokerProcess``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from pamqp import commands
from pamqp import frame as pframe
from pamqp import header as pheader
from pamqp.body import ContentBody

from tests.interop.server_process import free_port, stop_process, wait_listening

FRAME_HEAD = struct.Struct(">BHI")
PUBLISH = b"\x00\x3c\x00\x28"
ACK_HEAD = struct.Struct(">BHI4sQB")       # frame head + basic.ack payload
STAMP = struct.Struct(">QQ")
ROOT = Path(__file__).resolve().parents[1]
SERVER_PROPERTIES = {"product": "leveret-bench-sink",
                     "capabilities": {"publisher_confirms": True, "basic.nack": True,
                                      "consumer_cancel_notify": True, "per_consumer_qos": True}}


class Sink:
    """Process-wide state: ``published`` counts basic.publish frames (all connections)."""

    def __init__(self, size: int):
        self.size = size
        self.published = 0


class SinkProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.buf = bytearray()
        self.header_seen = False
        self.confirm: dict[int, int] = {}      # channel -> publishes counted (confirm mode)
        self.paused = False
        self.streams: list = []                # (channel, consumer tag, queue, next seq) per consumer
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def reply(self, channel: int, method) -> None:
        self.transport.write(pframe.marshal(method, channel))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        if not self.header_seen:
            if len(buf) < 8:
                return
            self.header_seen, pos = True, 8
            self.reply(0, commands.Connection.Start(server_properties=SERVER_PROPERTIES,
                                                    mechanisms="PLAIN", locales="en_US"))
        end, unpack = len(buf), FRAME_HEAD.unpack_from
        confirm, counted = self.confirm, 0
        while end - pos >= 7:
            ftype, channel, size = unpack(buf, pos)
            stop = pos + 7 + size
            if stop >= end:
                break
            if ftype == 1:
                if buf[pos + 7:pos + 11] == PUBLISH:
                    counted += 1
                    if channel in confirm:
                        confirm[channel] += 1
                else:
                    self.method(channel, bytes(buf[pos:stop + 1]))
            pos = stop + 1
        del buf[:pos]
        self.sink.published += counted
        if counted and confirm:
            for channel, tag in confirm.items():
                if tag:
                    self.transport.write(ACK_HEAD.pack(1, channel, 13, b"\x00\x3c\x00\x50", tag, 1) + b"\xce")

    def method(self, channel: int, frame: bytes) -> None:
        """Answer one (rare) method frame."""
        _, _, m = pframe.unmarshal(frame)
        C = commands
        if isinstance(m, C.Connection.StartOk):
            self.reply(0, C.Connection.Tune(channel_max=2047, frame_max=131072, heartbeat=0))
        elif isinstance(m, C.Connection.Open):
            self.reply(0, C.Connection.OpenOk())
        elif isinstance(m, C.Connection.Close):
            self.reply(0, C.Connection.CloseOk())
            self.transport.close()
        elif isinstance(m, C.Channel.Open):
            self.reply(channel, C.Channel.OpenOk())
        elif isinstance(m, C.Channel.Close):
            self.reply(channel, C.Channel.CloseOk())
        elif isinstance(m, C.Confirm.Select):
            self.confirm[channel] = 0
            self.reply(channel, C.Confirm.SelectOk())
        elif isinstance(m, C.Queue.Declare):
            self.reply(channel, C.Queue.DeclareOk(queue=m.queue or "sink-queue",
                                                  message_count=self.sink.published, consumer_count=0))
        elif isinstance(m, C.Queue.Delete):
            self.reply(channel, C.Queue.DeleteOk(message_count=0))
        elif isinstance(m, C.Queue.Purge):
            self.reply(channel, C.Queue.PurgeOk(message_count=0))
        elif isinstance(m, C.Queue.Bind):
            self.reply(channel, C.Queue.BindOk())
        elif isinstance(m, C.Exchange.Declare):
            self.reply(channel, C.Exchange.DeclareOk())
        elif isinstance(m, C.Exchange.Delete):
            self.reply(channel, C.Exchange.DeleteOk())
        elif isinstance(m, C.Basic.Qos):
            self.reply(channel, C.Basic.QosOk())
        elif isinstance(m, C.Basic.Consume):
            tag = m.consumer_tag or f"sink-{len(self.streams)}"
            self.reply(channel, C.Basic.ConsumeOk(consumer_tag=tag))
            self.streams.append(DeliveryStream(self, channel, tag, m.queue, self.sink.size))
            asyncio.get_running_loop().call_soon(self.streams[-1].pump)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in self.streams:
            stream.pump()

    def connection_lost(self, exc) -> None:
        self.streams.clear()
        self.paused = True


class DeliveryStream:
    """Writes batches of ``BATCH`` deliveries while the transport is not paused."""

    BATCH = 256

    def __init__(self, proto: SinkProtocol, channel: int, tag: str, queue: str, size: int):
        self.proto, self.seq = proto, 0
        deliver = pframe.marshal(commands.Basic.Deliver(consumer_tag=tag, delivery_tag=1, exchange="",
                                                        routing_key=queue), channel)
        body = bytes(16) + (bytes(range(256)) * (size // 256 + 1))[8:size - 8]
        head = pframe.marshal(pheader.ContentHeader(0, size, commands.Basic.Properties()), channel)
        frames = deliver + head + b"".join(pframe.marshal(ContentBody(body[i:i + 131064]), channel)
                                           for i in range(0, size, 131064))
        self.template, self.stride = frames, len(frames)
        self.tag_at = 7 + 4 + 1 + len(tag.encode())             # delivery tag offset in the template
        self.seq_at = len(deliver) + len(head) + 7              # sequence number + timestamp offset

    def pump(self) -> None:
        proto = self.proto
        if proto.paused or self not in proto.streams:
            return
        data = bytearray(self.template) * self.BATCH
        pack_tag, pack_stamp = struct.Struct(">Q").pack_into, STAMP.pack_into
        now, seq, stride = time.monotonic_ns(), self.seq, self.stride
        for i in range(self.BATCH):
            base = i * stride
            pack_tag(data, base + self.tag_at, seq + i + 1)
            pack_stamp(data, base + self.seq_at, seq + i, now)
        self.seq += self.BATCH
        proto.transport.write(data)
        if not proto.paused:
            asyncio.get_running_loop().call_soon(self.pump)


async def serve(host: str, port: int, size: int) -> None:
    sink = Sink(size)
    server = await asyncio.get_running_loop().create_server(lambda: SinkProtocol(sink), host, port)
    print(f"sink listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


class SinkProcess:
    """The sink as a subprocess on 127.0.0.1 and a free port; only this
    process is ever signalled (by its pid). ``size``: body bytes of the
    deliveries it streams."""

    def __init__(self, size: int = 16):
        self.host, self.port, self.size = "127.0.0.1", free_port(), size
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 10.0) -> "SinkProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sink", "--port", str(self.port),
                                      "--size", str(self.size)], cwd=ROOT, stdout=subprocess.DEVNULL)
        if wait_listening(self.proc, self.host, self.port, timeout):
            return self
        if self.proc.poll() is not None:
            raise RuntimeError(f"sink exited with {self.proc.returncode}")
        self.stop()
        raise RuntimeError("sink did not listen")

    def stop(self) -> None:
        stop_process(self.proc, 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=16, help="body bytes of streamed deliveries (>= 16)")
    args = parser.parse_args()
    if args.size < 16:
        parser.error("--size must be at least 16")
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(args.host, args.port, args.size))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
