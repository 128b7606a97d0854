"""HTTP Basic authentication with the broker's users and RabbitMQ's tag
rules (rabbitmq.com/management.html#permissions): ``management`` (and
``policymaker``) users read the objects of the vhosts they have
permissions in, ``monitoring`` users read everything, ``administrator``
users may also change users, vhosts, permissions and definitions. A user
without any of these tags gets 401 "Not management user"; the topology
writes also need the user's permissions in the vhost (configure, write,
read), as RabbitMQ checks them."""

from __future__ import annotations

import base64
import binascii

from broker.management.http import ApiError, not_authorised
from broker.management.routing import ADMINISTRATOR, ANY, MONITORING

_MANAGEMENT_TAGS = {"management", "policymaker", "monitoring", "administrator"}
_LEVEL_TAGS = {ANY: _MANAGEMENT_TAGS, MONITORING: {"monitoring", "administrator"},
               ADMINISTRATOR: {"administrator"}}


def authenticate(access, header: str | None, address: str):
    """The broker.access.User of an ``Authorization: Basic ...`` header.
    Raises 401 not_authorised "Login failed" (no or bad credentials, or a
    loopback-only user from another address) as RabbitMQ does."""
    if not header or not header.lower().startswith("basic "):
        raise not_authorised("Login failed")
    try:
        username, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise not_authorised("Login failed") from None
    user, _reason = access.authenticate(username, password, address)
    if user is None:
        raise not_authorised("Login failed")
    return user


def authorise(user, need: str) -> None:
    """Raise 401 unless ``user``'s tags reach the level ``need`` (ANY,
    MONITORING, ADMINISTRATOR of routing.py)."""
    tags = set(user.tags)
    if not tags & _MANAGEMENT_TAGS:
        raise not_authorised("Not management user")
    if not tags & _LEVEL_TAGS[need]:
        raise not_authorised("Not administrator user" if need == ADMINISTRATOR else "Not monitor user")


def vhost_grant(call, vhost: str):
    """The caller's Grant in ``vhost`` (404 when the vhost does not exist,
    401 "User not authorised to access virtual host" without
    permissions there, as rabbit_mgmt_util:is_authorized_vhost)."""
    access = call.server.access
    if vhost not in access.vhosts or vhost not in call.server.vhosts:
        raise ApiError(404, "Object Not Found", "Not Found")
    grant = access.grants.get((call.user.name, vhost))
    if grant is None or not grant.active:
        if call.sees_all() and call.request.method in ("GET", "HEAD"):
            return None
        raise not_authorised("User not authorised to access virtual host")
    return grant


def check_vhost_read(call, vhost: str) -> None:
    """A GET of one vhost's objects: 404 missing vhost, 401 not visible."""
    vhost_grant(call, vhost)


def require(call, vhost: str, permission: str, kind: str, name: str) -> None:
    """The topology writes: ``permission`` ("configure", "write", "read")
    on the ``kind`` ("queue", "exchange") ``name`` in ``vhost``, else 401
    with RabbitMQ's AMQP refusal text."""
    grant = vhost_grant(call, vhost)
    target = "amq.default" if kind == "exchange" and name == "" else name
    if grant is None or not grant.allows(permission, target):
        raise not_authorised(f"access to {kind} '{target}' in vhost '{vhost}' refused for user "
                             f"'{call.user.name}'")
