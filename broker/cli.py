"""The ``leveret`` command line (also ``python -m broker``).

::

    leveret [serve] [--host H] [--port P] [--data-dir D]
            [--log-level debug|info|warning|error] [--heartbeat S]
            [--frame-max B] [--channel-max N] [--max-message-size B]
            [--handshake-timeout S] [--fsync always|never]
            [--wal-segment-size B] [--compact-interval S]

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
runs; ``db rebuild`` needs the broker stopped.

Each setting comes from, in order: the command-line flag, the ``LEVERET_*``
environment variable (``Config.from_env``), the default in
``broker.config.Config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from broker.config import ENV_PREFIX, Config

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

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
)


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


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
        group.add_argument(flag, dest=field, metavar=metavar, type=parse, default=argparse.SUPPRESS,
                           help=f"{text} [env {_env_name(field)}, default {default}]")


def _data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", dest="data_dir", metavar="D", type=_path,
                        default=argparse.SUPPRESS,
                        help=f"the broker's data directory [env {_env_name('data_dir')}, "
                             "default ./data]")


def _header_filter(text: str) -> tuple[str, str]:
    """An argparse ``type`` accepting ``NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _time(text: str) -> str:
    """An argparse ``type`` accepting ISO-8601 or ms since the epoch."""
    from storage.mirror.query import to_ms

    try:
        to_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_tool_commands(commands) -> None:
    """The ``messages`` and ``db`` commands (no server options)."""
    messages = commands.add_parser(
        "messages", prog="leveret messages", help="query the message database",
        description="Query the message database (works while the broker runs).")
    sub = messages.add_subparsers(dest="action", metavar="ACTION", title="actions",
                                  required=True)
    find = sub.add_parser(
        "find", prog="leveret messages find", help="list messages matching filters",
        description="List messages matching every given filter, newest first. Table columns: "
                    "id, published_at, exchange, routing_key, message_id, state, body_size.")
    _data_dir_option(find)
    for flag, text in (("--vhost", "virtual host"), ("--queue", "routed to this queue"),
                       ("--exchange", "published to this exchange"),
                       ("--routing-key", "routing key"), ("--message-id", "message-id property"),
                       ("--correlation-id", "correlation-id property"),
                       ("--state", "current state: queued, delivered, acked, rejected, expired, "
                                   "dead-lettered, purged, dropped, deleted, unrouted")):
        find.add_argument(flag, help=text)
    find.add_argument("--header", dest="headers", metavar="NAME=VALUE", type=_header_filter,
                      action="append", help="header NAME equals VALUE (string, or the JSON "
                                            "text of a number/boolean); repeatable")
    find.add_argument("--since", type=_time, metavar="T",
                      help="published at or after T (ISO-8601, UTC if no offset; or ms)")
    find.add_argument("--until", type=_time, metavar="T", help="published before T")
    find.add_argument("--limit", type=_int_range(1), default=100, metavar="N",
                      help="at most N messages (default 100)")
    find.add_argument("--json", action="store_true", help="print a JSON array")
    show = sub.add_parser("show", prog="leveret messages show",
                          help="one message: properties and event timeline",
                          description="Show one message: its properties, body and the event "
                                      "timeline (routed, delivered, acked...).")
    show.add_argument("id", type=_int_range(0), metavar="ID", help="the message's id")
    _data_dir_option(show)
    show.add_argument("--json", action="store_true", help="print a JSON object")
    db = commands.add_parser("db", prog="leveret db", help="maintain the message database",
                             description="Maintain the message database.")
    dbsub = db.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    rebuild = dbsub.add_parser(
        "rebuild", prog="leveret db rebuild", help="recreate it from the WAL (broker stopped)",
        description="Delete and recreate the message database from the WAL segments. "
                    "Refuses while the broker runs (the WAL directory is locked).")
    _data_dir_option(rebuild)


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
    _add_tool_commands(commands)
    return parser


def _config_from(args: argparse.Namespace, environ: Mapping[str, str],
                 parser: argparse.ArgumentParser) -> Config:
    """Merge parsed flags over ``Config.from_env(environ)``; report bad
    environment values through ``parser.error`` (exit status 2)."""
    try:
        config = Config.from_env(dict(environ))
    except ValueError as exc:
        parser.error(f"invalid environment variable {exc}")
    checks = {field: parse for field, _flag, _metavar, parse, _text in SERVE_OPTIONS}
    for field, parse in checks.items():
        name = _env_name(field)
        if name in environ:
            try:
                setattr(config, field, parse(environ[name]))
            except argparse.ArgumentTypeError as exc:
                parser.error(f"invalid environment variable {name}={environ[name]!r}: {exc}")
    for field in (f.name for f in dataclasses.fields(Config)):
        if hasattr(args, field):
            setattr(config, field, getattr(args, field))
    return config


