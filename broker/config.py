"""Broker settings: embedded defaults, overridden by ``LEVERET_*`` environment
variables, overridden by command-line flags (see ``broker.cli``)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

ENV_PREFIX = "LEVERET_"


@dataclasses.dataclass
class Config:
    """Everything the server needs to start.

    Units: ``heartbeat`` in seconds (0 turns heartbeats off),
    ``handshake_timeout`` in seconds, ``frame_max`` and ``max_message_size``
    in bytes. ``channel_max`` and ``frame_max`` are what connection.tune
    proposes; the client's tune-ok may lower them (AMQP 0-9-1 §1.4.2.6).
    """

    host: str = "127.0.0.1"
    port: int = 5672
    data_dir: Path = Path("./data")
    log_level: str = "info"
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    frame_max: int = 131072
    channel_max: int = 2047
    heartbeat: int = 60
    handshake_timeout: float = 10.0
    max_message_size: int = 128 * 1024 * 1024
    #: "always": a publisher confirm for a persistent message means fsynced;
    #: "never": no fsync at all (benchmarks only, logged as unsafe)
    fsync: str = "always"
    #: bytes per WAL segment file before a new one starts (hidden flag
    #: ``--wal-segment-size``, for tests that need several segments)
    wal_segment_size: int = 64 << 20

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Config":
        """Build a Config from defaults and ``LEVERET_<FIELD>`` variables.

        ``LEVERET_DATA_DIR`` sets ``data_dir``, ``LEVERET_PORT`` sets ``port``
        and so on. Raises ValueError naming the variable when a value does not
        parse as the field's type.
        """
        environ = os.environ if environ is None else environ
        config = cls()
        for field in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is None:
                continue
            try:
                setattr(config, field.name, _coerce(field.type, raw))
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={raw!r}: {exc}") from exc
        return config


def _coerce(type_name: object, raw: str) -> object:
    """Turn an environment string into the field's type (fields are annotated
    as strings because of ``from __future__ import annotations``)."""
    name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "")
    if name == "int":
        return int(raw)
    if name == "float":
        return float(raw)
    if name == "Path":
        return Path(raw)
    return raw
