"""The records of a definitions document (RabbitMQ's JSON format,
rabbitmq.com/docs/definitions): one frozen dataclass per kind of entry,
and ``Definitions``, everything one document holds. Reading and writing
the JSON: definitions_format.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

#: the hashing algorithm of users whose record names none (RabbitMQ's default)
DEFAULT_HASHING = "rabbit_password_hashing_sha256"
#: what ``rabbit_version`` says in a document Leveret writes: the RabbitMQ
#: version whose format it follows (importers compare it for compatibility)
FORMAT_VERSION = "3.10.8"
#: the parameter component that carries a vhost's limits
VHOST_LIMITS = "vhost-limits"
DESTINATION_TYPES = ("queue", "exchange")
POLICY_TARGETS = ("queues", "exchanges", "all", "classic_queues", "quorum_queues", "streams")


#: the lists of a document, in the order RabbitMQ imports them
SECTIONS = ("users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters", "policies",
            "queues", "exchanges", "bindings")


class DefinitionsError(ValueError):
    """A document that is not a valid definitions file; the text names the
    record (``queues[3]``) and the problem."""


@dataclasses.dataclass(frozen=True)
class UserDef:
    """A user. ``password_hash`` is base64 text in ``hashing_algorithm``'s
    format (rabbit_password_hashing_sha256: salt + sha256(salt + password));
    ``password`` is a clear-text password to hash on import (RabbitMQ
    accepts either; export never writes it). ``limits``: max-connections,
    max-channels."""
    name: str
    password_hash: str = ""
    hashing_algorithm: str = DEFAULT_HASHING
    tags: tuple[str, ...] = ()
    limits: Mapping[str, int] = dataclasses.field(default_factory=dict)
    password: str | None = None


@dataclasses.dataclass(frozen=True)
class VHostDef:
    """A virtual host: ``description``, ``tags`` (metadata) and ``limits``
    (max-connections, max-queues; RabbitMQ also carries them as a
    ``vhost-limits`` parameter)."""
    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    limits: Mapping[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class PermissionDef:
    """configure / write / read regular expressions of ``user`` in ``vhost``
    (rabbitmq.com/docs/access-control)."""
    user: str
    vhost: str
    configure: str
    write: str
    read: str


@dataclasses.dataclass(frozen=True)
class TopicPermissionDef:
    """write / read routing-key patterns of ``user`` on topic ``exchange``."""
    user: str
    vhost: str
    exchange: str
    write: str
    read: str


@dataclasses.dataclass(frozen=True)
class ParameterDef:
    """A per-vhost runtime parameter (``component``: vhost-limits,
    federation-upstream, shovel...); ``value`` is kept verbatim."""
    vhost: str
    component: str
    name: str
    value: Any


@dataclasses.dataclass(frozen=True)
class GlobalParameterDef:
    """A cluster-wide runtime parameter; ``value`` kept verbatim."""
    name: str
    value: Any


@dataclasses.dataclass(frozen=True)
class PolicyDef:
    """A policy (rabbitmq.com/docs/parameters#policies): queues or exchanges
    whose names match ``pattern`` get ``definition``'s keys."""
    vhost: str
    name: str
    pattern: str
    apply_to: str = "all"
    definition: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class ExchangeDef:
    vhost: str
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool = False
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class QueueDef:
    """A queue; its type is ``arguments['x-queue-type']`` (classic when
    absent), which RabbitMQ also writes as the ``type`` key."""
    vhost: str
    name: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def type(self) -> str:
        return str(self.arguments.get("x-queue-type", "classic"))


@dataclasses.dataclass(frozen=True)
class BindingDef:
    """A binding from exchange ``source`` to ``destination`` (a queue or,
    for an e2e binding, an exchange: ``destination_type``)."""
    vhost: str
    source: str
    destination: str
    destination_type: str
    routing_key: str
    arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Definitions:
    """Everything one document holds, in document order."""
    users: list[UserDef] = dataclasses.field(default_factory=list)
    vhosts: list[VHostDef] = dataclasses.field(default_factory=list)
    permissions: list[PermissionDef] = dataclasses.field(default_factory=list)
    topic_permissions: list[TopicPermissionDef] = dataclasses.field(default_factory=list)
    parameters: list[ParameterDef] = dataclasses.field(default_factory=list)
    global_parameters: list[GlobalParameterDef] = dataclasses.field(default_factory=list)
    policies: list[PolicyDef] = dataclasses.field(default_factory=list)
    queues: list[QueueDef] = dataclasses.field(default_factory=list)
    exchanges: list[ExchangeDef] = dataclasses.field(default_factory=list)
    bindings: list[BindingDef] = dataclasses.field(default_factory=list)
    rabbit_version: str = FORMAT_VERSION

    def counts(self) -> str:
        """``"2 users, 1 vhosts, ..."``: a one-line summary for logs."""
        return ", ".join(f"{len(getattr(self, key))} {key}" for key in SECTIONS)
