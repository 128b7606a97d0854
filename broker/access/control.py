"""The broker's access control state (rabbitmq.com/access-control.html):
users, the names of the virtual hosts, permissions (``Grant`` per user and
vhost), limits, and the counts the limits apply to. Logins and
connection.open are decided here (``authenticate``, ``open_vhost``);
the session checks permissions through the connection's Grant.

Writes go to the durable store first (``AccessStore``, implemented by
broker.persistence.access_store), then to memory: a write that fails
(sqlite3.Error) changes nothing. broker.admin.AdminService is the one
caller of the writes."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections import Counter
from typing import Protocol

from broker.access import limits as limit_rules
from broker.access.passwords import check_password
from broker.access.permissions import Grant
from protocol import reply_codes
from protocol.errors import connection_error

#: why a login failed, as logged (issue 19: user, address and reason)
UNKNOWN_USER = "unknown user"
WRONG_PASSWORD = "wrong password"


@dataclasses.dataclass(frozen=True)
class User:
    """A user: ``password_hash`` in RabbitMQ's format (broker/access/passwords.py;
    "" = cannot log in with a password), ``hashing_algorithm`` its
    RabbitMQ module name, ``tags`` such as "administrator"."""
    name: str
    password_hash: str
    hashing_algorithm: str
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class VirtualHost:
    """A vhost's metadata (its exchanges and queues are broker.vhost's)."""
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()


class AccessStore(Protocol):
    """Durable writes of access control (broker.persistence.access_store);
    each commits before it returns and raises sqlite3.Error on failure."""

    def save_user(self, user: User) -> None: ...
    def delete_user(self, name: str) -> None: ...
    def save_vhost(self, vhost: VirtualHost) -> None: ...
    def delete_vhost(self, name: str) -> None: ...
    def save_permission(self, grant: Grant) -> None: ...
    def delete_permission(self, user: str, vhost: str) -> None: ...
    def save_limits(self, kind: str, name: str, limits: dict) -> None: ...


class AccessControl:
    """Users (``users``: name -> User), vhosts (``vhosts``: name ->
    VirtualHost), ``grants`` ((user, vhost) -> Grant; a revoked one, not
    ``active``, stands for cleared permissions), ``vhost_limits``
    and ``user_limits`` (name -> {limit: int}), and the live counts the
    limits are checked against (connections per vhost and per user, channels
    per user). ``loopback_users``: names that may log in from a loopback
    address only (RabbitMQ's ``loopback_users``, by default guest).
    ``store``: where writes go (None: memory only)."""

    def __init__(self, store: AccessStore | None = None, loopback_users: tuple[str, ...] = ("guest",)):
        self.store = store
        self.loopback_users = frozenset(loopback_users)
        self.users: dict[str, User] = {}
        self.vhosts: dict[str, VirtualHost] = {}
        self.grants: dict[tuple[str, str], Grant] = {}
        self.vhost_limits: dict[str, dict] = {}
        self.user_limits: dict[str, dict] = {}
        self.vhost_connections: Counter = Counter()
        self.user_connections: Counter = Counter()
        self.user_channels: Counter = Counter()

    # ---- login and connection.open (broker.transport.connection) -------

    def authenticate(self, username: str, password: str, address: str) -> tuple[User | None, str]:
        """``(user, "")`` when the password is right and the user may log
        in from ``address`` (an IP address text); else ``(None, reason)``
        for the log: unknown user, wrong password, or "user 'guest' can
        only connect via localhost" (RabbitMQ's reason for a loopback
        user). The password itself is never part of the reason."""
        user = self.users.get(username)
        if user is None:
            return None, UNKNOWN_USER
        if not check_password(user.password_hash, user.hashing_algorithm, password):
            return None, WRONG_PASSWORD
        if username in self.loopback_users and not is_loopback(address):
            return None, f"user '{username}' can only connect via localhost"
        return user, ""

    def authenticate_external(self, username: str, address: str) -> tuple[User | None, str]:
        """SASL EXTERNAL (the name is the TLS client certificate's CN, checked
        by the transport): as ``authenticate`` without a password; the user
        must exist, and a loopback-only user still needs a loopback address."""
        user = self.users.get(username)
        if user is None:
            return None, UNKNOWN_USER
        if username in self.loopback_users and not is_loopback(address):
            return None, f"user '{username}' can only connect via localhost"
        return user, ""

    def open_vhost(self, username: str, vhost: str) -> Grant:
        """connection.open of ``vhost`` by the logged-in ``username``, checked
        in RabbitMQ 3.10's order (rabbit_reader): the vhost's connection
        limit, the user's connection limit, then the vhost's existence and
        the user's permissions. Returns the user's Grant there and counts
        the connection (``connection_closed`` uncounts it). Raises 530
        NOT_ALLOWED (connection errors) with RabbitMQ's texts."""
        count = limit_rules.reached(self.vhost_limits.get(vhost, {}), limit_rules.MAX_CONNECTIONS,
                                    self.vhost_connections[vhost])
        if count is not None and vhost in self.vhosts:
            raise limit_rules.vhost_connections_refused(vhost, username, count)
        count = limit_rules.reached(self.user_limits.get(username, {}), limit_rules.MAX_CONNECTIONS,
                                    self.user_connections[username])
        if count is not None:
            raise limit_rules.user_connections_refused(username, count)
        if vhost not in self.vhosts:
            raise connection_error(reply_codes.NOT_ALLOWED, f"vhost {vhost} not found")
        grant = self.grants.get((username, vhost))
        if grant is None or not grant.active:
            raise connection_error(reply_codes.NOT_ALLOWED, f"access to vhost '{vhost}' refused for user '{username}'")
        self.vhost_connections[vhost] += 1
        self.user_connections[username] += 1
        return grant

    def connection_closed(self, username: str, vhost: str) -> None:
        """A connection counted by ``open_vhost`` is gone."""
        _decrement(self.vhost_connections, vhost)
        _decrement(self.user_connections, username)

    def open_channel(self, username: str) -> None:
        """channel.open by ``username``: 530 NOT_ALLOWED (connection error)
        at the user's max-channels, else counted (``channel_closed``
        uncounts it)."""
        count = limit_rules.reached(self.user_limits.get(username, {}), limit_rules.MAX_CHANNELS,
                                    self.user_channels[username])
        if count is not None:
            raise limit_rules.user_channels_refused(username, count)
        self.user_channels[username] += 1

    def channel_closed(self, username: str, count: int = 1) -> None:
        """``count`` channels counted by ``open_channel`` are gone."""
        _decrement(self.user_channels, username, count)

    def check_queue_limit(self, vhost: str, queues: int, queue: str) -> None:
        """queue.declare of the new ``queue`` in ``vhost``, which holds
        ``queues`` queues: 406 PRECONDITION_FAILED (channel error) at its
        max-queues."""
        count = limit_rules.reached(self.vhost_limits.get(vhost, {}), limit_rules.MAX_QUEUES, queues)
        if count is not None:
            raise limit_rules.vhost_queues_refused(queue, vhost, count)

    # ---- writes (broker.admin) -------------------------------------------

    def put_user(self, user: User) -> None:
        """Add or replace ``user`` (its permissions and limits stay)."""
        if self.store is not None:
            self.store.save_user(user)
        self.users[user.name] = user

    def remove_user(self, name: str) -> None:
        """Delete the user with its permissions (revoked at once on open
        connections) and limits."""
        if self.store is not None:
            self.store.delete_user(name)
        self.users.pop(name, None)
        self.user_limits.pop(name, None)
        for key in [key for key in self.grants if key[0] == name]:
            self.grants.pop(key).revoke()

    def put_vhost(self, vhost: VirtualHost) -> None:
        if self.store is not None:
            self.store.save_vhost(vhost)
        self.vhosts[vhost.name] = vhost

    def remove_vhost(self, name: str) -> None:
        """Forget the vhost with its permissions and limits (the store also
        drops its exchanges, queues and bindings)."""
        if self.store is not None:
            self.store.delete_vhost(name)
        self.vhosts.pop(name, None)
        self.vhost_limits.pop(name, None)
        for key in [key for key in self.grants if key[1] == name]:
            self.grants.pop(key).revoke()

    def put_permission(self, user: str, vhost: str, configure: str, write: str, read: str) -> Grant:
        """Set the user's patterns in ``vhost`` (raises ValueError for an
        invalid regular expression, before anything is stored); open
        connections of the user there follow at once."""
        candidate = Grant(user, vhost, configure, write, read)
        if self.store is not None:
            self.store.save_permission(candidate)
        grant = self.grants.get((user, vhost))
        if grant is None:
            grant = self.grants[(user, vhost)] = candidate
        else:
            grant.set(configure, write, read)
        return grant

    def remove_permission(self, user: str, vhost: str) -> None:
        """Clear the user's permissions in ``vhost``: the Grant stays, revoked
        (open connections hold it: ``put_permission`` brings them back)."""
        if self.store is not None:
            self.store.delete_permission(user, vhost)
        grant = self.grants.get((user, vhost))
        if grant is not None:
            grant.revoke()

    def put_limits(self, kind: str, name: str, limits: dict) -> dict:
        """Set the limits of the vhost or user ``name`` (``kind`` "vhost" or
        "user"), replacing the previous ones; {} clears them. Raises
        ValueError for an unknown limit or a non-integer value. Returns the
        limits in force (negative values, meaning none, left out)."""
        checked = limit_rules.validated(kind, limits)
        if self.store is not None:
            self.store.save_limits(kind, name, checked)
        table = self.vhost_limits if kind == "vhost" else self.user_limits
        if checked:
            table[name] = checked
        else:
            table.pop(name, None)
        return checked


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _decrement(counter: Counter, key: str, count: int = 1) -> None:
    left = counter[key] - count
    if left > 0:
        counter[key] = left
    else:
        counter.pop(key, None)
