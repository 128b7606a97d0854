"""The ``leveret`` command line (also ``python -m broker``).

::

    leveret [serve] [--host H] [--port P] [--data-dir D]
            [--log-level debug|info|warning|error] [--heartbeat S]
            [--frame-max B] [--channel-max N] [--max-message-size B]
            [--handshake-timeout S] [--fsync always|never]
            [--wal-segment-size B] [--compact-interval S] [--mirror on|off]
            [--mirror-body-limit B] [--mirror-retention-days D]
            [--mirror-retention-rows N] [--mirror-max-backlog N]
            [--consumer-timeout MS] [--memory-high-watermark F|B]
            [--disk-free-limit B] [--max-connections N]

    leveret messages find [--data-dir D] [--vhost V] [--queue Q] [--exchange X]
            [--routing-key K] [--message-id M] [--correlation-id C]
            [--header NAME=VALUE ...] [--state S] [--since T] [--until T]
            [--limit N] [--json]
    leveret messages show ID [--data-dir D] [--json]
    leveret db rebuild [--data-dir D]

With no subcommand, or when the first argument is an option, the broker
serves: ``leveret --port 5673`` is ``leveret serve --port 5673``. The
``messages`` and ``db`` commands work on the message database in the data
directory (``--data-dir``, else ``LEVERET_DATA_DIR``, else ``./data``) and
accept no server option. ``messages find/show`` read it while the broker
runs; ``db rebuild`` needs the broker stopped (``broker.app.cli_tools``).

Each setting comes from, in order: the command-line flag, the ``LEVERET_*``
environment variable (``Config.from_env``), the default in
``broker.app.config.Config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from broker.app.cli_tools import add_tool_commands, check_tool_args, run_tool, tool_data_dir  # noqa: F401
from broker.app.config import LOG_FORMAT, Config, env_name, parse_on_off

LOG_LEVELS = ("debug", "info", "warning", "error")

#: AMQP 0-9-1 frame-min-size: a peer must accept frames of this size (§4.2.3)
FRAME_MIN_SIZE = 4096

#: subcommands; ``serve`` is the one run when none is named
COMMANDS = ("serve", "messages", "db")
DEFAULT_COMMAND = "serve"


# --- value checks (shared by flags and environment variables) ---------------

def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` accepting an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f">= {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _positive_float(text: str) -> float:
    """An argparse ``type`` accepting a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def _log_level(text: str) -> str:
    """An argparse ``type`` accepting one of ``LOG_LEVELS``, any case."""
    value = text.strip().lower()
    if value not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return value


def _host(text: str) -> str:
    """An argparse ``type`` accepting a non-empty host name or address."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _path(text: str) -> Path:
    """An argparse ``type`` accepting a non-empty path."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return Path(text)


def _fsync_mode(text: str) -> str:
    if text not in ("always", "never"):
        raise argparse.ArgumentTypeError("must be 'always' or 'never'")
    return text
