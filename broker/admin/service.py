"""``AdminService``: users, virtual hosts, permissions and limits of a
running broker, as rabbitmqctl manages them (rabbitmq.com/access-control.html,
rabbitmq.com/vhosts.html, rabbitmq.com/user-limits.html). Every write takes
an ``Actor`` and logs one audit line (broker/admin/audit.py); it is durable
(topology database) when the method returns. Errors are ``AdminError``
with a ``kind`` ("not_found", "exists", "invalid") and a rabbitmqctl-like
message; a failed write changes nothing."""

from __future__ import annotations

import dataclasses
from typing import Iterable

from broker.access import AccessControl, User, VirtualHost
from broker.access.passwords import SHA256, hash_password, validate_hash
from broker.admin.audit import Actor, audit
from broker.admin.teardown import close_connections, tear_down_vhost
from protocol import reply_codes
from protocol.errors import connection_error

NOT_FOUND = "not_found"
EXISTS = "exists"
INVALID = "invalid"


class AdminError(Exception):
    """An admin request that cannot be done; ``kind`` says why (NOT_FOUND,
    EXISTS, INVALID), ``str()`` is the message for the caller."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class PermissionInfo:
    """One user's permission patterns in one vhost (regular expressions)."""
    user: str
    vhost: str
    configure: str
    write: str
    read: str


