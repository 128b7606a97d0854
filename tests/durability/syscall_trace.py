"""Read a broker's system calls, as recorded by ``strace``, into what the
durability contract talks about (docs/architecture.md, "Durability
contract"): when each WAL record became durable (the ``fdatasync`` that
covered its bytes returned), and when each AMQP frame started to leave a
socket.

The trace comes from ``strace -f -tt -yy -xx -s BIG -e trace=`` ``TRACED``
(``STRACE_OPTIONS``): one line per system call, every thread of every
process, each buffer in full as ``\\xNN`` escapes, each file descriptor
annotated with its path (``7</.../wal/00000000000000000001.wal>``) or its
TCP endpoints (``9<TCP:[127.0.0.1:5672->127.0.0.1:40000]>``).

Order is the order of lines in the file. strace writes a line when a call
enters and completes it when the call returns; a call that another
thread's event interrupts is split into ``<unfinished ...>`` and
``<... resumed>`` lines. So a socket write is dated by its entry line (its
bytes may leave from then on) and an fsync by the line where it returned.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from storage.wal.batch_record import expand
from storage.wal.record import DELIVERED, DELIVERED_MANY, MESSAGE, RECORD_HEADER, decode_delivered, decode_message
from storage.wal.segment import SEGMENT_HEADER_SIZE

TRACED = "pwrite64,write,writev,fdatasync,fsync,sendto,sendmsg"
STRACE_OPTIONS = ["-f", "--seccomp-bpf", "-tt", "-yy", "-xx", "-s", str(1 << 22), "-e", f"trace={TRACED}"]

_LINE = re.compile(r"^(\d+) +\S+ (?:<\.\.\. (\w+) resumed>(.*)|(\w+)\((.*))$")
# a path comes \xNN-escaped (-xx), a socket as TCP:[local->peer] in plain text
_FD = re.compile(r"^\d+<(TCP(?:v6)?:\[[^\]]*\]|(?:\\x[0-9a-f]{2})*|[^>]*)>")
_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?')
_RETURN = re.compile(r"\) += (-?\d+)")
_WRITES = {"write", "writev", "pwrite64", "sendto", "sendmsg"}
_SYNCS = {"fdatasync", "fsync"}
_FRAME = struct.Struct(">BHI")
FRAME_END = 0xCE
BASIC = 60
BASIC_DELIVER, BASIC_ACK, BASIC_NACK = 60, 80, 120


@dataclass
class Frame:
    """One AMQP frame the broker sent: ``at`` = the trace line where the
    write holding its first byte entered."""

    at: int
    connection: str
    channel: int
    type: int
    payload: bytes


@dataclass
class Trace:
    """What a trace says. ``message_durable`` and ``delivered_durable``:
    trace line at which the fsync covering a MESSAGE record (by message id)
    or a DELIVERED / DELIVERED_MANY entry (by message id) returned.
    ``bodies``: message id -> body, for every durable MESSAGE record.
    ``frames``: every frame written to a TCP socket, in order.
    ``wal_syncs``: fsync calls on WAL segment files that returned."""

    message_durable: dict[int, int] = field(default_factory=dict)
    delivered_durable: dict[int, int] = field(default_factory=dict)
    bodies: dict[int, bytes] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)
    wal_syncs: int = 0


class _Segment:
    """One WAL segment file: bytes written (offset -> data, in completion
    order), the prefix known durable, and how far it was parsed."""

    def __init__(self):
        self.writes: list[tuple[int, int, bytes]] = []   # (completion line, offset, data)
        self.image = bytearray()
        self.filled: list[tuple[int, int]] = []
        self.parsed = SEGMENT_HEADER_SIZE

    def sync(self, entered: int) -> bytes:
        """Apply the writes that completed before line ``entered`` (when the
        fsync began); return the contiguous durable prefix."""
        for done, offset, data in self.writes:
            if done < entered:
                end = offset + len(data)
                if len(self.image) < end:
                    self.image.extend(bytes(end - len(self.image)))
                self.image[offset:end] = data
                self.filled.append((offset, end))
        self.writes = [w for w in self.writes if w[0] >= entered]
        prefix = 0
        for start, end in sorted(self.filled):
            if start > prefix:
                break
            prefix = max(prefix, end)
        return bytes(self.image[:prefix])


def _unescape(escaped: str) -> bytes:
    return bytes.fromhex(escaped.replace("\\x", ""))


def _data(args: str, returned: int | None) -> bytes:
    chunks = []
    for match in _STRING.finditer(args):
        assert not match.group(2), "strace cut a buffer: raise -s"
        chunks.append(_unescape(match.group(1)))
    data = b"".join(chunks)
    return data if returned is None or returned < 0 else data[:returned]


def _records(trace: Trace, segment: _Segment, durable: bytes, line: int) -> None:
    while segment.parsed + RECORD_HEADER.size <= len(durable):
        length, _crc, kind = RECORD_HEADER.unpack_from(durable, segment.parsed)
        start = segment.parsed + RECORD_HEADER.size
        if start + length > len(durable):
            return
        payload = durable[start:start + length]
        segment.parsed = start + length
        if kind == MESSAGE:
            record = decode_message(payload)
            trace.message_durable.setdefault(record.message_id, line)
            trace.bodies.setdefault(record.message_id, record.body)
        elif kind == DELIVERED:
            trace.delivered_durable.setdefault(decode_delivered(payload).message_id, line)
        elif kind == DELIVERED_MANY:
            for event in expand(kind, payload):
                trace.delivered_durable.setdefault(event.message_id, line)


def parse(text: str) -> Trace:
    """Read an strace output file (``STRACE_OPTIONS``) into a ``Trace``."""
    trace = Trace()
    segments: dict[str, _Segment] = {}
    streams: dict[str, bytearray] = {}
    stream_at: dict[str, list[tuple[int, int]]] = {}    # (stream offset, line) of each write
    pending: dict[str, tuple[int, str, str]] = {}       # pid -> (entry line, call, args)
    for number, line in enumerate(text.splitlines()):
        match = _LINE.match(line)
        if match is None:
            continue
        pid, resumed_call, resumed_rest, call, args = match.groups()
        if resumed_call is not None:
            if pid not in pending:
                continue
            entered, call, args = pending.pop(pid)
            args += resumed_rest
        elif args.endswith("<unfinished ...>"):
            pending[pid] = (number, call, args[:-len("<unfinished ...>")])
            continue
        else:
            entered = number
        fd = _FD.match(args)
        returned = _RETURN.search(args)
        if fd is None or returned is None or call not in _WRITES | _SYNCS:
            continue
        target, result = fd.group(1), int(returned.group(1))
        if target.startswith("\\x"):
            target = _unescape(target).decode(errors="replace")
        if target.endswith(".wal") and call in _SYNCS and result == 0:
            segment = segments.setdefault(target, _Segment())
            trace.wal_syncs += 1
            _records(trace, segment, segment.sync(entered), number)
        elif target.endswith(".wal") and call == "pwrite64" and result > 0:
            offset = int(args[:returned.start()].rsplit(",", 1)[-1])
            segments.setdefault(target, _Segment()).writes.append((number, offset, _data(args, result)))
        elif target.startswith(("TCP:[", "TCPv6:[")) and call in _WRITES and result > 0:
            stream = streams.setdefault(target, bytearray())
            stream_at.setdefault(target, []).append((len(stream), entered))
            stream += _data(args, result)
    for connection, stream in streams.items():
        trace.frames += _frames(connection, bytes(stream), stream_at[connection])
    trace.frames.sort(key=lambda frame: frame.at)
    return trace


def _frames(connection: str, stream: bytes, writes: list[tuple[int, int]]) -> list[Frame]:
    """The complete frames of one connection's output, each dated by the
    write that carried its first byte. Raises AssertionError on a bad frame
    end (the trace was misread)."""
    frames, offset, write = [], 0, 0
    while offset + _FRAME.size <= len(stream):
        kind, channel, size = _FRAME.unpack_from(stream, offset)
        end = offset + _FRAME.size + size
        if end >= len(stream):
            break
        assert stream[end] == FRAME_END, f"{connection}: no frame end at {end}"
        while write + 1 < len(writes) and writes[write + 1][0] <= offset:
            write += 1
        frames.append(Frame(writes[write][1], connection, channel, kind, stream[offset + _FRAME.size:end]))
        offset = end + 1
    return frames