def _on_off(text: str) -> bool:
    """An argparse ``type`` accepting on/off (also true/false, yes/no, 1/0)."""
    try:
        return parse_on_off(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative_float(text: str) -> float:
    """An argparse ``type`` accepting a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


#: RabbitMQ's size units (rabbitmq.com/configure.html, "memory and disk
#: limits"): binary for k/kiB/M/MiB/G/GiB, decimal for kB/MB/GB
_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30,
          "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def _byte_size(text: str) -> int:
    """An argparse ``type`` accepting a size in bytes >= 0, with an
    optional RabbitMQ unit: ``50000000``, ``50MB``, ``512MiB``, ``2G``."""
    raw = text.strip()
    digits = raw.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").strip()
    unit = raw[len(digits):].strip().lower()
    if not digits.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size in bytes (e.g. 50000000, 50MB, 512MiB): {text!r}")
    return int(digits) * _UNITS[unit]


def _watermark(text: str) -> float:
    """An argparse ``type`` for ``--memory-high-watermark``: a fraction
    in [0, 1] of the memory available (``0.4``), or an absolute size above
    1 byte (``1073741824``, ``1GiB``) as RabbitMQ's
    ``vm_memory_high_watermark.relative`` / ``.absolute``."""
    try:
        value = float(text)
    except ValueError:
        return float(_byte_size(text))
    if 0 <= value <= 1:
        return value
    if 1 < value < 2**63 and value == int(value):
        return float(int(value))
    raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1 or a size in bytes, got {text}")


# (config field, flag, metavar, type, help) for every ``serve`` option.
# Every field listed here is also checked when it comes from LEVERET_<FIELD>.
SERVE_OPTIONS: tuple[tuple[str, str, str, Callable[[str], object], str], ...] = (
    ("host", "--host", "H", _host, "address to listen on"),
    ("port", "--port", "P", _int_range(0, 65535), "TCP port to listen on (0: any free port)"),
    ("data_dir", "--data-dir", "D", _path, "directory for the broker's data"),
    ("log_level", "--log-level", "LEVEL", _log_level, "one of debug, info, warning, error"),
    ("heartbeat", "--heartbeat", "S", _int_range(0, 65535),
     "heartbeat interval proposed in connection.tune, seconds (0: off)"),
    ("frame_max", "--frame-max", "B", _int_range(FRAME_MIN_SIZE, 2**32 - 1),
     f"largest frame proposed in connection.tune, bytes (>= {FRAME_MIN_SIZE})"),
    ("channel_max", "--channel-max", "N", _int_range(1, 65535),
     "most channels per connection proposed in connection.tune"),
    ("max_message_size", "--max-message-size", "B", _int_range(1, 2**63 - 1),
     "largest message body accepted, bytes"),
    ("handshake_timeout", "--handshake-timeout", "S", _positive_float,
     "seconds a client has to finish the connection handshake"),
    ("fsync", "--fsync", "MODE", _fsync_mode,
     "always: a publisher confirm means fsynced; never: no fsync (UNSAFE, benchmarks only)"),
    ("wal_segment_size", "--wal-segment-size", "B", _int_range(4096, 1 << 31),
     "size of one WAL segment file, bytes"),
    ("compact_interval", "--compact-interval", "S", _positive_float,
     "seconds between two WAL compaction passes"),
    ("mirror", "--mirror", "on|off", _on_off,
     "keep the message database <data-dir>/messages.db (leveret messages)"),
    ("mirror_body_limit", "--mirror-body-limit", "B", _int_range(0, 2**63 - 1),
     "bodies up to this many bytes are stored in the message database (0: none)"),
    ("mirror_retention_days", "--mirror-retention-days", "D", _non_negative_float,
     "days the history of a finished (acked, rejected...) message is kept"),
    ("mirror_retention_rows", "--mirror-retention-rows", "N", _int_range(1, 2**63 - 1),
     "most messages kept in the message database (oldest finished deleted first)"),
    ("mirror_max_backlog", "--mirror-max-backlog", "N", _int_range(1, 2**63 - 1),
     "WAL records the message database may fall behind before it stores no bodies"),
    ("consumer_timeout", "--consumer-timeout", "MS", _int_range(0, 2**63 - 1),
     "ms a delivery may stay unacknowledged before its channel is closed with 406 (0: never; "
     "x-consumer-timeout overrides it per queue)"),
    ("memory_high_watermark", "--memory-high-watermark", "F|B", _watermark,
     "publishers are blocked above this memory use: a fraction of the machine's (or cgroup's) "
     "memory, or bytes (units as 1GiB, 512MB)"),
    ("disk_free_limit", "--disk-free-limit", "B", _byte_size,
     "publishers are blocked when the data directory's disk has less free space, bytes "
     "(never below two WAL segments)"),
    ("max_connections", "--max-connections", "N", _int_range(0, 2**31 - 1),
     "most client connections open at once; connection.open beyond gets 530 (0: no limit)"),
)


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve`` flags to ``parser``. Flags that are not given leave
    no attribute in the namespace (``argparse.SUPPRESS``), so "not given" is
    distinguishable from "given with the default value"."""
    defaults = Config()
    group = parser.add_argument_group("server options (flag > environment variable > default)")
    for field, flag, metavar, parse, text in SERVE_OPTIONS:
        default = getattr(defaults, field)
        if isinstance(default, Path) and not default.is_absolute():
            default = f"./{default}"
        elif isinstance(default, bool):
            default = "on" if default else "off"
        group.add_argument(flag, dest=field, metavar=metavar, type=parse, default=argparse.SUPPRESS,
                           help=f"{text} [env {env_name(field)}, default {default}]")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``leveret`` argument parser.

    The top-level parser carries the ``serve`` options too, so that
    ``leveret --port 5673`` works without naming the subcommand and
    ``leveret --help`` lists them. Subcommands live in ``args.command``
    (``None`` when absent, which means ``serve``); ``messages`` and ``db``
    put their sub-action in ``args.action``.
    """
    from broker import __version__

    parser = argparse.ArgumentParser(
        prog="leveret",
        usage="%(prog)s [COMMAND] [options]",
        description="Leveret: an AMQP 0-9-1 message broker (RabbitMQ-compatible).",
        epilog="With no command, or when the first argument is an option, Leveret serves. "
               "Settings come from the flag, else the LEVERET_<NAME> environment variable "
               "(e.g. LEVERET_PORT, LEVERET_DATA_DIR), else the default.",
    )
    parser.add_argument("--version", action="version", version=f"leveret {__version__}")
    _add_serve_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    serve = commands.add_parser("serve", prog="leveret serve",
                                help="run the broker until SIGTERM/SIGINT (the default)",
                                description="Run the broker until SIGTERM or SIGINT.")
    _add_serve_options(serve)
    add_tool_commands(commands, _path)
    return parser


def _config_from(args: argparse.Namespace, environ: Mapping[str, str],
                 parser: argparse.ArgumentParser) -> Config:
    """Merge parsed flags over ``Config.from_env(environ)``; report bad
    environment values through ``parser.error`` (exit status 2)."""
    checks = {field: _as_value_error(parse) for field, _flag, _metavar, parse, _text in SERVE_OPTIONS}
    try:
        config = Config.from_env(environ, checks)
    except ValueError as exc:
        parser.error(f"invalid environment variable {exc}")
    for field in (f.name for f in dataclasses.fields(Config)):
        if hasattr(args, field):
            setattr(config, field, getattr(args, field))
    return config


def _as_value_error(parse: Callable[[str], object]) -> Callable[[str], object]:
    """``parse`` (an argparse ``type``) raising ValueError instead of
    ArgumentTypeError, as ``Config.from_env`` expects of its parsers."""
    def checked(text: str) -> object:
        try:
            return parse(text)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None
    return checked


def _check_tool_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    check_tool_args(args, parser, ((field, flag) for field, flag, *_ in SERVE_OPTIONS))


def parse_command_line(argv: Sequence[str] | None = None,
                       environ: Mapping[str, str] | None = None) -> tuple[str, Config]:
    """Parse ``argv`` (without the program name; ``sys.argv[1:]`` when None)
    against ``environ`` (``os.environ`` when None).

    Returns ``(command, config)``; ``command`` is ``"serve"`` when no command
    is named. Raises ``SystemExit(2)`` after printing a usage message for an
    unknown option, a bad value in a flag or a ``LEVERET_*`` variable, and
    ``SystemExit(0)`` for ``--help``/``--version``. ``messages``/``db``
    need only the data directory (``tool_data_dir``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or DEFAULT_COMMAND
    if command != "serve":
        _check_tool_args(args, parser)
    return command, _config_from(args, environ, parser)


def build_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Return the Config that ``leveret argv`` would serve with, given the
    environment ``environ`` (``os.environ`` when None).

    Precedence: flag > ``LEVERET_*`` variable > default. Raises
    ``SystemExit(2)`` on an invalid flag or variable value (as argparse does).
    """
    return parse_command_line(argv, environ)[1]


def setup_logging(level: str) -> None:
    """Log to stderr, one line per event
    (``2026-11-22 10:00:00,123 INFO broker.app.server: message``), at ``level``
    (one of ``LOG_LEVELS``). Replaces any handler already on the root logger.
    aiosqlite's per-statement debug lines are left out (at most info).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, getattr(logging, level.upper())))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``leveret`` console script and ``python -m broker``.

    Parses ``argv`` (``sys.argv[1:]`` when None), sets up logging and runs the
    chosen command. For ``serve`` that is ``broker.app.server.run(config)``, which
    blocks until SIGTERM/SIGINT; its return value becomes the process exit
    status. ``messages``/``db`` run ``run_tool`` (exit 0 or 1). Exits with
    status 2 on a usage error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("messages", "db"):
        _check_tool_args(args, parser)
        setup_logging("warning")
        sys.exit(run_tool(args, os.environ))
    command, config = parse_command_line(argv)
    setup_logging(config.log_level)
    if command == "serve":
        from broker.app import server  # imported here so that --help works without the server's imports

        logging.getLogger(__name__).debug("config: %s", " ".join(
            f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k != "default_pass"))
        sys.exit(server.run(config))
    raise AssertionError(f"unhandled command {command!r}")  # argparse only accepts COMMANDS
