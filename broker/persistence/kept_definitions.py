"""The durable home of the definitions Leveret keeps without applying them
yet (policies, topic permissions, runtime parameters, global parameters:
storage/kept_definitions.py), for broker.admin.definitions."""

from __future__ import annotations

from broker.persistence.store import Store
from storage.kept_definitions import KEY_FIELDS, KeptDefinitions

#: the definitions sections kept this way
KEPT_SECTIONS = tuple(KEY_FIELDS)


def kept_definitions(store: Store) -> KeptDefinitions:
    """The kept-definitions table of ``store``'s topology database (open:
    recovery has run). Its methods commit before they return and raise
    sqlite3.Error."""
    return store.backend.topology.kept
