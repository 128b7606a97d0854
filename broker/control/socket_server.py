"""The broker side of the control channel: ``ControlServer`` listens on
``<data_dir>/leveret.sock`` and answers one JSON request per line
(``broker.control.wire``) with the commands of a ``Registry``.

Only the broker's OS user (and root) can use it: the socket file is mode
0600, and the peer's uid (SO_PEERCRED) is checked again on every
connection. A socket left by a killed broker is replaced at start: the
data directory's WAL lock is already held, so no other broker can be using
it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from pathlib import Path

from broker.control.address import reachable
from broker.control.registry import Registry
from broker.control.wire import FORBIDDEN, INTERNAL_ERROR, MAX_LINE, ControlError, error, ok, parse_request

log = logging.getLogger(__name__)

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ControlServer:
    """Serves ``registry``'s commands on the Unix socket ``path`` with
    ``context`` (the broker process) as the handlers' first argument.
    ``start`` binds it, ``close`` removes it."""

    def __init__(self, path: Path, registry: Registry, context: object):
        self.path = Path(path)
        self.registry = registry
        self.context = context
        self._server: asyncio.AbstractServer | None = None
        self._inode: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> bool:
        """Bind under a temporary name, make it 0600, then rename it over
        ``path``: no other user can connect in between, and a stale socket
        is replaced in one step. A socket that cannot be made is logged and
        the broker runs without it (False): clients do not need it."""
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with reachable(temporary) as address:
                try:
                    os.unlink(temporary)
                except FileNotFoundError:
                    pass
                sock.bind(address)
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
            self._inode = os.stat(self.path).st_ino
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
        except OSError as exc:
            sock.close()
            log.error("control socket %s cannot be created (%s): the leveret commands that need a "
                      "running broker will not reach it", self.path, exc.strerror or exc)
            return False
        except BaseException:
            sock.close()
            raise
        log.info("control socket %s (mode 0600)", self.path)
        return True

    async def close(self) -> None:
        """Stop listening, end open control connections and remove the
        socket file if it is still this server's (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            peer = _peer(writer)
            refused = peer is not None and peer[1] not in (os.geteuid(), 0)
            if refused:
                log.warning("control socket: refused a connection from uid %d (pid %d)", peer[1], peer[0])
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE
                    writer.write(error(ControlError(f"request longer than {MAX_LINE} bytes")))
                    return
                if not line:
                    return
                if refused:  # the answer to its first request, then the end
                    writer.write(error(ControlError("only the broker's user may use the control socket",
                                                    FORBIDDEN)))
                    await writer.drain()
                    return
                writer.write(await self._answer(line))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, line: bytes) -> bytes:
        """The reply line to one request line."""
        name = "?"
        try:
            name, args = parse_request(line)
            reply = ok(await self.registry.call(self.context, name, args))
        except ControlError as exc:
            log.info("control command %s refused (%d): %s", name, exc.code, exc.message)
            return error(exc)
        except Exception:
            log.exception("control command %s failed", name)
            return error(ControlError(f"command {name!r} failed inside the broker (see its log)",
                                      INTERNAL_ERROR))
        log.debug("control command %s answered", name)
        return reply


def _peer(writer: asyncio.StreamWriter) -> tuple[int, int, int] | None:
    """(pid, uid, gid) of the peer, None where SO_PEERCRED is unknown."""
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        return _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))
    except OSError:
        return None

