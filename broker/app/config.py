"""Broker settings: embedded defaults, overridden by ``LEVERET_*`` environment
variables, overridden by command-line flags (see ``broker.app.cli``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path

ENV_PREFIX = "LEVERET_"
#: one line per event: ``2026-11-22 10:00:00,123 INFO broker.app.server: message``
#: (the broker and the message database process log alike)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: loopback for IPv4 and IPv6, so that ``localhost`` works whatever it resolves to
DEFAULT_HOSTS = ("127.0.0.1", "::1")


@dataclasses.dataclass
class Config:
    """Everything the server needs to start.

    Units: ``heartbeat`` in seconds (0 turns heartbeats off),
    ``handshake_timeout`` in seconds, ``frame_max``, ``max_message_size``
    and ``mirror_body_limit`` in bytes, ``mirror_retention_days`` in days,
    ``disk_free_limit`` in bytes, ``memory_high_watermark`` a fraction (<= 1)
    or bytes (> 1). ``channel_max`` and ``frame_max`` are what connection.tune
    proposes; the client's tune-ok may lower them (AMQP 0-9-1 §1.4.2.6).
    """

    #: addresses to listen on (plain and TLS alike); the default is loopback
    #: for both families, ::1 skipped where the machine has no IPv6
    #: (broker.app.listeners). ``LEVERET_HOST`` is a comma-separated list.
    host: tuple[str, ...] = DEFAULT_HOSTS
    port: int = 5672
    #: listen for plain AMQP on ``port`` (off: amqps only)
    plain: bool = True
    #: amqps port, used when ``tls_cert`` is set
    tls_port: int = 5671
    #: PEM server certificate (chain); None: no TLS listener
    tls_cert: Path | None = None
    #: PEM private key; None: the key is in ``tls_cert``
    tls_key: Path | None = None
    #: PEM CA certificates that client certificates must chain to
    tls_ca: Path | None = None
    #: "peer": a client must present a certificate signed by ``tls_ca``
    #: (needed for SASL EXTERNAL); "none": no client certificate is asked for
    tls_verify: str = "none"
    data_dir: Path = Path("./data")
    log_level: str = "info"
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    #: a definitions file (RabbitMQ's JSON format) imported at start, as
    #: RabbitMQ's load_definitions (broker/admin/definitions.py); None: none
    definitions: Path | None = None
    #: users who may log in from a loopback address only (RabbitMQ's
    #: loopback_users); LEVERET_LOOPBACK_USERS is comma-separated, "" for none
    loopback_users: tuple = ("guest",)
    frame_max: int = 131072
    channel_max: int = 2047
    heartbeat: int = 60
    handshake_timeout: float = 10.0
    max_message_size: int = 128 * 1024 * 1024
    #: "always": a publisher confirm for a persistent message means fsynced;
    #: "never": no fsync at all (benchmarks only, logged as unsafe)
    fsync: str = "always"
    #: bytes per WAL segment file
    wal_segment_size: int = 64 << 20
    #: seconds between WAL compaction passes
    compact_interval: float = 10.0
    #: keep the message database ``<data_dir>/messages.db`` (storage/mirror)
    mirror: bool = True
    #: message bodies up to this many bytes are stored in it (larger: NULL)
    mirror_body_limit: int = 64 * 1024
    #: days the history of a finished (acked, rejected...) message is kept
    mirror_retention_days: float = 7.0
    #: most messages kept in it; beyond, the oldest finished ones are deleted
    mirror_retention_rows: int = 10_000_000
    #: WAL records it may fall behind before it stores metadata only (no bodies)
    mirror_max_backlog: int = 200_000
    #: ms a delivery may stay unacknowledged before its channel is closed
    #: with 406 (rabbitmq.com/consumers.html#acknowledgement-timeout); 0: never
    consumer_timeout: int = 1_800_000
    #: the management HTTP API (broker/management, RabbitMQ's management
    #: plugin API): on or off, its address and TCP port (0: any free port)
    management: bool = True
    management_host: str = "127.0.0.1"
    management_port: int = 15672
    #: serve Prometheus metrics (broker/metrics, docs/metrics.md) on
    #: ``prometheus_host``:``prometheus_port`` (RabbitMQ's plugin port 15692)
    prometheus: bool = True
    prometheus_host: str = "127.0.0.1"
    prometheus_port: int = 15692
    #: memory alarm threshold: a fraction (0-1) of the machine's memory, or
    #: of the cgroup's limit when lower; above 1: bytes (broker/app/alarms.py)
    memory_high_watermark: float = 0.4
    #: disk alarm threshold: free bytes on the data directory's file system
    #: (never below two WAL segments)
    disk_free_limit: int = 50_000_000
    #: most connections open at once (0: no limit)
    max_connections: int = 0

    def mirror_options(self) -> dict:
        """``storage.mirror.MessageMirror`` keyword arguments from the
        ``mirror_*`` settings: body_limit (bytes), max_backlog (records),
        retention_seconds (days x 86400), retention_rows."""
        return {"body_limit": self.mirror_body_limit, "max_backlog": self.mirror_max_backlog,
                "retention_seconds": self.mirror_retention_days * 86400.0,
                "retention_rows": self.mirror_retention_rows}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 parsers: Mapping[str, Callable[[str], object]] | None = None) -> "Config":
        """Build a Config from defaults and ``LEVERET_<FIELD>`` variables (the
        one reader of the environment: the command line passes its checks).

        ``LEVERET_DATA_DIR`` sets ``data_dir``, ``LEVERET_PORT`` sets ``port``
        and so on. ``parsers``: field name -> function turning the variable's
        text into the value, raising ValueError (the command line's range
        checks, broker.app.cli); other fields are read as their annotated
        type. Raises ValueError ``LEVERET_<FIELD>: <reason>`` for the first
        value that does not parse; the reason quotes the value, in the words
        the command line uses for the same mistake in a flag
        (``not an integer: 'x'``).
        """
        environ = os.environ if environ is None else environ
        parsers = parsers or {}
        config = cls()
        for field in dataclasses.fields(cls):
            name = env_name(field.name)
            raw = environ.get(name)
            if raw is None:
                continue
            parse = parsers.get(field.name)
            try:
                setattr(config, field.name, parse(raw) if parse is not None else _coerce(field.type, raw))
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return config


def env_name(field: str) -> str:
    """The environment variable of a Config field: ``port`` -> ``LEVERET_PORT``."""
    return ENV_PREFIX + field.upper()


def _coerce(type_name: object, raw: str) -> object:
    """Turn an environment string into the field's type (fields are annotated
    as strings because of ``from __future__ import annotations``)."""
    name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "")
    if name == "bool":
        return parse_on_off(raw)
    if name == "int":
        try:
            return int(raw, 10)
        except ValueError:
            raise ValueError(f"not an integer: {raw!r}") from None
    if name == "float":
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"not a number: {raw!r}") from None
    if name.startswith("Path"):
        return Path(raw)
    if name.startswith("tuple"):  # a comma-separated list: LEVERET_HOST=127.0.0.1,::1
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


_ON = {"on": True, "true": True, "yes": True, "1": True,
       "off": False, "false": False, "no": False, "0": False}


def parse_on_off(raw: str) -> bool:
    """``on``/``off`` (also true/false, yes/no, 1/0; any case) as a bool.
    Raises ValueError for anything else."""
    try:
        return _ON[raw.strip().lower()]
    except KeyError:
        raise ValueError(f"must be on or off, got {raw!r}") from None
