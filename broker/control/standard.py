"""The broker's set of control commands: ``standard_registry()`` calls
every command module's ``register(registry)``. A package that adds
commands lists its ``register`` in ``REGISTERS``."""

from __future__ import annotations

from broker.control import admin_commands, queue_commands
from broker.control.registry import Registry

REGISTERS = (queue_commands.register, admin_commands.register)


def standard_registry() -> Registry:
    """A Registry with ``commands.list`` and every command of ``REGISTERS``."""
    registry = Registry()
    for register in REGISTERS:
        register(registry)
    return registry
