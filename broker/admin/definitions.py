"""Export and import of a running broker's definitions in RabbitMQ's JSON
format (rabbitmq.com/docs/definitions; the records: definitions_records.py,
the JSON: definitions_format.py, the topology part: definitions_topology.py),
for ``leveret definitions
export|import`` and ``--definitions FILE`` (RabbitMQ's
``load_definitions``).

An import is checked whole before anything changes (JSON types, password
hashes, permission patterns, limits, references to users and vhosts,
exchange types, queue arguments), then applied in RabbitMQ's order: users,
vhosts, permissions, limits, exchanges, queues, bindings. Existing users
are replaced (hash, tags; their permissions stay), permissions are set,
existing exchanges and queues are left as they are. Every write goes
through the AdminService (durable, one audit line each).

Kept without effect: topic permissions, policies, parameters other than
``vhost-limits`` and global parameters. Leveret does not apply them yet; it
stores them (topology database) so that an export gives them back, logs how
many it kept, and forgets those of a deleted vhost or user
(``forget_vhost``, ``forget_user``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from broker.access import limits as limit_rules
from broker.access.passwords import check_password, validate_hash
from broker.access.permissions import compile_pattern
from broker.admin import definitions_topology as topology
from broker.admin.audit import Actor
from broker.admin.definitions_format import loads, parse, render
from broker.admin.definitions_records import (VHOST_LIMITS, Definitions, DefinitionsError, ParameterDef,
                                              PermissionDef, UserDef, VHostDef)
from broker.persistence.kept_definitions import KEPT_SECTIONS, kept_definitions

log = logging.getLogger(__name__)


def export_definitions(server) -> dict:
    """The definitions document of ``server`` (broker.app.server.Server:
    ``admin``, ``vhosts``): users with their hashes and limits, vhosts,
    permissions, each vhost's limits as a ``vhost-limits`` parameter (as
    RabbitMQ writes them), the kept policies, topic permissions and
    parameters of vhosts and users that still exist, exchanges, queues and
    bindings."""
    admin = server.admin
    user_limits = admin.list_user_limits()
    vhost_limits = admin.list_vhost_limits()
    exchanges, queues, bindings = topology.exported_topology(server.vhosts)
    kept = _kept(server)
    definitions = Definitions(
        users=[UserDef(u.name, u.password_hash, u.hashing_algorithm, tuple(u.tags), user_limits.get(u.name, {}))
               for u in admin.list_users()],
        vhosts=[VHostDef(v.name, v.description, tuple(v.tags), vhost_limits.get(v.name, {}))
                for v in admin.list_vhosts()],
        permissions=[PermissionDef(p.user, p.vhost, p.configure, p.write, p.read)
                     for p in admin.list_permissions()],
        topic_permissions=kept.topic_permissions, policies=kept.policies,
        parameters=[ParameterDef(name, VHOST_LIMITS, "limits", limits)
                    for name, limits in sorted(vhost_limits.items())] + kept.parameters,
        global_parameters=kept.global_parameters, exchanges=exchanges, queues=queues, bindings=bindings)
    return render(definitions)


def import_definitions(server, actor: Actor, document: object) -> str:
    """Apply the definitions ``document`` (decoded JSON) to ``server`` as
    ``actor``; returns a one-line summary. Raises DefinitionsError (nothing
    changed) for an invalid document; broker.admin.AdminError if a write
    fails midway (what was applied before stays)."""
    return apply_definitions(server, actor, parse(document))


def apply_definitions(server, actor: Actor, definitions: Definitions) -> str:
    """``import_definitions`` of parsed ``definitions``."""
    users = {u.name for u in definitions.users} | set(server.access.users)
    vhosts = {v.name for v in definitions.vhosts} | set(server.access.vhosts)
    _check_users(definitions.users)
    for i, vhost in enumerate(definitions.vhosts):
        if not vhost.name:
            raise DefinitionsError(f"vhosts[{i}]: vhost name must not be empty")
    _check_permissions(definitions.permissions, users, vhosts)
    vhost_limits = _vhost_limits(definitions, vhosts)
    kept = _check_kept(definitions, users, vhosts)
    plan = topology.plan(definitions.exchanges, definitions.queues, definitions.bindings, vhosts.__contains__)

    admin = server.admin
    for user in definitions.users:
        password, password_hash, algorithm = _credentials(server.access.users.get(user.name), user)
        admin.add_user(actor, user.name, password, tags=user.tags, password_hash=password_hash,
                       hashing_algorithm=algorithm, replace=True)
        if user.limits:
            admin.set_user_limits(actor, user.name, dict(user.limits))
    for vhost in definitions.vhosts:
        admin.add_vhost(actor, vhost.name, vhost.description, vhost.tags)
    for name, limits in vhost_limits.items():
        admin.set_vhost_limits(actor, name, limits)
    for p in definitions.permissions:
        admin.set_permissions(actor, p.user, p.vhost, p.configure, p.write, p.read)
    _keep(server, kept)
    skipped = topology.apply(plan, server.vhosts)
    summary = definitions.counts() + (f"; {skipped} topology records skipped (see the log)" if skipped else "")
    log.info("definitions imported by %s: %s", actor, summary)
    return summary


def load_definitions_file(server, path: Path) -> str:
    """``--definitions FILE`` at start (RabbitMQ's ``load_definitions``):
    import ``path`` as the broker itself. Raises DefinitionsError (also for
    a file that cannot be read) so that the start fails, as RabbitMQ's boot
    does."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionsError(f"cannot read {path}: {exc}") from None
    try:
        return apply_definitions(server, Actor("leveret", f"--definitions {path}"), loads(text))
    except DefinitionsError as exc:
        raise DefinitionsError(f"{path}: {exc}") from None


def _credentials(existing, user: UserDef) -> tuple[str | None, str | None, str]:
    """(password, password_hash, algorithm) for AdminService.add_user. A
    clear-text password that the existing user already has keeps its hash:
    loading the same file at every start (``--definitions``) changes
    nothing."""
    if user.password is None:
        return None, user.password_hash, user.hashing_algorithm
    if existing is not None and check_password(existing.password_hash, existing.hashing_algorithm, user.password):
        return None, existing.password_hash, existing.hashing_algorithm
    return user.password, None, user.hashing_algorithm


# ---- checks before anything changes -------------------------------------------

def _check_users(users: list[UserDef]) -> None:
    for i, user in enumerate(users):
        where = f"users[{i}] ('{user.name}')"
        if not user.name:
            raise DefinitionsError(f"users[{i}]: user name must not be empty")
        try:
            if user.password is None:
                validate_hash(user.password_hash, user.hashing_algorithm)
            limit_rules.validated("user", dict(user.limits))
        except ValueError as exc:
            raise DefinitionsError(f"{where}: {exc}") from None


def _check_permissions(permissions: list[PermissionDef], users: set[str], vhosts: set[str]) -> None:
    for i, p in enumerate(permissions):
        where = f"permissions[{i}] (user '{p.user}' vhost '{p.vhost}')"
        if p.user not in users:
            raise DefinitionsError(f"{where}: no user '{p.user}'")
        if p.vhost not in vhosts:
            raise DefinitionsError(f"{where}: no vhost '{p.vhost}'")
        try:
            for pattern in (p.configure, p.write, p.read):
                compile_pattern(pattern)
        except ValueError as exc:
            raise DefinitionsError(f"{where}: {exc}") from None


def _vhost_limits(definitions: Definitions, vhosts: set[str]) -> dict[str, dict]:
    """vhost -> limits to set: a vhost record's ``limits`` (RabbitMQ 3.10
    writes them there too), overridden by its ``vhost-limits`` parameter.
    Raises DefinitionsError for an unknown vhost, limit or a bad value."""
    result: dict[str, dict] = {v.name: dict(v.limits) for v in definitions.vhosts if v.limits}
    for i, parameter in enumerate(definitions.parameters):
        if parameter.component != VHOST_LIMITS:
            continue
        if parameter.vhost not in vhosts:
            raise DefinitionsError(f"parameters[{i}]: no vhost '{parameter.vhost}'")
        if not isinstance(parameter.value, dict):
            raise DefinitionsError(f"parameters[{i}]: vhost-limits value must be an object")
        result[parameter.vhost] = dict(parameter.value)
    for name, limits in result.items():
        try:
            limit_rules.validated("vhost", limits)
        except ValueError as exc:
            raise DefinitionsError(f"vhost '{name}': {exc}") from None
    return result


def _check_kept(definitions: Definitions, users: set[str], vhosts: set[str]) -> Definitions:
    """The records to keep without effect (topic permissions, policies,
    parameters other than vhost limits, global parameters), checked as
    RabbitMQ checks them: their vhost and user exist, their patterns are
    regular expressions. Raises DefinitionsError naming the record."""
    parameters = [p for p in definitions.parameters if p.component != VHOST_LIMITS]
    for section, records in (("topic_permissions", definitions.topic_permissions),
                             ("policies", definitions.policies), ("parameters", parameters)):
        for i, record in enumerate(records):
            where = f"{section}[{i}]"
            if record.vhost not in vhosts:
                raise DefinitionsError(f"{where}: no vhost '{record.vhost}'")
            if section == "topic_permissions" and record.user not in users:
                raise DefinitionsError(f"{where}: no user '{record.user}'")
            try:
                for pattern in ((record.write, record.read) if section == "topic_permissions"
                                else (record.pattern,) if section == "policies" else ()):
                    compile_pattern(pattern)
            except ValueError as exc:
                raise DefinitionsError(f"{where}: {exc}") from None
    return Definitions(topic_permissions=definitions.topic_permissions, policies=definitions.policies,
                       parameters=parameters, global_parameters=definitions.global_parameters)


def _keep(server, kept: Definitions) -> None:
    """Store the kept records (replacing those with the same identity) and
    say in the log that they have no effect."""
    document = render(kept)
    table = kept_definitions(server.storage)
    for section in KEPT_SECTIONS:
        if document[section]:
            table.save(section, document[section])
            log.warning("definitions: %d %s kept but not applied: Leveret does not support them yet",
                        len(document[section]), section.replace("_", " "))


def _kept(server) -> Definitions:
    """The kept records whose vhost (and user) still exist."""
    stored = parse(kept_definitions(server.storage).load())
    vhosts, users = server.access.vhosts, server.access.users
    stored.topic_permissions = [p for p in stored.topic_permissions if p.vhost in vhosts and p.user in users]
    stored.policies = [p for p in stored.policies if p.vhost in vhosts]
    stored.parameters = [p for p in stored.parameters if p.vhost in vhosts]
    return stored


def forget_vhost(server, name: str) -> None:
    """A vhost was deleted: its kept policies, topic permissions and
    parameters go too (RabbitMQ deletes them with the vhost)."""
    count = kept_definitions(server.storage).forget_vhost(name)
    if count:
        log.info("definitions: %d kept records of vhost '%s' deleted with it", count, name)


def forget_user(server, name: str) -> None:
    """A user was deleted: its kept topic permissions go too."""
    count = kept_definitions(server.storage).forget_user(name)
    if count:
        log.info("definitions: %d kept topic permissions of user '%s' deleted with it", count, name)
