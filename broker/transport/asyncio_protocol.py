"""The asyncio side of a connection: an ``asyncio.Protocol`` that hands
bytes and flow-control events to ``broker.transport.connection.Connection``
(docs/architecture.md, "Performance principles")."""

from __future__ import annotations

import asyncio
from broker.transport.connection import Connection


class AMQPProtocol(asyncio.Protocol):
    """One per accepted socket."""

    __slots__ = ("server", "connection")

    def __init__(self, server):
        self.server = server
        self.connection: Connection | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connection = Connection(self.server, transport)  # type: ignore[arg-type]
        self.server.connections.add(self.connection)

    def data_received(self, data: bytes) -> None:
        self.connection.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self.connection.pause_writing()

    def resume_writing(self) -> None:
        self.connection.resume_writing()
