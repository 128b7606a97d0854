"""The ``leveret`` commands that ask the running broker through its local
control channel (``broker.control``): ``leveret queues list``.

They find the broker by its data directory (``--data-dir``, else
``LEVERET_DATA_DIR``, else ``./data``): its control socket is
``<data_dir>/leveret.sock``. Exit status: 0 done, 1 no broker running on
that data directory or the broker refused (its message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping

from broker.app.config import Config
from broker.app.text_table import format_table
from broker.control.client import NoBroker, call
from broker.control.wire import ControlError

QUEUE_COLUMNS = ("vhost", "name", "type", "ready", "unacked", "consumers", "arguments")


def add_control_commands(commands, data_dir_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``queues list`` to the subparsers ``commands``;
    ``data_dir_option`` adds ``--data-dir`` to a parser."""
    queues = commands.add_parser("queues", prog="leveret queues", help="the running broker's queues",
                                 description="Ask the running broker about its queues.")
    sub = queues.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    listing = sub.add_parser(
        "list", prog="leveret queues list", help="queues with their depth and consumers",
        description="List the queues of the broker running on the data directory: vhost, name, "
                    "type, ready (messages waiting), unacked (delivered, not yet acknowledged), "
                    "consumers, arguments.")
    data_dir_option(listing)
    listing.add_argument("--vhost", help="only this virtual host")
    listing.add_argument("--json", action="store_true", help="print a JSON array")


def run_control(args: argparse.Namespace, config: Config) -> int:
    """Run a control command on the broker of ``config.data_dir``; returns
    the exit status."""
    try:
        rows = call(config.data_dir, "queues.list", {"vhost": args.vhost} if args.vhost else {})
    except (NoBroker, ControlError, OSError) as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif not rows:
        print("(no queues)")
    else:
        print(format_table(QUEUE_COLUMNS, [_queue_cells(row) for row in rows],
                           right=("ready", "unacked", "consumers")))
    return 0


def _queue_cells(row: Mapping) -> list[str]:
    arguments = row.get("arguments") or {}
    return [row["vhost"], row["name"], row["type"], str(row["ready"]), str(row["unacked"]),
            str(row["consumers"]), json.dumps(arguments, ensure_ascii=False) if arguments else ""]
