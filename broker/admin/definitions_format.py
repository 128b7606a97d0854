"""RabbitMQ's definitions format (rabbitmq.com/docs/definitions): the JSON
document ``rabbitmqctl export_definitions`` writes and ``import_definitions``
reads, parsed into plain records and rendered back.

Pure: no broker state, no I/O. A document is a JSON object with the lists
``users``, ``vhosts``, ``permissions``, ``topic_permissions``,
``parameters``, ``global_parameters``, ``policies``, ``queues``,
``exchanges`` and ``bindings`` (each optional on input), plus the versions
``rabbit_version`` / ``rabbitmq_version``. The keys each record must have are
the ones RabbitMQ 3.10's import needs (a record without one fails the whole
import there too); optional keys get RabbitMQ's defaults.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
from collections.abc import Callable
from typing import Any

from broker.admin.definitions_records import (DEFAULT_HASHING, DESTINATION_TYPES,
                                              POLICY_TARGETS, SECTIONS, BindingDef, Definitions, DefinitionsError,
                                              ExchangeDef, GlobalParameterDef, ParameterDef, PermissionDef,
                                              PolicyDef, QueueDef, TopicPermissionDef, UserDef, VHostDef)


# ---- reading -----------------------------------------------------------------

class _Record:
    """One JSON object of a section, with typed accessors that raise
    DefinitionsError naming ``where`` (``queues[3]``)."""

    def __init__(self, where: str, raw: Any):
        if not isinstance(raw, dict):
            raise DefinitionsError(f"{where}: expected an object, got {_json_type(raw)}")
        self.where = where
        self.raw = raw

    def _get(self, key: str, default: Any, kinds: tuple[type, ...], what: str) -> Any:
        if key not in self.raw:
            if default is _REQUIRED:
                raise DefinitionsError(f"{self.where}: missing key '{key}'")
            return default
        value = self.raw[key]
        if not isinstance(value, kinds) or (int in kinds and isinstance(value, bool)):
            raise DefinitionsError(f"{self.where}: '{key}' must be {what}, got {_json_type(value)}")
        return value

    def text(self, key: str, default: Any = None) -> str:
        return self._get(key, _REQUIRED if default is None else default, (str,), "a string")

    def flag(self, key: str, default: Any = None) -> bool:
        return self._get(key, _REQUIRED if default is None else default, (bool,), "true or false")

    def integer(self, key: str, default: int | None = None) -> int:
        return self._get(key, _REQUIRED if default is None else default, (int,), "an integer")

    def table(self, key: str, default: Any = None) -> dict:
        return self._get(key, _REQUIRED if default is None else default, (dict,), "an object")

    def any(self, key: str) -> Any:
        return self._get(key, _REQUIRED, (object,), "a value")


_REQUIRED = object()


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _tags(record: _Record, key: str) -> tuple[str, ...]:
    """Tags as a list (RabbitMQ 3.9+) or comma-separated text (older files)."""
    value = record.raw.get(key, [])
    if isinstance(value, str):
        return tuple(tag.strip() for tag in value.split(",") if tag.strip())
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return tuple(value)
    raise DefinitionsError(f"{record.where}: '{key}' must be a list of strings or a comma-separated string")


def _limits(record: _Record, value: Any) -> dict[str, int]:
    """Limits as an object or, as RabbitMQ 3.10 writes a vhost's, a list of
    ``[name, value]`` pairs."""
    if isinstance(value, list) and all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        value = {name: number for name, number in value}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                              for k, v in value.items()):
        raise DefinitionsError(f"{record.where}: 'limits' must map limit names to integers")
    return dict(value)


def _user(r: _Record) -> UserDef:
    password = r.raw.get("password")
    if password is not None and not isinstance(password, str):
        raise DefinitionsError(f"{r.where}: 'password' must be a string")
    return UserDef(name=r.text("name"), password_hash=r.text("password_hash", "" if password is not None else None),
                   hashing_algorithm=r.text("hashing_algorithm", DEFAULT_HASHING), tags=_tags(r, "tags"),
                   limits=_limits(r, r.raw.get("limits", {})), password=password)


def _vhost(r: _Record) -> VHostDef:
    metadata = r.table("metadata", {})
    meta = _Record(r.where + ".metadata", metadata)
    description = r.raw.get("description", metadata.get("description", ""))
    if not isinstance(description, str):
        raise DefinitionsError(f"{r.where}: 'description' must be a string")
    tags = _tags(r, "tags") if "tags" in r.raw else _tags(meta, "tags")
    return VHostDef(name=r.text("name"), description=description, tags=tags,
                    limits=_limits(r, r.raw.get("limits", {})))


def _permission(r: _Record) -> PermissionDef:
    return PermissionDef(user=r.text("user"), vhost=r.text("vhost"), configure=r.text("configure"),
                         write=r.text("write"), read=r.text("read"))


def _topic_permission(r: _Record) -> TopicPermissionDef:
    return TopicPermissionDef(user=r.text("user"), vhost=r.text("vhost"), exchange=r.text("exchange"),
                              write=r.text("write"), read=r.text("read"))


def _parameter(r: _Record) -> ParameterDef:
    return ParameterDef(vhost=r.text("vhost"), component=r.text("component"), name=r.text("name"),
                        value=r.any("value"))


def _global_parameter(r: _Record) -> GlobalParameterDef:
    return GlobalParameterDef(name=r.text("name"), value=r.any("value"))


def _policy(r: _Record) -> PolicyDef:
    apply_to = r.text("apply-to", "all")
    if apply_to not in POLICY_TARGETS:
        raise DefinitionsError(f"{r.where}: 'apply-to' must be one of {', '.join(POLICY_TARGETS)}")
    return PolicyDef(vhost=r.text("vhost"), name=r.text("name"), pattern=r.text("pattern"), apply_to=apply_to,
                     definition=r.table("definition"), priority=r.integer("priority", 0))


def _exchange(r: _Record) -> ExchangeDef:
    return ExchangeDef(vhost=r.text("vhost"), name=r.text("name"), type=r.text("type"), durable=r.flag("durable"),
                       auto_delete=r.flag("auto_delete"), internal=r.flag("internal", False),
                       arguments=r.table("arguments"))


def _queue(r: _Record) -> QueueDef:
    name, vhost, durable, auto_delete = r.text("name"), r.text("vhost"), r.flag("durable"), r.flag("auto_delete")
    arguments = r.table("arguments")
    kind = r.text("type", "")
    if kind and "x-queue-type" not in arguments and kind != "classic":
        arguments = {**arguments, "x-queue-type": kind}  # newer exports give the type only as a key
    return QueueDef(vhost=vhost, name=name, durable=durable, auto_delete=auto_delete, arguments=arguments)


def _binding(r: _Record) -> BindingDef:
    kind = r.text("destination_type")
    if kind not in DESTINATION_TYPES:
        raise DefinitionsError(f"{r.where}: 'destination_type' must be 'queue' or 'exchange', got '{kind}'")
    return BindingDef(vhost=r.text("vhost"), source=r.text("source"), destination=r.text("destination"),
                      destination_type=kind, routing_key=r.text("routing_key"), arguments=r.table("arguments"))


#: section name -> the reader of one of its records
_READERS: dict[str, Callable[[_Record], Any]] = {
    "users": _user, "vhosts": _vhost, "permissions": _permission, "topic_permissions": _topic_permission,
    "parameters": _parameter, "global_parameters": _global_parameter, "policies": _policy, "queues": _queue,
    "exchanges": _exchange, "bindings": _binding,
}


def parse(document: Any) -> Definitions:
    """The records of a decoded JSON ``document``. Unknown top-level keys
    are ignored (as RabbitMQ does); raises DefinitionsError for a document
    that is not an object, a section that is not a list, a record without a
    required key or with a value of the wrong JSON type."""
    if not isinstance(document, dict):
        raise DefinitionsError(f"a definitions document is a JSON object, got {_json_type(document)}")
    result = Definitions()
    version = document.get("rabbit_version", document.get("rabbitmq_version"))
    if isinstance(version, str):
        result.rabbit_version = version
    for key in SECTIONS:
        section = document.get(key, [])
        if section is None:
            continue
        if not isinstance(section, list):
            raise DefinitionsError(f"'{key}' must be a list, got {_json_type(section)}")
        getattr(result, key).extend(_READERS[key](_Record(f"{key}[{i}]", raw)) for i, raw in enumerate(section))
    return result


def loads(text: str | bytes) -> Definitions:
    """``parse`` of JSON ``text``; DefinitionsError for text that is not JSON."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise DefinitionsError(f"not a JSON document: {exc}") from None
    return parse(document)


