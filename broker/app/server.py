"""The broker process: listeners, vhosts, users, the message database
mirror, signal handling and shutdown (connection.close 320
CONNECTION_FORCED to every client, as RabbitMQ does on shutdown).

Start order: every listener is bound first (broker.app.listeners), then
recovery runs, then the listeners accept. Exit statuses of ``serve``: 0
after SIGTERM/SIGINT, 1 another start-up failure, 3 a damaged WAL,
``listeners.EXIT_CANNOT_LISTEN`` (4) a listener that cannot be opened."""

from __future__ import annotations

import asyncio
import gc
import logging
import platform
import signal

import aiosqlite

from broker import __version__
from broker.app.alarms import ResourceAlarms, available_memory, disk_limit, memory_limit
from broker.access import AccessControl
from broker.admin import AdminError, AdminService
from broker.admin.definitions import load_definitions_file
from broker.admin.definitions_records import DefinitionsError
from broker.app import listeners
from broker.app.config import LOG_FORMAT, Config
from broker.app.data_dir import EXIT_DATA_DIR, DataDirError, check_data_dir
from broker.control.address import socket_path
from broker.control.socket_server import ControlServer
from broker.control.standard import standard_registry
from broker.management import ManagementServer
from broker.transport.asyncio_protocol import AMQPProtocol, TLSAcceptor
from broker.persistence.access_store import load_access
from broker.persistence.recovery import recover
from broker.persistence.dedup_journal import FILE_NAME as DEDUP_FILE
from broker.persistence.dedup_journal import DedupJournal
from broker.persistence.message_database import (MirrorSupervisor, db_path, keep_wal_segments,
                                                 message_database_process)
from broker.persistence.store import Store, WalError
from broker.vhost.deduplication import cache_for
from broker.transport.flow_control import PublishFlow
from broker.vhost.namespace import VHost
from broker.model.stats import ChurnStats
from broker.metrics.endpoint import MetricsEndpoint
from broker.metrics.totals import StatsSampler
from protocol import reply_codes
from protocol.errors import connection_error

log = logging.getLogger(__name__)

#: cyclic garbage collector thresholds (gen0 allocations, gen1 and gen2
#: collections). A full (gen2) collection walks every element of every
#: tracked container: with a million messages in queues (deques) and expiry
#: indexes it takes 50-75 ms on the bench machine even though the objects
#: it could free are few (per-message data is untracked tuples and ints,
#: and what recovery built is frozen). CPython's default of a full
#: collection every 10 gen1 ones (about every 2.5 s under load) then made
#: messages that were due meanwhile late (issue 4: TTL within 100 ms); every
#: 100 gen1 collections is about every 25 s under load.
GC_THRESHOLDS = (700, 10, 100)

#: seconds a shutdown waits for clients to answer connection.close
SHUTDOWN_GRACE = 3.0
#: seconds a shutdown waits for aborted connections to be torn down (their
#: requeues are WAL records) before the WAL is closed
ABORT_GRACE = 0.5

CAPABILITIES = ("publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
                "connection.blocked", "per_consumer_qos", "authentication_failure_close",
                "consumer_priorities", "direct_reply_to")


