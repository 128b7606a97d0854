"""The ``leveret`` command line (also ``python -m broker``).

::

    leveret [serve] [--host H] [--port P] [--data-dir D]
            [--log-level debug|info|warning|error] [--heartbeat S]
            [--frame-max B] [--channel-max N] [--max-message-size B]
            [--handshake-timeout S]

With no subcommand, or when the first argument is an option, the broker
serves: ``leveret --port 5673`` is ``leveret serve --port 5673``. The
subcommand table is there so that later commands (``leveret db rebuild``,
``leveret messages find``) slot in beside ``serve``.

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
COMMANDS = ("serve",)
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


def build_parser() -> argparse.ArgumentParser:
    """Return the ``leveret`` argument parser.

    The top-level parser carries the ``serve`` options too, so that
    ``leveret --port 5673`` works without naming the subcommand and
    ``leveret --help`` lists them. Subcommands live in ``args.command``
    (``None`` when absent, which means ``serve``).
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


def parse_command_line(argv: Sequence[str] | None = None,
                       environ: Mapping[str, str] | None = None) -> tuple[str, Config]:
    """Parse ``argv`` (without the program name; ``sys.argv[1:]`` when None)
    against ``environ`` (``os.environ`` when None).

    Returns ``(command, config)``; ``command`` is ``"serve"`` when no command
    is named. Raises ``SystemExit(2)`` after printing a usage message for an
    unknown option, a bad value in a flag or a ``LEVERET_*`` variable, and
    ``SystemExit(0)`` for ``--help``/``--version``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or DEFAULT_COMMAND
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
    (``2026-11-22 10:00:00,123 INFO broker.server: message``), at ``level``
    (one of ``LOG_LEVELS``). Replaces any handler already on the root logger.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``leveret`` console script and ``python -m broker``.

    Parses ``argv`` (``sys.argv[1:]`` when None), sets up logging and runs the
    chosen command. For ``serve`` that is ``broker.server.run(config)``, which
    blocks until SIGTERM/SIGINT; its return value becomes the process exit
    status. Exits with status 2 on a usage error.
    """
    command, config = parse_command_line(argv)
    setup_logging(config.log_level)
    if command == "serve":
        from broker import server  # imported here so that --help works without the server's imports

        logging.getLogger(__name__).debug("config: %s", " ".join(
            f"{k}={v}" for k, v in dataclasses.asdict(config).items() if k != "default_pass"))
        sys.exit(server.run(config))
    raise AssertionError(f"unhandled command {command!r}")  # argparse only accepts COMMANDS
