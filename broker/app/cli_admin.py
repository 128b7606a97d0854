"""The ``leveret`` admin commands: users, permissions, vhosts and
definitions on a running broker, through its control channel
(``broker.control``; the handlers are ``broker.control.admin_commands``).

Their shapes and output follow ``rabbitmqctl``'s (rabbitmq.com/docs/cli,
rabbitmqctl(8)): ``users add NAME [PASSWORD]`` is ``add_user``,
``permissions set [-p VHOST] USER CONF WRITE READ`` is ``set_permissions``,
lists print an info line (``Listing users ...``) and tab-separated columns
under a header, and ``--quiet`` leaves the info lines out. A password that
is not on the command line is read from a prompt (a terminal) or from the
first line of stdin (a pipe), so that it stays out of ``ps`` and shell
history. Exit status: 0 done, 1 no broker or the broker refused (its message
on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path

from broker.app.config import Config
from broker.control.client import NoBroker, call
from broker.control.wire import ControlError

#: the commands this module adds (``leveret COMMAND ACTION``)
ADMIN_COMMANDS = ("users", "permissions", "vhosts", "definitions")
DEFAULT_VHOST = "/"


def add_admin_commands(commands, data_dir_option: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``users``, ``permissions``, ``vhosts`` and ``definitions`` to the
    subparsers ``commands``; ``data_dir_option`` adds ``--data-dir``."""

    def action(group, name: str, text: str, description: str = "") -> argparse.ArgumentParser:
        parser = group.add_parser(name, help=text, description=description or text)
        data_dir_option(parser)
        parser.add_argument("-q", "--quiet", action="store_true", help="no informational lines")
        return parser

    def noun(name: str, text: str):
        parser = commands.add_parser(name, prog=f"leveret {name}", help=text, description=text)
        return parser.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)

    users = noun("users", "users of the running broker (rabbitmqctl list_users, add_user ...)")
    listing = action(users, "list", "users and their tags")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    add = action(users, "add", "add a user (rabbitmqctl add_user)",
                 "Add a user. Without PASSWORD it is read from a prompt, or from stdin's first line.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("password", metavar="PASSWORD", nargs="?")
    action(users, "delete", "delete a user and its permissions").add_argument("name", metavar="NAME")
    change = action(users, "set-password", "change a user's password (rabbitmqctl change_password)",
                    "Change a user's password. Without PASSWORD it is read from a prompt, or stdin.")
    change.add_argument("name", metavar="NAME")
    change.add_argument("password", metavar="PASSWORD", nargs="?")
    tags = action(users, "set-tags", "replace a user's tags (no TAG: none)",
                  "Replace a user's tags: administrator, monitoring, management, policymaker or any "
                  "other word. With no TAG the user has none.")
    tags.add_argument("name", metavar="NAME")
    tags.add_argument("tags", metavar="TAG", nargs="*")

    permissions = noun("permissions", "per-vhost permissions (rabbitmqctl set_permissions ...)")
    listing = action(permissions, "list", "permissions in a vhost, or of one user in every vhost")
    vhost_group = listing.add_mutually_exclusive_group()
    vhost_group.add_argument("-p", "--vhost", help=f"the vhost (default {DEFAULT_VHOST})")
    vhost_group.add_argument("--user", help="list this user's permissions in every vhost instead")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    grant = action(permissions, "set", "set a user's configure, write and read patterns in a vhost",
                   "Set USER's permissions in the vhost: three regular expressions matched against "
                   "resource names ('' matches nothing, '.*' everything).")
    grant.add_argument("-p", "--vhost", default=DEFAULT_VHOST, help=f"the vhost (default {DEFAULT_VHOST})")
    for name in ("user", "configure", "write", "read"):
        grant.add_argument(name, metavar=name.upper())
    clear = action(permissions, "clear", "remove a user's permissions in a vhost")
    clear.add_argument("-p", "--vhost", default=DEFAULT_VHOST, help=f"the vhost (default {DEFAULT_VHOST})")
    clear.add_argument("user", metavar="USER")

    vhosts = noun("vhosts", "virtual hosts (rabbitmqctl list_vhosts, add_vhost, delete_vhost)")
    listing = action(vhosts, "list", "virtual hosts")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    add = action(vhosts, "add", "add a virtual host (nothing to do when it exists)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--description", default="", help="free text")
    add.add_argument("--tags", default="", help="comma-separated tags")
    action(vhosts, "delete", "delete a virtual host: its exchanges, queues and messages go, its connections "
           "are closed (320)").add_argument("name", metavar="NAME")

    definitions = noun("definitions", "users, vhosts, permissions and topology in RabbitMQ's JSON format")
    export = action(definitions, "export", "write the broker's definitions (rabbitmqctl export_definitions)")
    export.add_argument("file", metavar="FILE", nargs="?", default="-", help="file to write (default -: stdout)")
    load = action(definitions, "import", "apply a definitions file (rabbitmqctl import_definitions)",
                  "Apply a definitions file (one RabbitMQ exported, or Leveret): what exists is updated "
                  "(users, permissions) or left as it is (exchanges, queues), the rest is created.")
    load.add_argument("file", metavar="FILE", help="file to read (-: stdin)")


def run_admin(args: argparse.Namespace, config: Config) -> int:
    """Run an admin command against the broker serving ``config.data_dir``;
    returns the exit status (0, or 1 with the reason on stderr)."""
    try:
        return _RUNNERS[args.command](args, config.data_dir)
    except (NoBroker, ControlError, OSError, ValueError) as exc:
        print(f"leveret: {exc}", file=sys.stderr)
        return 1


def _info(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)


def _password(given: str | None, name: str) -> str:
    """``given``, else a prompt on a terminal, else stdin's first line
    without its line end. Raises ValueError when stdin is empty."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        return getpass.getpass(f"Password for user \"{name}\": ")
    line = sys.stdin.readline()
    if not line:
        raise ValueError("no password: give it as an argument, at the prompt or on stdin")
    return line.rstrip("\r\n")


def _table(args: argparse.Namespace, columns: tuple[str, ...], rows: list[dict],
           cell: Callable[[dict, str], str] = lambda row, key: str(row[key])) -> None:
    """rabbitmqctl's list output: a header, then one tab-separated line per
    row; with ``--json``, the rows as a JSON array."""
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    print("\t".join(columns))
    for row in rows:
        print("\t".join(cell(row, key) for key in columns))


def _users(args: argparse.Namespace, data_dir: Path) -> int:
    name = getattr(args, "name", None)
    if args.action == "list":
        _info(args, "Listing users ...")
        _table(args, ("user", "tags"), call(data_dir, "users.list"),
               lambda row, key: row["name"] if key == "user" else f"[{', '.join(row['tags'])}]")
    elif args.action == "add":
        password = _password(args.password, name)
        _info(args, f'Adding user "{name}" ...')
        call(data_dir, "users.add", {"name": name, "password": password})
    elif args.action == "delete":
        _info(args, f'Deleting user "{name}" ...')
        call(data_dir, "users.delete", {"name": name})
    elif args.action == "set-password":
        password = _password(args.password, name)
        _info(args, f'Changing password for user "{name}" ...')
        call(data_dir, "users.set_password", {"name": name, "password": password})
    else:
        _info(args, f'Setting tags for user "{name}" to [{", ".join(args.tags)}] ...')
        call(data_dir, "users.set_tags", {"name": name, "tags": args.tags})
    return 0


def _permissions(args: argparse.Namespace, data_dir: Path) -> int:
    if args.action == "list":
        if args.user is not None:
            _info(args, f'Listing permissions for user "{args.user}" ...')
            columns: tuple[str, ...] = ("vhost", "configure", "write", "read")
            rows = call(data_dir, "permissions.list", {"user": args.user})
        else:
            vhost = args.vhost or DEFAULT_VHOST
            _info(args, f'Listing permissions for vhost "{vhost}" ...')
            columns = ("user", "configure", "write", "read")
            rows = call(data_dir, "permissions.list", {"vhost": vhost})
        _table(args, columns, rows)
    elif args.action == "set":
        _info(args, f'Setting permissions for user "{args.user}" in vhost "{args.vhost}" ...')
        call(data_dir, "permissions.set", {"vhost": args.vhost, "user": args.user, "configure": args.configure,
                                           "write": args.write, "read": args.read})
    else:
        _info(args, f'Clearing permissions for user "{args.user}" in vhost "{args.vhost}" ...')
        call(data_dir, "permissions.clear", {"vhost": args.vhost, "user": args.user})
    return 0


def _vhosts(args: argparse.Namespace, data_dir: Path) -> int:
    if args.action == "list":
        _info(args, "Listing vhosts ...")
        _table(args, ("name", "description", "tags"), call(data_dir, "vhosts.list"),
               lambda row, key: f"[{', '.join(row['tags'])}]" if key == "tags" else row[key])
    elif args.action == "add":
        _info(args, f'Adding vhost "{args.name}" ...')
        tags = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
        call(data_dir, "vhosts.add", {"name": args.name, "description": args.description, "tags": tags})
    else:
        _info(args, f'Deleting vhost "{args.name}" ...')
        call(data_dir, "vhosts.delete", {"name": args.name})
    return 0


def _definitions(args: argparse.Namespace, data_dir: Path) -> int:
    if args.action == "export":
        document = call(data_dir, "definitions.export")
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        if args.file == "-":
            sys.stdout.write(text)
        else:
            _info(args, f'Exporting definitions in JSON to a file at "{args.file}" ...')
            Path(args.file).write_text(text, encoding="utf-8")
        return 0
    source = "standard input" if args.file == "-" else f'a file at "{args.file}"'
    _info(args, f"Importing definitions in JSON from {source} ...")
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{args.file} is not a JSON document: {exc}") from None
    summary = call(data_dir, "definitions.import", {"document": document})
    _info(args, f"Imported {summary}")
    return 0


_RUNNERS: dict[str, Callable[[argparse.Namespace, Path], int]] = {
    "users": _users, "permissions": _permissions, "vhosts": _vhosts, "definitions": _definitions,
}