class Server:
    """Everything one broker process holds: ``vhosts`` by name, access
    control (``access``: users, permissions, limits; loaded by ``start``),
    the admin service (``admin``: broker.admin.AdminService), the open
    ``connections``, the store (``storage``:
    broker.persistence.store.Store), the publish ``flow`` control, the
    resource ``alarms`` (broker/app/alarms.py), the
    deduplication journal and the supervisor of the message database
    process, ``mirror`` (None when off), and the ``listeners``
    (broker.app.listeners.Listener, bound by ``start``). The flow control
    and the journal exist before any vhost: ``make_vhost`` hands them to
    each one."""

    def __init__(self, config: Config):
        self.config = config
        if config.fsync not in ("always", "never"):
            raise ValueError(f"fsync must be 'always' or 'never', not {config.fsync!r}")
        self.storage = Store.in_directory(config.data_dir, fsync=config.fsync == "always",
                                          segment_size=config.wal_segment_size)
        #: replaced by the stored one in ``start`` (after recovery opened the
        #: topology database); empty until then: no login succeeds
        self.access = AccessControl(None, config.loopback_users)
        self.admin = AdminService(self)
        self.connections: set = set()
        #: connections and channels opened and closed (broker/model/stats.py)
        self.churn = ChurnStats()
        #: connections past connection.open (``--max-connections`` counts these;
        #: broker.transport.login counts them)
        self.open_connections = 0
        self.flow = PublishFlow(self.connections)
        #: the memory and disk alarms (``alarms.active``: the ones raised now)
        self.alarms = ResourceAlarms(
            self.flow, config.data_dir, memory_limit(config.memory_high_watermark, available_memory()),
            disk_limit(config.disk_free_limit, config.wal_segment_size))
        #: opened by ``start``; a no-op when the file cannot be used
        self.dedup_journal = DedupJournal(config.data_dir / DEDUP_FILE)
        #: the vhosts of the topology and of access control, made by ``start``
        self.vhosts: dict[str, VHost] = {}
        self.listeners: list[listeners.Listener] = []
        self._compactor: asyncio.Task | None = None
        self.mirror: MirrorSupervisor | None = None
        #: message totals and rates every 5 s (broker/metrics/totals.py)
        self.sampler = StatsSampler(self)
        #: the Prometheus endpoint (None when off or its port cannot be bound)
        self.metrics: MetricsEndpoint | None = None
        #: the local control channel (leveret queues list ...), started after recovery
        self.control = ControlServer(socket_path(config.data_dir), standard_registry(), self)
        #: the management HTTP API (broker/management), None when switched off
        self.management = ManagementServer(self) if config.management else None

    def make_vhost(self, name: str) -> VHost:
        """A new vhost ``name`` with the server's store, publish flow
        control and deduplication journal (recovery makes the vhosts named
        in the stored topology with it)."""
        return VHost(name, storage=self.storage, flow=self.flow, dedup_journal=self.dedup_journal)

    def admit_connection(self) -> None:
        """Raise AMQPError 530 NOT_ALLOWED for a connection.open when
        ``--max-connections`` connections are open already. RabbitMQ refuses
        a vhost's or a user's connection limit so (rabbit_reader.erl
        ``is_over_vhost_connection_limit``); its node-wide ``connection_max``
        stops accepting sockets instead, which leaves clients hanging."""
        limit = self.config.max_connections
        if limit and self.open_connections >= limit:
            raise connection_error(reply_codes.NOT_ALLOWED, f"connection refused: node connection limit "
                                   f"({limit}) is reached").for_method(10, 40)

    def _load_access(self) -> None:
        """Access control from the topology database (seeded with the
        default user and vhost on a fresh data directory), and a VHost for
        every vhost it names."""
        config = self.config
        self.access = load_access(self.storage, list(self.vhosts), config.default_user, config.default_pass,
                                  config.default_vhost, config.loopback_users)
        for name in self.access.vhosts:
            if name not in self.vhosts:
                self.vhosts[name] = self.make_vhost(name)

    def server_properties(self) -> dict:
        """connection.start server-properties, as RabbitMQ announces them."""
        return {
            "product": "Leveret",
            "version": __version__,
            "platform": f"Python {platform.python_version()}",
            "copyright": "Leveret developers",
            "information": "Licensed under the Apache License 2.0",
            "capabilities": {name: True for name in CAPABILITIES if name != "direct_reply_to"},
            "cluster_name": f"leveret@{platform.node()}",
        }

    async def start(self) -> None:
        """Bind the listeners, then open the message database and storage,
        recover, and accept. Raises broker.app.listeners.ListenError when a
        listener cannot be opened (before any recovery work),
        broker.persistence.store.WalCorruptError when the WAL is damaged
        (the listeners and the message database are closed again first)."""
        tls = listeners.tls_context(self.config) if self.config.tls_cert is not None else None
        self.listeners = await listeners.open_listeners(
            self.config, lambda: AMQPProtocol(self),
            None if tls is None else lambda: TLSAcceptor(self, tls, self.config.handshake_timeout))
        if not self.storage.fsync:
            log.warning("fsync = never: publisher confirms do not wait for the disk; a power loss can lose "
                        "confirmed messages (UNSAFE, for benchmarks only)")
        if self.config.mirror:
            # the message database process may be behind: keep every WAL
            # segment until it reports the ones it still needs
            keep_wal_segments(self.storage)
        try:
            # A million recovered index entries would make every full garbage
            # collection during the replay walk them: collect nothing meanwhile,
            # then freeze what recovery built (it lives as long as the process).
            gc.disable()
            try:
                recover(self.vhosts, self.storage, self.make_vhost)
            finally:
                gc.freeze()
                gc.set_threshold(*GC_THRESHOLDS)
                gc.enable()
            self._load_access()
            if self.config.definitions is not None:  # RabbitMQ's load_definitions
                log.info("definitions loaded from %s: %s", self.config.definitions,
                         load_definitions_file(self, self.config.definitions))
            await self._open_dedup_journal()
            # started once recovery has cut any damaged WAL tail, so the
            # process only ever reads a WAL that the broker has checked
            await self._start_mirror()
            # the start marker must be on disk before the first delivery, or a
            # crash right after it could pass for a clean shutdown
            await self.storage.sync()
            # metrics answer before AMQP does: a client that sees the AMQP
            # port accept can scrape at once
            await self._start_metrics()
            # before the AMQP listeners accept: once clients can connect, so can the CLI
            await self.control.start()
            # before the AMQP listeners accept too: once clients can connect, the API answers
            if self.management is not None:
                await self.management.start()
            await listeners.start_serving(self.listeners)
        except BaseException:
            listeners.close(self.listeners)
            await self.control.close()
            if self.management is not None:
                await self.management.close()
            await self._stop_mirror()
            if self.metrics is not None:
                await self.metrics.stop()
            raise
        self._compactor = asyncio.get_running_loop().create_task(self._compact_forever())
        self.sampler.start()
        self.alarms.start()
        log.info("Leveret %s listening on %s, data dir %s", __version__, listeners.describe(self.listeners),
                 self.config.data_dir.resolve())

    async def _open_dedup_journal(self) -> None:
        """Give the disk-persisted deduplication caches (x-cache-persistence
        disk, broker/persistence/dedup_journal.py) back to their exchanges, and forget
        those of exchanges that are gone. A file that cannot be used is
        logged and the caches start empty."""
        journal = self.dedup_journal
        try:
            saved = await journal.open()
        except (aiosqlite.Error, OSError) as exc:
            log.error("deduplication caches on disk cannot be used (%s): they start empty", exc)
            await journal.close()  # from now on a no-op: nothing waits for a file that will not open
            return
        for (vhost_name, name), values in saved.items():
            vhost = self.vhosts.get(vhost_name)
            exchange = vhost.exchanges.get(name) if vhost is not None else None
            if (exchange is None or exchange.type_name != "x-message-deduplication" or not exchange.durable
                    or exchange.cache_persistence != "disk"):
                journal.forget(vhost_name, name)
                continue
            kept = cache_for(vhost, exchange).restore(values)
            log.info("vhost '%s' exchange '%s': %d deduplication values restored", vhost_name, name, kept)

    async def _start_metrics(self) -> None:
        """Serve Prometheus metrics when ``config.prometheus`` is on. A port
        that cannot be bound is logged (WARNING) and the broker runs without
        them: metrics never stop the broker."""
        config = self.config
        if not config.prometheus:
            return
        endpoint = MetricsEndpoint(self, config.prometheus_host, config.prometheus_port, self.sampler)
        try:
            await endpoint.start()
        except OSError as exc:
            # a warning, not an error: the broker serves AMQP as asked; several
            # brokers on one host (tests, side-by-side installs) share the default port
            log.warning("Prometheus metrics cannot listen on %s:%d (%s): running without them",
                      config.prometheus_host, config.prometheus_port, exc)
            return
        self.metrics = endpoint

    async def _compact_forever(self) -> None:
        """WAL compaction every ``config.compact_interval`` seconds."""
        while True:
            await asyncio.sleep(self.config.compact_interval)
            try:
                await self.storage.compact()
            except WalError as exc:
                log.error("WAL compaction failed: %s", exc)

    async def _start_mirror(self) -> None:
        """Start the message database process (storage/mirror/process.py)
        after recovery: it opens ``<data_dir>/messages.db`` and, once the
        broker reports the WAL durable, applies
        the records past its watermark (the ones a crash or a stop left
        unapplied, or all for a new database) and then every new one,
        reading the segment files itself. The WAL keeps the segments it
        has not read (its deletion floor). A process that cannot be
        started is logged and the broker runs without it: the message
        database never stops the broker."""
        path = db_path(self.config.data_dir)
        if not self.config.mirror:
            log.info("message database off (--mirror off): %s is not updated", path)
            return
        mirror = message_database_process(self.storage, path, self.config.mirror_options(),
                                          log_level=self.config.log_level, log_format=LOG_FORMAT)
        try:
            await mirror.start()
        except OSError as exc:
            log.error("message database process cannot be started (%s): running without it", exc)
            return
        self.mirror = mirror

    async def _stop_mirror(self) -> None:
        """Tell the message database process the final durable WAL end and
        wait (bounded) for it to apply everything and exit (idempotent)."""
        mirror, self.mirror = self.mirror, None
        if mirror is not None:
            await mirror.stop()

    async def stop(self) -> None:
        """Stop accepting, close every connection with 320, wait briefly."""
        listeners.close(self.listeners)
        await self.control.close()
        if self.management is not None:
            await self.management.close()
        if self._compactor is not None:
            self._compactor.cancel()
        self.sampler.stop()
        if self.metrics is not None:
            await self.metrics.stop()
        self.alarms.stop()
        log.info("shutting down: closing %d connections", len(self.connections))
        for connection in list(self.connections):
            connection.close(connection_error(reply_codes.CONNECTION_FORCED,
                                              "broker forced connection closure with reason 'shutdown'"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.transport.abort()
        deadline = loop.time() + ABORT_GRACE
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        # the WAL first (its close reports the final durable end), then the
        # message database process applies up to it; it is stopped even if
        # the WAL's last write fails
        try:
            self.storage.close()
        finally:
            await self._stop_mirror()
            await self.dedup_journal.close()
        log.info("stopped")


async def serve(config: Config) -> int:
    """Run until SIGTERM or SIGINT; returns the process exit code (0; 1
    cannot start; 3 damaged WAL; ``listeners.EXIT_CANNOT_LISTEN`` a
    listener cannot be opened; ``data_dir.EXIT_DATA_DIR`` data directory
    unusable)."""
    try:
        check_data_dir(config.data_dir)
    except DataDirError as exc:
        log.error("%s", exc)
        return EXIT_DATA_DIR
    server = Server(config)
    try:
        await server.start()
    except listeners.ListenError as exc:
        log.error("%s", exc)
        return listeners.EXIT_CANNOT_LISTEN
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except WalError as exc:
        log.error("cannot recover from the write-ahead log: %s", exc)
        return 3
    except (DefinitionsError, AdminError) as exc:
        log.error("cannot load the definitions file: %s", exc)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()
    return 0


def run(config: Config) -> int:
    """Blocking entry point for the command line: uvloop when importable."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(serve(config))
    return uvloop.run(serve(config))
