"""The ``leveret messages find|show`` and ``leveret db rebuild`` commands:
their argument parsers and what they run (``broker.app.cli`` wires them in).

They work on ``<data_dir>/messages.db`` (storage/mirror): ``messages``
reads it while the broker runs; ``db rebuild`` recreates it from the WAL
and needs the broker stopped. They take no server option except
``--data-dir``; ``db rebuild`` uses the ``LEVERET_MIRROR_*`` variables for
the body limit and retention, as the broker does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from broker.app.config import Config, env_name

_DATA_DIR_ENV = env_name("data_dir")


def _header_filter(text: str) -> tuple[str, str]:
    """An argparse ``type`` accepting ``NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _time(text: str) -> str:
    """An argparse ``type`` accepting ISO-8601 or ms since the epoch."""
    from broker.persistence.message_database import to_ms

    try:
        to_ms(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _int_at_least(low: int) -> Callable[[str], int]:
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


def add_tool_commands(commands, path_type: Callable[[str], Path]) -> None:
    """Add the ``messages`` and ``db`` commands to the subparsers
    ``commands``; ``path_type`` checks ``--data-dir``."""

    def data_dir_option(parser: argparse.ArgumentParser) -> None:
        add_data_dir_option(parser, path_type)

    messages = commands.add_parser(
        "messages", prog="leveret messages", help="query the message database",
        description="Query the message database (works while the broker runs).")
    sub = messages.add_subparsers(dest="action", metavar="ACTION", title="actions",
                                  required=True)
    find = sub.add_parser(
        "find", prog="leveret messages find", help="list messages matching filters",
        description="List messages matching every given filter, newest first. Table columns: "
                    "id, published_at, exchange, routing_key, message_id, state, body_size.")
    data_dir_option(find)
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
    find.add_argument("--limit", type=_int_at_least(1), default=100, metavar="N",
                      help="at most N messages (default 100)")
    find.add_argument("--json", action="store_true", help="print a JSON array")
    show = sub.add_parser("show", prog="leveret messages show",
                          help="one message: properties and event timeline",
                          description="Show one message: its properties, body and the event "
                                      "timeline (routed, delivered, acked...).")
    show.add_argument("id", type=_int_at_least(0), metavar="ID", help="the message's id")
    data_dir_option(show)
    show.add_argument("--json", action="store_true", help="print a JSON object")
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
    """``messages``/``db`` take no server option, not even before the
    command name (``leveret --port 1 db rebuild``); ``--data-dir`` is the
    exception, it means the same thing everywhere. ``serve_flags``:
    (config field, flag) of every server option."""
    for field, flag in serve_flags:
        if field != "data_dir" and hasattr(args, field):
            parser.error(f"{flag} is a server option; it does not apply to "
                         f"'{args.command} {args.action}'")


def tool_data_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    """The data directory of a ``messages``/``db`` command: ``--data-dir``,
    else ``LEVERET_DATA_DIR``, else ``Config().data_dir`` (./data)."""
    if hasattr(args, "data_dir"):
        return args.data_dir
    value = environ.get(_DATA_DIR_ENV)
    return Path(value) if value else Config().data_dir


def run_tool(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run ``messages find|show`` or ``db rebuild``; returns the exit status
    (0 ok, 1 error: no database, no such message, broker running, a bad
    ``LEVERET_MIRROR_*`` value...). Output goes to stdout, errors to
    stderr."""
    from broker.persistence.message_database import (MirrorNotFound, RebuildError, WalError, db_path, find,
                                                     format_message, format_table, rebuild, show, to_json)

    data_dir = tool_data_dir(args, environ)
    try:
        if args.command == "db":
            summary = rebuild(data_dir, **Config.from_env(dict(environ)).mirror_options())
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
