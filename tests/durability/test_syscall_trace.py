"""tests/durability/syscall_trace.py on hand-written strace lines: the
parser is what the confirm-after-fsync test trusts, so its reading of
interleaved threads (``<unfinished ...>`` / ``<... resumed>``), partial
writes and escaped paths is pinned here. Lines are in the format of
STRACE_OPTIONS (strace 6.1: -f -tt -yy -xx)."""

from __future__ import annotations

import struct

from storage.wal.record import MESSAGE, encode_message, encode_record
from storage.wal.segment import SEGMENT_HEADER_SIZE, segment_header
from tests.durability.syscall_trace import BASIC, BASIC_ACK, parse

WAL = "/data/wal/00000000000000000001.wal"
SOCKET = "TCP:[127.0.0.1:5672->127.0.0.1:40000]"


def hexed(data: bytes) -> str:
    return "".join(f"\\x{byte:02x}" for byte in data)


def wal_fd() -> str:
    return f"7<{hexed(WAL.encode())}>"


def ack_frame(tag: int) -> bytes:
    payload = struct.pack(">HHQB", BASIC, BASIC_ACK, tag, 0)
    return struct.pack(">BHI", 1, 1, len(payload)) + payload + b"\xce"


def header_write() -> str:
    """The segment file's 16-byte header, written at offset 0 (as the WAL does first)."""
    data = segment_header(1)
    return f'11 10:00:00.000000 pwrite64({wal_fd()}, "{hexed(data)}", {len(data)}, 0) = {len(data)}'


def record(message_id: int) -> bytes:
    payload = encode_message(message_id, "/", "", "q", ["q"], b"\x00" * 14, b"body-%d" % message_id)
    return encode_record(MESSAGE, payload)


def test_an_ack_written_while_the_fsync_runs_is_before_it():
    """Thread 11 enters fdatasync, thread 10 writes the ack, then the
    fdatasync returns: the ack left before the record was durable."""
    data = record(1)
    frame = ack_frame(1)
    trace = parse("\n".join([
        header_write(),
        f'11 10:00:00.000001 pwrite64({wal_fd()}, "{hexed(data)}", {len(data)}, {SEGMENT_HEADER_SIZE}) = {len(data)}',
        f"11 10:00:00.000002 fdatasync({wal_fd()} <unfinished ...>",
        f'10 10:00:00.000003 write(9<{SOCKET}>, "{hexed(frame)}", {len(frame)}) = {len(frame)}',
        "11 10:00:00.000004 <... fdatasync resumed>) = 0",
    ]))
    assert trace.wal_syncs == 1
    [ack] = trace.frames
    assert ack.at < trace.message_durable[1]
    assert trace.bodies[1] == b"body-1"


def test_only_bytes_written_before_the_fsync_began_are_durable():
    """A record whose second half is written after the fsync entered is
    not covered by it; a partial write counts only the bytes returned."""
    data = record(2)
    half = len(data) // 2
    trace = parse("\n".join([
        header_write(),
        f'11 10:00:00.000001 pwrite64({wal_fd()}, "{hexed(data)}", {len(data)}, {SEGMENT_HEADER_SIZE}) = {half}',
        f"11 10:00:00.000002 fdatasync({wal_fd()}) = 0",
        f'11 10:00:00.000003 pwrite64({wal_fd()}, "{hexed(data[half:])}", {len(data) - half}, '
        f"{SEGMENT_HEADER_SIZE + half}) = {len(data) - half}",
    ]))
    assert trace.wal_syncs == 1 and trace.message_durable == {}
    trace = parse("\n".join([
        header_write(),
        f'11 10:00:00.000001 pwrite64({wal_fd()}, "{hexed(data)}", {len(data)}, {SEGMENT_HEADER_SIZE}) = {half}',
        f'11 10:00:00.000003 pwrite64({wal_fd()}, "{hexed(data[half:])}", {len(data) - half}, '
        f"{SEGMENT_HEADER_SIZE + half}) = {len(data) - half}",
        f"11 10:00:00.000004 fdatasync({wal_fd()}) = 0",
    ]))
    assert trace.message_durable == {2: 3}   # the line where the fsync returned


def test_a_frame_split_over_writes_is_dated_by_its_first_byte():
    frame = ack_frame(7)
    trace = parse("\n".join([
        f'10 10:00:00.000001 writev(9<{SOCKET}>, [{{iov_base="{hexed(frame[:5])}", iov_len=5}}], 1) = 5',
        f'10 10:00:00.000002 sendto(9<{SOCKET}>, "{hexed(frame[5:])}", {len(frame) - 5}, 0, NULL, 0) '
        f"= {len(frame) - 5}",
    ]))
    [ack] = trace.frames
    assert ack.at == 0 and ack.payload[:4] == struct.pack(">HH", BASIC, BASIC_ACK)