def _check_tool_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``messages``/``db`` take no server option, not even before the
    command name (``leveret --port 1 db rebuild``); ``--data-dir`` is the
    exception, it means the same thing everywhere."""
    for field, flag, _metavar, _parse, _text in SERVE_OPTIONS:
        if field != "data_dir" and hasattr(args, field):
            parser.error(f"{flag} is a server option; it does not apply to "
                         f"'{args.command} {args.action}'")


def parse_command_line(argv: Sequence[str] | None = None,
                       environ: Mapping[str, str] | None = None) -> tuple[str, Config]:
    """Parse ``argv`` (without the program name; ``sys.argv[1:]`` when None)
    against ``environ`` (``os.environ`` when None).

    Returns ``(command, config)``; ``command`` is ``"serve"`` when no command
    is named. Raises ``SystemExit(2)`` after printing a usage message for an
    unknown option, a bad value in a flag or a ``LEVERET_*`` variable, and
    ``SystemExit(0)`` for ``--help``/``--version``. For ``messages``/``db``
    use ``parse_tool_command`` (their config is just the data directory).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or DEFAULT_COMMAND
    if command != "serve":
        _check_tool_args(args, parser)
    return command, _config_from(args, environ, parser)


def tool_data_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    """The data directory of a ``messages``/``db`` command: ``--data-dir``,
    else ``LEVERET_DATA_DIR``, else ``Config().data_dir`` (./data)."""
    if hasattr(args, "data_dir"):
        return args.data_dir
    value = environ.get(_env_name("data_dir"))
    return Path(value) if value else Config().data_dir


def build_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Return the Config that ``leveret argv`` would serve with, given the
    environment ``environ`` (``os.environ`` when None).

    Precedence: flag > ``LEVERET_*`` variable > default. Raises
    ``SystemExit(2)`` on an invalid flag or variable value (as argparse does).
    """
    return parse_command_line(argv, environ)[1]


def setup_logging(level: str) -> None:
    """Log to stderr, one line per event
    (``2026-11-22 10:00:00,123 INFO broker.server: message``), at ``level``
    (one of ``LOG_LEVELS``). Replaces any handler already on the root logger.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def run_tool(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run ``messages find|show`` or ``db rebuild``; returns the exit status
    (0 ok, 1 error: no database, no such message, broker running...).
    Output goes to stdout, errors to stderr."""
    from storage.mirror import MirrorNotFound, RebuildError, db_path, find, rebuild, show
    from storage.mirror.render import format_message, format_table, to_json
    from storage.wal import WalError

    data_dir = tool_data_dir(args, environ)
    try:
        if args.command == "db":
            summary = rebuild(data_dir)
            print(f"rebuilt {summary['db_path']} from {summary['segments']} WAL segments: "
                  f"{summary['records']} records, {summary['messages']} messages "
                  f"in {summary['seconds']:.2f} s")
            if summary["truncated"]:
                print(f"note: the last segment ends in a torn record at {summary['truncated']}")
            return 0
        path = db_path(data_dir)
        if args.action == "show":
            message = show(path, args.id)
            if message is None:
                print(f"leveret: no message {args.id} in {path}", file=sys.stderr)
                return 1
            print(to_json(message) if args.json else format_message(message))
            return 0
        headers = dict(args.headers) if args.headers else None
        rows = find(path, vhost=args.vhost, queue=args.queue, exchange=args.exchange,
                    routing_key=args.routing_key, message_id=args.message_id,
                    correlation_id=args.correlation_id, headers=headers, state=args.state,
                    since=args.since, until=args.until, limit=args.limit)
        print(to_json(rows) if args.json else format_table(rows))
        return 0
    except (MirrorNotFound, RebuildError, WalError, ValueError, OSError) as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``leveret`` console script and ``python -m broker``.

    Parses ``argv`` (``sys.argv[1:]`` when None), sets up logging and runs the
    chosen command. For ``serve`` that is ``broker.server.run(config)``, which
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
        from broker import server  # imported here so that --help works without the server's imports

        logging.getLogger(__name__).debug("config: %s", " ".join(
            f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k != "default_pass"))
        sys.exit(server.run(config))
    raise AssertionError(f"unhandled command {command!r}")  # argparse only accepts COMMANDS
