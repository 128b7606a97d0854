"""The command-line side of the control channel: ``call(data_dir,
command, args)`` connects to ``<data_dir>/leveret.sock``, sends one
request and returns the result (``broker.control.wire``)."""

from __future__ import annotations

import socket
from pathlib import Path

from broker.control.address import reachable, socket_path
from broker.control.wire import MAX_LINE, ControlError, parse_reply, request

#: seconds to wait for the broker's reply
TIMEOUT = 60.0


class NoBroker(Exception):
    """No broker answers on the data directory (no socket, or a socket left
    by a broker that is gone). The message is the one the CLI prints."""


def call(data_dir: Path, command: str, args: dict | None = None, timeout: float = TIMEOUT) -> object:
    """Run ``command`` with ``args`` in the broker serving ``data_dir``;
    returns its result.

    Raises NoBroker "no broker running on data directory X" when the socket
    is missing or refuses; ControlError (message, code) for an error reply;
    PermissionError when the socket belongs to another user; OSError
    (TimeoutError...) when the broker does not answer in ``timeout`` s.
    """
    path = socket_path(data_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with reachable(path) as address:
                sock.connect(address)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NoBroker(f"no broker running on data directory {Path(data_dir)}") from None
        except PermissionError:
            raise PermissionError(f"cannot open {path}: permission denied (run this as the user "
                                  f"the broker runs as)") from None
        sock.sendall(request(command, args))
        return parse_reply(_read_line(sock))


def _read_line(sock: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ControlError("the broker closed the control connection without a reply", 500)
        end = chunk.find(b"\n")
        if end >= 0:
            chunks.append(chunk[:end + 1])
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_LINE:
            raise ControlError(f"reply longer than {MAX_LINE} bytes", 500)
