"""The ``leveret`` command line (also ``python -m broker``).

::

    leveret [serve] [--host H ...] [--port P] [--plain on|off] [--data-dir D]
            [--tls-port P] [--tls-cert FILE] [--tls-key FILE] [--tls-ca FILE]
            [--tls-verify peer|none]
            [--log-level debug|info|warning|error] [--heartbeat S]
            [--frame-max B] [--channel-max N] [--max-message-size B]
            [--handshake-timeout S] [--fsync always|never]
            [--wal-segment-size B] [--compact-interval S] [--mirror on|off]
            [--mirror-body-limit B] [--mirror-retention-days D]
            [--mirror-retention-rows N] [--mirror-max-backlog N]
            [--consumer-timeout MS] [--definitions FILE] [--memory-high-watermark F|B]
            [--disk-free-limit B] [--max-connections N]
            [--management on|off] [--management-host H] [--management-port P]
            [--prometheus on|off] [--prometheus-host H] [--prometheus-port P]

    leveret messages find [--data-dir D] [--vhost V] [--queue Q] [--exchange X]
            [--routing-key K] [--message-id M] [--correlation-id C]
            [--header NAME=VALUE ...] [--state S] [--since T] [--until T]
            [--columns C,C...] [--limit N] [--json]
    leveret messages show ID|MESSAGE-ID|CORRELATION-ID [--data-dir D] [--json]
    leveret db rebuild [--data-dir D]
    leveret queues list [--data-dir D] [--vhost V] [--json]
    leveret users list|add|delete|set-password|set-tags ...   [--data-dir D]
    leveret permissions list|set|clear ...                    [--data-dir D]
    leveret vhosts list|add|delete ...                        [--data-dir D]
    leveret definitions export [FILE] | import FILE           [--data-dir D]

With no subcommand, or when the first argument is an option, the broker
serves: ``leveret --port 5673`` is ``leveret serve --port 5673``. The
``messages`` and ``db`` commands work on the message database in the data
directory (``--data-dir``, else ``LEVERET_DATA_DIR``, else ``./data``) and
accept no server option. ``messages find/show`` read it while the broker
runs (``broker.app.cli_messages``); ``db rebuild`` needs the broker
stopped (``broker.app.cli_tools``).
``queues list`` asks the broker running on the data directory, through its
control socket (``broker.app.cli_control``), and so do the admin commands
``users``, ``permissions``, ``vhosts`` and ``definitions``
(``broker.app.cli_admin``).

Each setting comes from, in order: the command-line flag, the ``LEVERET_*``
environment variable (``Config.from_env``), the default in
``broker.app.config.Config``. A bad value is a usage error (exit status 2)
worded alike for both: ``argument --port: not an integer: 'x'``,
``environment variable LEVERET_PORT: not an integer: 'x'``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from broker.app.cli_admin import ADMIN_COMMANDS, add_admin_commands, run_admin
from broker.app.cli_control import add_control_commands, run_control
from broker.app.cli_messages import add_messages_command, run_messages
from broker.app.cli_tools import add_data_dir_option, add_db_command, check_tool_args, run_db
from broker.app.resource_options import RESOURCE_OPTIONS
from broker.app.config import LOG_FORMAT, Config, env_name, parse_on_off
from broker.app.listeners import listener_problem

LOG_LEVELS = ("debug", "info", "warning", "error")

#: AMQP 0-9-1 frame-min-size: a peer must accept frames of this size (§4.2.3)
FRAME_MIN_SIZE = 4096

#: subcommands; ``serve`` is the one run when none is named
COMMANDS = ("serve", "messages", "db", "queues", *ADMIN_COMMANDS)
DEFAULT_COMMAND = "serve"
#: commands that work on a data directory (the message database, or the
#: broker running on it) instead of serving: name -> run(args, config)
TOOL_COMMANDS = {"messages": run_messages, "db": run_db, "queues": run_control,
                 **{name: run_admin for name in ADMIN_COMMANDS}}


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


def _hosts(text: str) -> tuple[str, ...]:
    """An argparse ``type`` accepting a comma-separated list of host names or
    addresses (an IPv6 address may be bracketed: ``[::1]``)."""
    hosts = tuple(part.strip().removeprefix("[").removesuffix("]") for part in text.split(","))
    if not hosts or not all(hosts):
        raise argparse.ArgumentTypeError(f"must be host names or addresses separated by commas, got {text!r}")
    return hosts


def _host(text: str) -> str:
    """An argparse ``type`` accepting one host name or address (``[::1]`` too)."""
    host = text.strip().removeprefix("[").removesuffix("]")
    if not host:
        raise argparse.ArgumentTypeError("must not be empty")
    return host


def _tls_verify(text: str) -> str:
    """An argparse ``type`` accepting ``peer`` or ``none``."""
    if text not in ("peer", "none"):
        raise argparse.ArgumentTypeError(f"must be 'peer' or 'none', got {text!r}")
    return text


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


# (config field, flag, metavar, type, help) for every ``serve`` option.
# Every field listed here is also checked when it comes from LEVERET_<FIELD>.
SERVE_OPTIONS: tuple[tuple[str, str, str, Callable[[str], object], str], ...] = (
    ("host", "--host", "H", _hosts,
     "address to listen on; repeat the flag or separate addresses by commas "
     "(0.0.0.0 and :: for every interface)"),
    ("port", "--port", "P", _int_range(0, 65535), "TCP port to listen on (0: any free port)"),
    ("plain", "--plain", "on|off", _on_off, "listen for plain AMQP on --port (off: amqps only)"),
    ("tls_port", "--tls-port", "P", _int_range(0, 65535), "amqps port, used when --tls-cert is given"),
    ("tls_cert", "--tls-cert", "FILE", _path, "PEM server certificate (chain): turns amqps on"),
    ("tls_key", "--tls-key", "FILE", _path, "PEM private key of --tls-cert (if not in that file)"),
    ("tls_ca", "--tls-ca", "FILE", _path, "PEM CA certificates that client certificates must chain to"),
    ("tls_verify", "--tls-verify", "peer|none", _tls_verify,
     "peer: clients must present a certificate signed by --tls-ca (SASL EXTERNAL); "
     "none: no client certificate is asked for"),
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
    ("definitions", "--definitions", "FILE", _path,
     "definitions file (RabbitMQ's JSON format) to import at start, as RabbitMQ's load_definitions"),
    ("consumer_timeout", "--consumer-timeout", "MS", _int_range(0, 2**63 - 1),
     "ms a delivery may stay unacknowledged before its channel is closed with 406 (0: never; "
     "x-consumer-timeout overrides it per queue)"),
    ("management", "--management", "on|off", _on_off,
     "serve the RabbitMQ-compatible management HTTP API (docs/management.md)"),
    ("management_host", "--management-host", "H", _host, "address the management HTTP API listens on"),
    ("management_port", "--management-port", "P", _int_range(0, 65535),
     "TCP port of the management HTTP API (0: any free port)"),
    ("prometheus", "--prometheus", "on|off", _on_off,
     "serve Prometheus metrics at /metrics and /metrics/per-object (docs/metrics.md)"),
    ("prometheus_host", "--prometheus-host", "H", _host, "address the Prometheus endpoint listens on"),
    ("prometheus_port", "--prometheus-port", "P", _int_range(0, 65535),
     "TCP port of the Prometheus endpoint (0: any free port)"),
) + RESOURCE_OPTIONS


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
        elif isinstance(default, tuple):
            default = ",".join(default)
        elif default is None:
            default = "none"
        # a list-valued setting (--host) gathers every use of its flag
        action = "extend" if isinstance(getattr(defaults, field), tuple) else "store"
        group.add_argument(flag, dest=field, metavar=metavar, type=parse, default=argparse.SUPPRESS,
                           action=action, help=f"{text} [env {env_name(field)}, default {default}]")


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
    def data_dir_option(command_parser: argparse.ArgumentParser) -> None:
        add_data_dir_option(command_parser, _path)

    add_messages_command(commands, data_dir_option)
    add_db_command(commands, data_dir_option)
    add_control_commands(commands, data_dir_option)
    add_admin_commands(commands, data_dir_option)
    return parser


def _config_from(args: argparse.Namespace, environ: Mapping[str, str],
                 parser: argparse.ArgumentParser) -> Config:
    """Merge parsed flags over ``Config.from_env(environ)``; report bad
    environment values through ``parser.error`` (exit status 2)."""
    checks = {field: _as_value_error(parse) for field, _flag, _metavar, parse, _text in SERVE_OPTIONS}
    try:
        config = Config.from_env(environ, checks)
    except ValueError as exc:
        parser.error(f"environment variable {exc}")
    for field in (f.name for f in dataclasses.fields(Config)):
        if hasattr(args, field):
            value = getattr(args, field)
            setattr(config, field, tuple(value) if isinstance(value, list) else value)
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
    unknown option, a bad value in a flag or a ``LEVERET_*`` variable, a
    listener setup that cannot work (``listeners.listener_problem``), and
    ``SystemExit(0)`` for ``--help``/``--version``. The data-directory
    commands (``TOOL_COMMANDS``) use only ``config.data_dir`` and the
    ``mirror_*`` settings.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or DEFAULT_COMMAND
    if command != "serve":
        _check_tool_args(args, parser)
        return command, _config_from(args, environ, parser)
    config = _config_from(args, environ, parser)
    problem = listener_problem(config)
    if problem is not None:
        parser.error(problem)
    return command, config


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
    status. The data-directory commands run their ``TOOL_COMMANDS`` entry
    (exit 0 or 1). Exits with status 2 on a usage error, a bad flag or
    environment value.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in TOOL_COMMANDS:
        _check_tool_args(args, parser)
        config = _config_from(args, os.environ, parser)
        setup_logging("warning")
        sys.exit(_quiet_on_closed_pipe(lambda: TOOL_COMMANDS[args.command](args, config)))
    command, config = parse_command_line(argv)
    setup_logging(config.log_level)
    if command == "serve":
        from broker.app import server  # imported here so that --help works without the server's imports

        logging.getLogger(__name__).debug("config: %s", " ".join(
            f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k != "default_pass"))
        sys.exit(server.run(config))
    raise AssertionError(f"unhandled command {command!r}")  # argparse only accepts COMMANDS


def _quiet_on_closed_pipe(run: Callable[[], int]) -> int:
    """``run()``'s exit status; when the reader of stdout went away
    (``leveret messages find | head -1``), stop quietly with status 0, as
    a shell tool does, instead of "[Errno 32] Broken pipe"."""
    try:
        status = run()
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # Python flushes stdout again at exit: point it at /dev/null so that
        # flush does not fail a second time
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 0
