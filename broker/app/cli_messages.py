"""``leveret messages find`` and ``leveret messages show``: queries on the
message database ``<data_dir>/messages.db`` (storage/mirror), which work
while the broker runs.

``find`` prints a table (``--columns`` picks any columns; wide cells are
cut; ``showing N of M`` when ``--limit`` left messages out) or JSON.
``show`` takes the internal id, a message-id or a correlation-id. Exit
status: 0 done (also when nothing matched, or when the reader of the
output went away), 1 no database, a damaged one, or no such message, 2 a
bad argument.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Callable

from broker.app.cli_tools import int_at_least
from broker.app.config import Config
from broker.app.text_table import format_table

#: ``--state`` values (storage/mirror/schema.STATES; here too so that
#: building the parser does not import the storage layer)
STATE_NAMES = ("queued", "delivered", "acked", "rejected", "expired", "dead-lettered", "purged",
               "dropped", "deleted", "deduplicated", "unrouted")


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


def _state(text: str) -> str:
    """An argparse ``type`` accepting one of ``STATE_NAMES``."""
    if text not in STATE_NAMES:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(STATE_NAMES)}, got {text!r}")
    return text


def _columns(text: str) -> tuple[str, ...]:
    """An argparse ``type`` accepting a comma-separated list of ``find``
    columns."""
    from broker.persistence.message_database import FIND_COLUMNS

    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in FIND_COLUMNS]
    if unknown or not all(names):
        raise argparse.ArgumentTypeError(f"must be columns among {', '.join(FIND_COLUMNS)}, "
                                         f"got {text!r}")
    return names


def add_messages_command(commands, data_dir_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``messages find`` and ``messages show`` to the subparsers
    ``commands``."""
    messages = commands.add_parser(
        "messages", prog="leveret messages", help="query the message database",
        description="Query the message database (works while the broker runs).")
    sub = messages.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    find = sub.add_parser(
        "find", prog="leveret messages find", help="list messages matching filters",
        description="List messages matching every given filter, newest first. Default columns: "
                    "id, published_at, exchange, routing_key, queue (where the message went, "
                    "comma-separated), message_id, state, body_size.")
    data_dir_option(find)
    for flag, text in (("--vhost", "virtual host"), ("--queue", "routed to this queue"),
                       ("--exchange", "published to this exchange ('' for the default exchange)"),
                       ("--routing-key", "routing key"), ("--message-id", "message-id property"),
                       ("--correlation-id", "correlation-id property")):
        find.add_argument(flag, help=text)
    find.add_argument("--state", type=_state, metavar="S",
                      help=f"current state: {', '.join(STATE_NAMES)}")
    find.add_argument("--header", dest="headers", metavar="NAME=VALUE", type=_header_filter,
                      action="append", help="header NAME equals VALUE (string, or the JSON "
                                            "text of a number/boolean); repeatable")
    find.add_argument("--since", type=_time, metavar="T",
                      help="published at or after T (ISO-8601, UTC if no offset; or ms)")
    find.add_argument("--until", type=_time, metavar="T", help="published before T")
    find.add_argument("--limit", type=int_at_least(1), default=100, metavar="N",
                      help="at most N messages (default 100)")
    find.add_argument("--columns", type=_columns, metavar="C,C...",
                      help="the table's columns, e.g. id,correlation_id,state (any message "
                           "property, queue, published_at, finished_at, body_size ...)")
    find.add_argument("--json", action="store_true", help="print a JSON array (every column)")
    show = sub.add_parser("show", prog="leveret messages show",
                          help="one message: properties, body and event timeline",
                          description="Show one message: its properties, body (as text when it "
                                      "is UTF-8, else as a hex dump) and the event timeline "
                                      "(routed, delivered, acked...). ID is the id that find "
                                      "prints, or a message-id or correlation-id property.")
    show.add_argument("id", metavar="ID", help="the message's id, message-id or correlation-id")
    data_dir_option(show)
    show.add_argument("--json", action="store_true", help="print a JSON object")


def run_messages(args: argparse.Namespace, config: Config) -> int:
    """Run ``messages find|show`` on ``config.data_dir``; returns the exit
    status. Output goes to stdout, errors to stderr."""
    from broker.persistence.message_database import MirrorNotFound, db_path

    path = db_path(config.data_dir)
    try:
        return _show(args, path) if args.action == "show" else _find(args, path)
    except BrokenPipeError:
        raise  # the reader went away: cli._quiet_on_closed_pipe ends quietly
    except (MirrorNotFound, sqlite3.Error, ValueError, OSError) as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1


def _find(args: argparse.Namespace, path) -> int:
    from broker.persistence.message_database import (COUNT_CAP, DEFAULT_COLUMNS, NUMERIC_COLUMNS, cell, count,
                                                     find, to_json)

    filters = dict(vhost=args.vhost, queue=args.queue, exchange=args.exchange,
                   routing_key=args.routing_key, message_id=args.message_id,
                   correlation_id=args.correlation_id, state=args.state, since=args.since,
                   until=args.until, headers=dict(args.headers) if args.headers else None)
    rows = find(path, limit=args.limit, **filters)
    if args.json:
        print(to_json(rows))
        return 0
    if not rows:
        print("(no messages)")
        return 0
    columns = args.columns or DEFAULT_COLUMNS
    print(format_table(columns, [[cell(c, row.get(c)) for c in columns] for row in rows],
                       right=NUMERIC_COLUMNS))
    if len(rows) == args.limit:
        total = count(path, **filters)
        if total > len(rows):
            of = f"more than {COUNT_CAP}" if total > COUNT_CAP else str(total)
            print(f"showing {len(rows)} of {of} (newest first; --limit N shows more)")
    return 0


def _show(args: argparse.Namespace, path) -> int:
    from broker.persistence.message_database import format_message, lookup, show, to_json

    ids = lookup(path, args.id)
    if not ids:
        print(f"leveret: no message {args.id!r} in {path} (neither an id nor a message-id or "
              f"correlation-id)", file=sys.stderr)
        return 1
    if len(ids) > 1:
        others = ", ".join(map(str, ids[1:6])) + (" ..." if len(ids) > 6 else "")
        print(f"note: {len(ids)} messages match {args.id!r}; showing the newest, {ids[0]} "
              f"(others: {others})", file=sys.stderr)
    message = show(path, ids[0])
    print(to_json(message) if args.json else format_message(message))
    return 0