class AdminService:
    """The admin operations on ``server`` (broker.app.server.Server, given
    to the constructor: its ``access`` (broker.access.AccessControl),
    ``vhosts`` (name -> broker.vhost.namespace.VHost), ``make_vhost(name)``
    and ``connections`` (broker.transport.connection.Connection set))."""

    def __init__(self, server):
        self.server = server

    @property
    def access(self) -> AccessControl:
        return self.server.access

    # ---- users ---------------------------------------------------------------

    def list_users(self) -> list[User]:
        """Every user, in creation order (name, password_hash,
        hashing_algorithm, tags)."""
        return list(self.access.users.values())

    def add_user(self, actor: Actor, name: str, password: str | None = None, *, tags: Iterable[str] = (),
                 password_hash: str | None = None, hashing_algorithm: str = SHA256,
                 replace: bool = False) -> User:
        """Create user ``name`` with ``password`` (hashed with SHA-256), or
        with an imported ``password_hash`` of ``hashing_algorithm`` (sha256,
        sha512 or md5 RabbitMQ module name, rabbitmq.com/passwords.html);
        neither: a user that cannot log in with a password. ``replace``
        (definitions import) overwrites an existing user, keeping its
        permissions. AdminError EXISTS, INVALID (empty name, bad hash)."""
        if not name:
            raise AdminError(INVALID, "user name must not be empty")
        if name in self.access.users and not replace:
            raise AdminError(EXISTS, f'User "{name}" already exists')
        if password is not None and password_hash is not None:
            raise AdminError(INVALID, "give a password or a password hash, not both")
        try:
            if password is not None:
                password_hash, hashing_algorithm = hash_password(password), SHA256
            else:
                password_hash = password_hash or ""
                validate_hash(password_hash, hashing_algorithm)
        except ValueError as exc:
            raise AdminError(INVALID, str(exc)) from None
        user = User(name, password_hash, hashing_algorithm, _tags(tags))
        self.access.put_user(user)
        audit(actor, "add_user", f"'{name}' (tags: {', '.join(user.tags) or 'none'}"
                                 f"{', from a hash' if password is None and password_hash else ''})")
        return user

    def delete_user(self, actor: Actor, name: str) -> None:
        """Delete user ``name``, its permissions and limits; its open
        connections are closed with 320 CONNECTION_FORCED "user 'name' is
        deleted" (as RabbitMQ). AdminError NOT_FOUND."""
        self._user(name)
        self.access.remove_user(name)
        closed = close_connections(self.server, lambda c: c.username == name,
                                   connection_error(reply_codes.CONNECTION_FORCED, f"user '{name}' is deleted"))
        audit(actor, "delete_user", f"'{name}' ({closed} connections closed)")

    def set_password(self, actor: Actor, name: str, password: str) -> None:
        """Give user ``name`` a new password (SHA-256 hash); open
        connections stay. AdminError NOT_FOUND."""
        user = self._user(name)
        self.access.put_user(dataclasses.replace(user, password_hash=hash_password(password),
                                                 hashing_algorithm=SHA256))
        audit(actor, "set_password", f"'{name}'")

    def clear_password(self, actor: Actor, name: str) -> None:
        """User ``name`` can no longer log in with a password (rabbitmqctl
        clear_password). AdminError NOT_FOUND."""
        user = self._user(name)
        self.access.put_user(dataclasses.replace(user, password_hash=""))
        audit(actor, "clear_password", f"'{name}'")

    def set_tags(self, actor: Actor, name: str, tags: Iterable[str]) -> User:
        """Replace the tags of user ``name``. AdminError NOT_FOUND."""
        user = dataclasses.replace(self._user(name), tags=_tags(tags))
        self.access.put_user(user)
        audit(actor, "set_tags", f"'{name}' ({', '.join(user.tags) or 'none'})")
        return user

    # ---- virtual hosts -------------------------------------------------------

    def list_vhosts(self) -> list[VirtualHost]:
        """Every vhost, in creation order (name, description, tags)."""
        return list(self.access.vhosts.values())

    def add_vhost(self, actor: Actor, name: str, description: str = "", tags: Iterable[str] = ()) -> VirtualHost:
        """Create vhost ``name`` with the standard exchanges; adding an
        existing one only updates its description and tags (rabbitmqctl
        add_vhost is idempotent). AdminError INVALID for an empty name."""
        if not name:
            raise AdminError(INVALID, "vhost name must not be empty")
        vhost = VirtualHost(name, description, _tags(tags))
        self.access.put_vhost(vhost)
        if name not in self.server.vhosts:
            self.server.vhosts[name] = self.server.make_vhost(name)
        audit(actor, "add_vhost", f"'{name}'")
        return vhost

    def delete_vhost(self, actor: Actor, name: str) -> None:
        """Delete vhost ``name``: its connections are closed with 320
        CONNECTION_FORCED "vhost 'name' is deleted" (as RabbitMQ), its
        queues (their stored messages released from the WAL), exchanges,
        bindings, permissions and limits go. AdminError NOT_FOUND."""
        if name not in self.access.vhosts:
            raise AdminError(NOT_FOUND, f'Virtual host "{name}" does not exist')
        self.access.remove_vhost(name)  # durable first: one transaction drops all its rows
        closed, queues, messages = tear_down_vhost(self.server, name)
        audit(actor, "delete_vhost", f"'{name}' ({closed} connections closed, {queues} queues with "
                                     f"{messages} messages deleted)")

    # ---- permissions ---------------------------------------------------------

    def list_permissions(self, vhost: str | None = None, user: str | None = None) -> list[PermissionInfo]:
        """Permissions, all or those of one ``vhost`` and/or ``user``."""
        return [PermissionInfo(g.user, g.vhost, g.configure, g.write, g.read) for (u, v), g in
                self.access.grants.items()
                if g.active and (vhost is None or v == vhost) and (user is None or u == user)]

    def set_permissions(self, actor: Actor, user: str, vhost: str, configure: str, write: str,
                        read: str) -> PermissionInfo:
        """Set ``user``'s configure/write/read regular expressions in
        ``vhost`` (rabbitmqctl set_permissions); open connections follow at
        once. AdminError NOT_FOUND (user, vhost), INVALID (bad regex)."""
        self._user(user)
        self._vhost(vhost)
        try:
            self.access.put_permission(user, vhost, configure, write, read)
        except ValueError as exc:
            raise AdminError(INVALID, str(exc)) from None
        audit(actor, "set_permissions", f"user '{user}' vhost '{vhost}': configure '{configure}' "
                                        f"write '{write}' read '{read}'")
        return PermissionInfo(user, vhost, configure, write, read)

    def clear_permissions(self, actor: Actor, user: str, vhost: str) -> None:
        """Remove ``user``'s permissions in ``vhost``: open connections are
        refused everything from now on, new ones get 530. AdminError
        NOT_FOUND (user, vhost)."""
        self._user(user)
        self._vhost(vhost)
        self.access.remove_permission(user, vhost)
        audit(actor, "clear_permissions", f"user '{user}' vhost '{vhost}'")

    # ---- limits --------------------------------------------------------------

    def list_vhost_limits(self) -> dict[str, dict]:
        """vhost name -> its limits ({"max-connections": n, "max-queues": n})."""
        return {name: dict(limits) for name, limits in self.access.vhost_limits.items()}

    def list_user_limits(self) -> dict[str, dict]:
        """user name -> its limits ({"max-connections": n, "max-channels": n})."""
        return {name: dict(limits) for name, limits in self.access.user_limits.items()}

    def set_vhost_limits(self, actor: Actor, vhost: str, limits: dict) -> dict:
        """Replace the limits of ``vhost`` (rabbitmqctl set_vhost_limits);
        a negative value means no limit, {} clears them. Existing
        connections and queues stay. Returns the limits in force.
        AdminError NOT_FOUND, INVALID (unknown limit, not an integer)."""
        self._vhost(vhost)
        return self._set_limits(actor, "vhost", vhost, limits)

    def set_user_limits(self, actor: Actor, user: str, limits: dict) -> dict:
        """Replace the limits of ``user`` (rabbitmqctl set_user_limits), as
        ``set_vhost_limits``. AdminError NOT_FOUND, INVALID."""
        self._user(user)
        return self._set_limits(actor, "user", user, limits)

    def set_limits(self, actor: Actor, kind: str, name: str, limits: dict) -> dict:
        """``set_vhost_limits`` (``kind`` "vhost") or ``set_user_limits``
        ("user"). AdminError INVALID for another kind."""
        if kind == "vhost":
            return self.set_vhost_limits(actor, name, limits)
        if kind == "user":
            return self.set_user_limits(actor, name, limits)
        raise AdminError(INVALID, f"limits are for a vhost or a user, not '{kind}'")

    def _set_limits(self, actor: Actor, kind: str, name: str, limits: dict) -> dict:
        try:
            checked = self.access.put_limits(kind, name, limits)
        except ValueError as exc:
            raise AdminError(INVALID, str(exc)) from None
        audit(actor, f"set_{kind}_limits", f"'{name}': {checked or 'none'}")
        return checked

    # ---- lookups -------------------------------------------------------------

    def _user(self, name: str) -> User:
        user = self.access.users.get(name)
        if user is None:
            raise AdminError(NOT_FOUND, f'User "{name}" does not exist')
        return user

    def _vhost(self, name: str) -> VirtualHost:
        vhost = self.access.vhosts.get(name)
        if vhost is None:
            raise AdminError(NOT_FOUND, f'Virtual host "{name}" does not exist')
        return vhost


def _tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags without blanks or repeats, in the given order (a single string
    is one tag list "a,b" or "a b", as rabbitmqctl set_user_tags takes)."""
    if isinstance(tags, str):
        tags = tags.replace(",", " ").split()
    seen: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if tag and tag not in seen:
            seen.append(tag)
    return tuple(seen)