# ---- writing -----------------------------------------------------------------

def json_value(value: Any) -> Any:
    """An AMQP field value (as pamqp decodes it) as JSON, the way RabbitMQ
    exports arguments: a long string that is not UTF-8 decoded with U+FFFD,
    a timestamp as Unix seconds, a decimal as a number; tables and arrays
    element by element."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    if isinstance(value, datetime.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        return int(stamp.timestamp())
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def render(definitions: Definitions) -> dict:
    """The JSON document of ``definitions`` with RabbitMQ 3.10's keys (an
    exchange's ``internal`` is written only when true, a key RabbitMQ's
    import reads). Arguments go through ``json_value``."""
    d = definitions
    return {
        "rabbit_version": d.rabbit_version,
        "rabbitmq_version": d.rabbit_version,
        "users": [{"name": u.name, "password_hash": u.password_hash, "hashing_algorithm": u.hashing_algorithm,
                   "tags": list(u.tags), "limits": dict(u.limits)} for u in d.users],
        "vhosts": [{"name": v.name, "limits": [[k, n] for k, n in v.limits.items()],
                    "metadata": {"description": v.description, "tags": list(v.tags)}} for v in d.vhosts],
        "permissions": [dataclasses.asdict(p) for p in d.permissions],
        "topic_permissions": [dataclasses.asdict(p) for p in d.topic_permissions],
        "parameters": [{"vhost": p.vhost, "component": p.component, "name": p.name, "value": p.value}
                       for p in d.parameters],
        "global_parameters": [{"name": p.name, "value": p.value} for p in d.global_parameters],
        "policies": [{"vhost": p.vhost, "name": p.name, "pattern": p.pattern, "apply-to": p.apply_to,
                      "definition": dict(p.definition), "priority": p.priority} for p in d.policies],
        "queues": [{"name": q.name, "vhost": q.vhost, "durable": q.durable, "auto_delete": q.auto_delete,
                    "arguments": json_value(dict(q.arguments)), "type": q.type} for q in d.queues],
        "exchanges": [{"name": x.name, "vhost": x.vhost, "type": x.type, "durable": x.durable,
                       "auto_delete": x.auto_delete, **({"internal": True} if x.internal else {}),
                       "arguments": json_value(dict(x.arguments))} for x in d.exchanges],
        "bindings": [{"source": b.source, "vhost": b.vhost, "destination": b.destination,
                      "destination_type": b.destination_type, "routing_key": b.routing_key,
                      "arguments": json_value(dict(b.arguments))} for b in d.bindings],
    }


def dumps(definitions: Definitions) -> str:
    """``render`` as indented JSON text, ending with a newline."""
    return json.dumps(render(definitions), indent=2, ensure_ascii=False) + "\n"
