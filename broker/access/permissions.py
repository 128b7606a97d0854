"""One user's permissions in one vhost: configure, write and read regular
expressions matched against resource names (rabbitmq.com/access-control.html,
"How Permissions Work"). As RabbitMQ: a regular expression matches anywhere
in the name (Erlang ``re:run``, Python ``re.search``), "" matches nothing,
and the default exchange is named ``amq.default``.

Which operation needs what (RabbitMQ 3.10's rabbit_channel) is decided by
the session's method handlers; ``Grant`` makes the check and raises the
error, in one place (``Grant.check``)."""

from __future__ import annotations

import re

from protocol import reply_codes
from protocol.errors import AMQPError, channel_error

#: the name the default exchange ("") has for permissions and their errors
DEFAULT_EXCHANGE = "amq.default"


def compile_pattern(pattern: str) -> re.Pattern | None:
    """The compiled permission regex; None for "" (matches nothing).
    Raises ValueError for an invalid expression."""
    if pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression '{pattern}': {exc}") from None


class Grant:
    """The permissions of ``user`` in ``vhost`` (all three patterns as
    given, ``configure``, ``write``, ``read``). ``active`` is False once
    they were cleared: every check is then refused. Connections and channels
    hold the Grant object itself, so a change (``set``, ``revoke``) applies
    to them at once.

    ``writable``: exchange names (as published, "" for the default
    exchange) a write check has already allowed: basic.publish's hot path
    checks membership before anything else (docs/architecture.md, "One
    publish"). Cleared on every change."""

    __slots__ = ("user", "vhost", "configure", "write", "read", "active", "writable", "_patterns")

    def __init__(self, user: str, vhost: str, configure: str, write: str, read: str):
        self.user = user
        self.vhost = vhost
        self.writable: set[str] = set()
        self.set(configure, write, read)

    def set(self, configure: str, write: str, read: str) -> None:
        """Replace the three patterns (raises ValueError for an invalid one,
        leaving the grant as it was) and make the grant active."""
        patterns = {"configure": compile_pattern(configure), "write": compile_pattern(write),
                    "read": compile_pattern(read)}
        self.configure, self.write, self.read = configure, write, read
        self._patterns = patterns
        self.active = True
        self.writable.clear()

    def revoke(self) -> None:
        """Permissions cleared (or the user deleted): refuse everything."""
        self.active = False
        self.writable.clear()

    def allows(self, permission: str, name: str) -> bool:
        """True when ``permission`` ("configure", "write", "read") on the
        resource ``name`` is granted."""
        pattern = self._patterns[permission] if self.active else None
        return pattern is not None and pattern.search(name) is not None

    def check(self, permission: str, kind: str, name: str) -> None:
        """Raise 403 ACCESS_REFUSED (channel error) "access to <kind> '<name>'
        in vhost '<vhost>' refused for user '<user>'" (RabbitMQ 3.10's text)
        unless ``permission`` on the ``kind`` ("queue" or "exchange")
        ``name`` is granted. The default exchange is ``amq.default``."""
        if kind == "exchange" and name == "":
            name = DEFAULT_EXCHANGE
        if not self.allows(permission, name):
            raise self._refused(kind, name)

    def check_publish(self, exchange: str) -> None:
        """basic.publish needs write on the exchange (403 as ``check``);
        remembered in ``writable`` once allowed."""
        self.check("write", "exchange", exchange)
        self.writable.add(exchange)

    def _refused(self, kind: str, name: str) -> AMQPError:
        return channel_error(reply_codes.ACCESS_REFUSED,
                             f"access to {kind} '{name}' in vhost '{self.vhost}' refused for user '{self.user}'")
