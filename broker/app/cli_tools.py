"""What the data-directory commands share (``leveret messages``, ``leveret
queues``, ``leveret db``): the ``--data-dir`` option, the rule that they
take no other server option, an integer check; and ``leveret db rebuild``
itself (``broker.app.cli`` wires them in).

``db rebuild`` recreates ``<data_dir>/messages.db`` (storage/mirror) from
the WAL and needs the broker stopped; it uses the ``LEVERET_MIRROR_*``
variables for the body limit and retention, as the broker does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from broker.app.config import Config, env_name

_DATA_DIR_ENV = env_name("data_dir")


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def add_data_dir_option(parser: argparse.ArgumentParser, path_type: Callable[[str], Path]) -> None:
    """Add ``--data-dir D`` (checked by ``path_type``) to a command's parser."""
    parser.add_argument("--data-dir", dest="data_dir", metavar="D", type=path_type,
                        default=argparse.SUPPRESS,
                        help=f"the broker's data directory [env {_DATA_DIR_ENV}, default ./data]")


def add_db_command(commands, data_dir_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``db rebuild`` to the subparsers ``commands``."""
    db = commands.add_parser("db", prog="leveret db", help="maintain the message database",
                             description="Maintain the message database.")
    dbsub = db.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    rebuild = dbsub.add_parser(
        "rebuild", prog="leveret db rebuild", help="recreate it from the WAL (broker stopped)",
        description="Delete and recreate the message database from the WAL segments. "
                    "Refuses while the broker runs (the WAL directory is locked). The body "
                    "limit and retention come from the LEVERET_MIRROR_* variables.")
    data_dir_option(rebuild)


def check_tool_args(args: argparse.Namespace, parser: argparse.ArgumentParser,
                    serve_flags: Iterable[tuple[str, str]]) -> None:
    """The data-directory commands take no server option, not even before
    the command name (``leveret --port 1 db rebuild``); ``--data-dir`` is
    the exception, it means the same thing everywhere. ``serve_flags``:
    (config field, flag) of every server option."""
    for field, flag in serve_flags:
        if field != "data_dir" and hasattr(args, field):
            parser.error(f"{flag} is a server option; it does not apply to "
                         f"'{args.command} {args.action}'")


def run_db(args: argparse.Namespace, config: Config) -> int:
    """Run ``db rebuild`` on ``config.data_dir`` with its ``mirror_*``
    settings; returns the exit status (0 done, 1 error: the broker runs, a
    damaged WAL, a file that cannot be written)."""
    from broker.persistence.message_database import RebuildError, WalError, rebuild

    try:
        summary = rebuild(config.data_dir, **config.mirror_options())
    except (RebuildError, WalError, ValueError, OSError) as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1
    print(f"rebuilt {summary['db_path']} from {summary['segments']} WAL segments: "
          f"{summary['records']} records, {summary['messages']} messages "
          f"in {summary['seconds']:.2f} s")
    if summary["truncated"]:
        print(f"note: the last segment ends in a torn record at {summary['truncated']}")
    return 0
