"""The admin commands of the control channel: ``users.*``,
``permissions.*``, ``vhosts.*`` and ``definitions.*`` (what ``leveret users
add`` and the others send, broker/app/cli_admin.py). Each calls the admin
service (``context.admin``: broker.admin.AdminService) as the OS user who
owns the control socket; AdminError becomes ControlError with the code of
its kind (404 not found, 409 exists, 400 invalid), DefinitionsError 400."""

from __future__ import annotations

import getpass
import logging

from broker.admin import Actor, AdminError
from broker.admin.definitions import export_definitions, forget_user, forget_vhost, import_definitions
from broker.admin.definitions_records import DefinitionsError
from broker.control.registry import Registry, argument
from broker.control.wire import BAD_REQUEST, CONFLICT, NOT_FOUND, ControlError

log = logging.getLogger(__name__)

_CODES = {"not_found": NOT_FOUND, "exists": CONFLICT, "invalid": BAD_REQUEST}


def register(registry: Registry) -> None:
    """Add the admin commands to ``registry``."""
    for name, handler, summary in (
        ("users.list", users_list, "users and their tags"),
        ("users.add", users_add, "add a user; args: name, password"),
        ("users.delete", users_delete, "delete a user (its connections are closed); args: name"),
        ("users.set_password", users_set_password, "change a user's password; args: name, password"),
        ("users.set_tags", users_set_tags, "replace a user's tags; args: name, tags (list)"),
        ("permissions.list", permissions_list, "permissions; args: vhost or user (optional)"),
        ("permissions.set", permissions_set, "set permissions; args: vhost, user, configure, write, read"),
        ("permissions.clear", permissions_clear, "remove permissions; args: vhost, user"),
        ("vhosts.list", vhosts_list, "virtual hosts"),
        ("vhosts.add", vhosts_add, "add a virtual host; args: name, description, tags"),
        ("vhosts.delete", vhosts_delete, "delete a virtual host with all it holds; args: name"),
        ("definitions.export", definitions_export, "the definitions document (RabbitMQ's JSON format)"),
        ("definitions.import", definitions_import, "apply a definitions document; args: document"),
    ):
        registry.add(name, _translated(handler), summary)


def _translated(handler):
    """``handler`` with AdminError and DefinitionsError turned into
    ControlError."""
    def run(context, args: dict):
        try:
            return handler(context, args)
        except AdminError as exc:
            raise ControlError(str(exc), _CODES.get(exc.kind, BAD_REQUEST)) from None
        except DefinitionsError as exc:
            raise ControlError(f"invalid definitions: {exc}", BAD_REQUEST) from None
    run.__doc__ = handler.__doc__
    return run


def _actor() -> Actor:
    """The caller: only the broker's own OS user (or root) may open the
    socket, so the audit line names that user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(user, "control socket")


def _name(args: dict) -> str:
    return argument(args, "name", str)


# ---- users --------------------------------------------------------------------

def users_list(context, args: dict) -> list[dict]:
    """``[{"name", "tags": [...]}]`` in creation order."""
    return [{"name": u.name, "tags": list(u.tags)} for u in context.admin.list_users()]


def users_add(context, args: dict) -> None:
    """Add user ``name`` with ``password`` (required). 409 when it exists."""
    context.admin.add_user(_actor(), _name(args), argument(args, "password", str))


def users_delete(context, args: dict) -> None:
    """Delete user ``name``. 404 when absent."""
    name = _name(args)
    context.admin.delete_user(_actor(), name)
    forget_user(context, name)


def users_set_password(context, args: dict) -> None:
    """New ``password`` for user ``name``. 404 when absent."""
    context.admin.set_password(_actor(), _name(args), argument(args, "password", str))


def users_set_tags(context, args: dict) -> None:
    """Replace the tags of user ``name`` with ``tags`` (a list of strings)."""
    tags = argument(args, "tags", list, [])
    if not all(isinstance(tag, str) for tag in tags):
        raise ControlError("argument 'tags' must be a list of strings", BAD_REQUEST)
    context.admin.set_tags(_actor(), _name(args), tags)


# ---- permissions --------------------------------------------------------------

def permissions_list(context, args: dict) -> list[dict]:
    """``[{"user", "vhost", "configure", "write", "read"}]`` of one
    ``vhost`` or one ``user`` (404 when it does not exist), or all."""
    vhost = argument(args, "vhost", str, None)
    user = argument(args, "user", str, None)
    admin = context.admin
    if vhost is not None and vhost not in context.access.vhosts:
        raise ControlError(f'Virtual host "{vhost}" does not exist', NOT_FOUND)
    if user is not None and user not in context.access.users:
        raise ControlError(f'User "{user}" does not exist', NOT_FOUND)
    return [{"user": p.user, "vhost": p.vhost, "configure": p.configure, "write": p.write, "read": p.read}
            for p in admin.list_permissions(vhost=vhost, user=user)]


def permissions_set(context, args: dict) -> None:
    """Set ``user``'s ``configure``/``write``/``read`` patterns in ``vhost``."""
    context.admin.set_permissions(_actor(), argument(args, "user", str), argument(args, "vhost", str),
                                  argument(args, "configure", str), argument(args, "write", str),
                                  argument(args, "read", str))


def permissions_clear(context, args: dict) -> None:
    """Remove ``user``'s permissions in ``vhost``."""
    context.admin.clear_permissions(_actor(), argument(args, "user", str), argument(args, "vhost", str))


# ---- vhosts -------------------------------------------------------------------

def vhosts_list(context, args: dict) -> list[dict]:
    """``[{"name", "description", "tags": [...]}]`` in creation order."""
    return [{"name": v.name, "description": v.description, "tags": list(v.tags)}
            for v in context.admin.list_vhosts()]


def vhosts_add(context, args: dict) -> None:
    """Add vhost ``name`` (``description``, ``tags`` optional); an existing
    one keeps its content and gets the new description and tags."""
    tags = argument(args, "tags", list, [])
    context.admin.add_vhost(_actor(), _name(args), argument(args, "description", str, ""),
                            [str(tag) for tag in tags])


def vhosts_delete(context, args: dict) -> None:
    """Delete vhost ``name`` with its queues, exchanges, bindings and
    permissions; its connections are closed with 320. 404 when absent."""
    name = _name(args)
    context.admin.delete_vhost(_actor(), name)
    forget_vhost(context, name)


# ---- definitions --------------------------------------------------------------

def definitions_export(context, args: dict) -> dict:
    """The broker's definitions document (broker/admin/definitions.py)."""
    return export_definitions(context)


def definitions_import(context, args: dict) -> str:
    """Apply ``document`` (a definitions object); returns the summary line."""
    return import_definitions(context, _actor(), argument(args, "document", dict))
