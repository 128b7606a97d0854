"""Who asked for an admin change, and the audit line every change writes
(logger ``broker.admin.audit``, one line per change, passwords never)."""

from __future__ import annotations

import dataclasses
import logging

audit_log = logging.getLogger("broker.admin.audit")


@dataclasses.dataclass(frozen=True)
class Actor:
    """The caller of an admin method: ``user`` (a broker user name, or the
    OS user of the control socket) and ``address`` (the client address
    ``host:port``, or e.g. "control socket")."""
    user: str
    address: str

    def __str__(self) -> str:
        return f"'{self.user}' from {self.address}"


def audit(actor: Actor, action: str, detail: str) -> None:
    """One audit line: ``admin: 'alice' from 127.0.0.1:50000: add_user 'bob' (tags: administrator)``."""
    audit_log.info("admin: %s: %s %s", actor, action, detail)
