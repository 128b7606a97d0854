"""The durable copy of access control: ``AccessStoreAdapter`` writes
broker.access values to the access tables of the topology database
(storage/access_tables.py); ``load_access`` builds the broker's
AccessControl from them at start, seeding a fresh data directory with the
default user, vhost and permissions (RabbitMQ's ``default_user``,
``default_pass``, ``default_vhost``: rabbitmq.com/access-control.html,
"Default Virtual Host and User")."""

from __future__ import annotations

import logging

from broker.access import AccessControl, Grant, User, VirtualHost
from broker.access.passwords import SHA256, hash_password
from broker.persistence.store import Store
from storage.access_tables import AccessTables, LimitsRow, PermissionRow, UserRow, VhostRow

log = logging.getLogger(__name__)

#: tags of the seeded default user, as RabbitMQ gives guest
DEFAULT_USER_TAGS = ("administrator",)


class AccessStoreAdapter:
    """broker.access.AccessStore on the access tables of an open topology
    database. Every method commits before it returns; raises sqlite3.Error."""

    def __init__(self, tables: AccessTables):
        self.tables = tables

    def save_user(self, user: User) -> None:
        self.tables.save_user(UserRow(user.name, user.password_hash, user.hashing_algorithm, user.tags))

    def delete_user(self, name: str) -> None:
        self.tables.delete_user(name)

    def save_vhost(self, vhost: VirtualHost) -> None:
        self.tables.save_vhost(VhostRow(vhost.name, vhost.description, vhost.tags))

    def delete_vhost(self, name: str) -> None:
        self.tables.delete_vhost(name)

    def save_permission(self, grant: Grant) -> None:
        self.tables.save_permission(PermissionRow(grant.user, grant.vhost, grant.configure, grant.write, grant.read))

    def delete_permission(self, user: str, vhost: str) -> None:
        self.tables.delete_permission(user, vhost)

    def save_limits(self, kind: str, name: str, limits: dict) -> None:
        self.tables.save_limits(LimitsRow(kind, name, limits))


def load_access(store: Store, known_vhosts: list[str], default_user: str, default_pass: str,
                default_vhost: str, loopback_users: tuple[str, ...]) -> AccessControl:
    """The AccessControl of the (opened: recovery has run) ``store``. A
    fresh data directory (the defaults were never written) first gets
    ``default_vhost``, ``default_user`` with ``default_pass`` (SHA-256 hash,
    tag administrator) and full permissions (".*" ".*" ".*") there.
    ``known_vhosts``: vhosts the topology names (recovered exchanges and
    queues); any the access tables lack is added (a data directory of a
    version without them). Raises sqlite3.Error."""
    tables = store.backend.topology.access
    access = AccessControl(AccessStoreAdapter(tables), loopback_users)
    state = tables.load()
    for row in state.users:
        access.users[row.name] = User(row.name, row.password_hash, row.hashing_algorithm, row.tags)
    for row in state.vhosts:
        access.vhosts[row.name] = VirtualHost(row.name, row.description, row.tags)
    for row in state.permissions:
        try:
            access.grants[(row.user, row.vhost)] = Grant(row.user, row.vhost, row.configure, row.write, row.read)
        except ValueError as exc:  # written by a Python with another re module: refuse, do not crash
            log.error("permissions of user '%s' in vhost '%s' not loaded: %s", row.user, row.vhost, exc)
    for row in state.limits:
        (access.vhost_limits if row.kind == "vhost" else access.user_limits)[row.name] = row.limits
    if not state.seeded:
        access.put_vhost(VirtualHost(default_vhost, "Default virtual host"))
        access.put_user(User(default_user, hash_password(default_pass), SHA256, DEFAULT_USER_TAGS))
        access.put_permission(default_user, default_vhost, ".*", ".*", ".*")
        tables.mark_seeded()
        log.info("fresh data directory: user '%s' (administrator) and vhost '%s' created", default_user,
                 default_vhost)
    for name in known_vhosts:
        if name not in access.vhosts:
            access.put_vhost(VirtualHost(name))
    log.info("access control: %d users, %d vhosts, %d permissions", len(access.users), len(access.vhosts),
             len(access.grants))
    return access
