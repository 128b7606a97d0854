"""The broker's listening sockets: plain AMQP on ``--port`` and amqps on
``--tls-port``, on every ``--host`` address, and the TLS context of the
amqps port (the standard library's ``ssl``, TLS 1.2 minimum).

Every listener is bound before any recovery work and starts accepting only
once recovery is done (``open_listeners`` then ``start_serving``), so that a
busy port is reported at once, as one line naming the address and the
cause, with exit status ``EXIT_CANNOT_LISTEN``.

Sources: RabbitMQ's networking guide (rabbitmq.com/docs/networking:
listeners, ``listeners.tcp = none``, dual-stack ``[::]``) and TLS guide
(rabbitmq.com/docs/ssl: ``verify_peer`` with ``fail_if_no_peer_cert``,
TLS 1.2 minimum).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable

from broker.app.config import DEFAULT_HOSTS, Config

log = logging.getLogger(__name__)

#: exit status of the broker when a listener cannot be opened: the address
#: is in use or not available here, or the TLS certificate, key or CA file
#: cannot be loaded
EXIT_CANNOT_LISTEN = 4

#: errors that mean "this machine has no IPv6" when binding ``::1``
_NO_IPV6 = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT}


class ListenError(Exception):
    """A listener cannot be opened; ``str()`` is the one log line, naming the
    address (or file) and the cause."""


@dataclasses.dataclass
class Listener:
    """One bound listening socket group: ``kind`` ("amqp" or "amqps"),
    the ``host`` it was asked for, the ``port`` bound (the real one when 0
    was asked for) and its asyncio ``server`` (not serving until
    ``start_serving``)."""

    kind: str
    host: str
    port: int
    server: asyncio.AbstractServer

    def address(self) -> str:
        """``127.0.0.1:5672`` or ``[::1]:5672``."""
        return format_address(self.host, self.port)


def format_address(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (RFC 3986)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listener_problem(config: Config) -> str | None:
    """Why the listener settings cannot work, or None: nothing to listen on
    (``--plain off`` without ``--tls-cert``), TLS files without
    ``--tls-cert``, ``--tls-verify peer`` without ``--tls-ca`` (nothing to
    check a client certificate against). The command line reports it as a
    usage error (exit status 2)."""
    if not config.plain and config.tls_cert is None:
        return "--plain off needs --tls-cert (nothing to listen on)"
    if config.tls_cert is None:
        given = [flag for flag, value in (("--tls-key", config.tls_key), ("--tls-ca", config.tls_ca))
                 if value is not None]
        if given or config.tls_verify != "none":
            return f"{', '.join(given) or '--tls-verify peer'} needs --tls-cert"
    if config.tls_verify == "peer" and config.tls_ca is None:
        return "--tls-verify peer needs --tls-ca (the CA that signs client certificates)"
    return None


def tls_context(config: Config) -> ssl.SSLContext:
    """The amqps server context: ``tls_cert`` and ``tls_key`` (PEM), TLS 1.2
    minimum, client certificates required and checked against ``tls_ca``
    when ``tls_verify`` is "peer", not asked for when "none". Raises
    ListenError naming the file that cannot be loaded and why."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = str(config.tls_cert), None if config.tls_key is None else str(config.tls_key)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        files = cert if key is None else f"{cert} and {key}"
        raise ListenError(f"cannot load the TLS certificate and key from {files}: {_cause(exc)}") from None
    if config.tls_ca is not None:
        try:
            context.load_verify_locations(cafile=str(config.tls_ca))
        except (OSError, ssl.SSLError) as exc:
            raise ListenError(f"cannot load the TLS CA certificates from {config.tls_ca}: {_cause(exc)}") from None
    context.verify_mode = ssl.CERT_REQUIRED if config.tls_verify == "peer" else ssl.CERT_NONE
    return context


async def open_listeners(config: Config, plain: Callable[[], asyncio.Protocol],
                         tls: Callable[[], asyncio.Protocol] | None) -> list[Listener]:
    """Bind every listener, none accepting yet: ``plain`` makes the protocol
    of a plain AMQP connection (on ``config.port``, when ``config.plain``),
    ``tls`` that of an amqps one (on ``config.tls_port``, when given). On
    each address of ``config.host``; with the default hosts, ``::1`` is left
    out (logged) where the machine has no IPv6. Raises ListenError for the
    first that cannot be bound, after closing those already bound."""
    wanted = [("amqp", config.port, plain)] if config.plain else []
    if tls is not None:
        wanted.append(("amqps", config.tls_port, tls))
    loop = asyncio.get_running_loop()
    listeners: list[Listener] = []
    try:
        for kind, port, factory in wanted:
            for host in config.host:
                try:
                    server = await loop.create_server(factory, host, port, reuse_address=True, backlog=1024,
                                                      start_serving=False)
                except OSError as exc:
                    if config.host == DEFAULT_HOSTS and host == "::1" and _no_ipv6(exc):
                        log.info("no IPv6 on this machine (%s): not listening on %s", _cause(exc),
                                 format_address(host, port))
                        continue
                    raise ListenError(f"cannot listen on {format_address(host, port)} ({kind}): "
                                      f"{_cause(exc)}") from None
                listeners.append(Listener(kind, host, server.sockets[0].getsockname()[1], server))
    except BaseException:
        close(listeners)
        raise
    return listeners


async def start_serving(listeners: list[Listener]) -> None:
    """Start accepting connections on every listener."""
    for listener in listeners:
        await listener.server.start_serving()


def close(listeners: list[Listener]) -> None:
    """Stop accepting on every listener (open connections are not touched)."""
    for listener in listeners:
        listener.server.close()


def describe(listeners: list[Listener]) -> str:
    """The log line's list: ``127.0.0.1:5672, [::1]:5672 (amqp), 127.0.0.1:5671 (amqps)``."""
    parts = []
    for kind in ("amqp", "amqps"):
        addresses = [listener.address() for listener in listeners if listener.kind == kind]
        if addresses:
            parts.append(f"{', '.join(addresses)} ({kind})")
    return ", ".join(parts)


def _no_ipv6(exc: OSError) -> bool:
    return not socket.has_ipv6 or exc.errno in _NO_IPV6 or isinstance(exc, socket.gaierror)


def _cause(exc: OSError | ssl.SSLError) -> str:
    """The reason alone, without the address asyncio puts in its message:
    ``address already in use``."""
    if isinstance(exc, ssl.SSLError):
        return exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    if isinstance(exc, socket.gaierror) or exc.errno is None or exc.errno <= 0:
        return (exc.strerror or str(exc)).lower()
    return os.strerror(exc.errno).lower()
