"""Exchanges, queues and bindings as definitions records: what an export
lists, and how an import declares them, with the rules of RabbitMQ's
``rabbit_definitions`` (rabbitmq.com/docs/definitions):

- an export lists the durable exchanges a client declared (not the default
  exchange, not ``amq.*``), every queue that is not exclusive, and every
  binding except the default exchange's implicit ones;
- an import declares what does not exist yet and leaves an existing
  exchange or queue as it is; ``amq.*`` exchanges are skipped with a log
  line; a binding whose source or destination is missing is skipped with a
  log line (RabbitMQ exports bindings of internal exchanges without the
  exchanges themselves).

Checking (``plan``) happens before anything is declared, so a bad record
fails the import with nothing changed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping

from broker.admin.definitions_records import BindingDef, DefinitionsError, ExchangeDef, QueueDef
from broker.exchanges import EXCHANGE_TYPES, Exchange
from broker.queues import arguments as queue_arguments
from broker.queues.queue import Queue
from broker.vhost.namespace import STANDARD_EXCHANGES, VHost
from protocol.errors import AMQPError

log = logging.getLogger(__name__)

_STANDARD = frozenset(name for name, _cls in STANDARD_EXCHANGES)


def exported_topology(vhosts: Mapping[str, VHost]) -> tuple[list[ExchangeDef], list[QueueDef], list[BindingDef]]:
    """The exchanges, queues and bindings of ``vhosts`` as an export lists
    them, sorted by vhost and name. Internal exchanges are listed with
    ``internal`` true (RabbitMQ 3.10 leaves them out but imports the key)."""
    exchanges: list[ExchangeDef] = []
    queues: list[QueueDef] = []
    bindings: list[BindingDef] = []
    for vhost_name in sorted(vhosts):
        vhost = vhosts[vhost_name]
        for name in sorted(vhost.exchanges):
            exchange = vhost.exchanges[name]
            if exchange.durable and name not in _STANDARD and not name.startswith("amq."):
                exchanges.append(ExchangeDef(vhost_name, name, exchange.type_name, True, exchange.auto_delete,
                                             exchange.internal, dict(exchange.arguments)))
        for name in sorted(vhost.queues):
            queue = vhost.queues[name]
            if queue.exclusive_owner is None:
                queues.append(QueueDef(vhost_name, name, queue.durable, queue.auto_delete, dict(queue.arguments)))
        for source_name in sorted(vhost.exchanges):
            if source_name == "":
                continue
            for destination, key, arguments in vhost.exchanges[source_name].bindings():
                if isinstance(destination, Exchange):
                    kind = "exchange"
                elif destination.exclusive_owner is None:
                    kind = "queue"
                else:
                    continue
                bindings.append(BindingDef(vhost_name, source_name, destination.name, kind, key,
                                           dict(arguments or {})))
    return exchanges, queues, bindings


@dataclasses.dataclass
class TopologyPlan:
    """What an import will declare: exchange records with their class,
    queue records, binding records (checked, not yet applied)."""
    exchanges: list[tuple[ExchangeDef, type[Exchange]]]
    queues: list[QueueDef]
    bindings: list[BindingDef]


def plan(exchanges: list[ExchangeDef], queues: list[QueueDef], bindings: list[BindingDef],
         vhost_known: Callable[[str], bool]) -> TopologyPlan:
    """Check the topology records of an import. ``vhost_known(name)``: the
    vhost exists or the same import creates it.

    Raises DefinitionsError naming the record for: an unknown vhost, an
    unknown exchange type (503 COMMAND_INVALID in exchange.declare), exchange
    arguments its type refuses and invalid queue arguments (406
    PRECONDITION_FAILED in the declare, with the same text), an empty
    queue name."""
    checked: list[tuple[ExchangeDef, type[Exchange]]] = []
    for i, record in enumerate(exchanges):
        where = f"exchanges[{i}] ('{record.name}' in vhost '{record.vhost}')"
        _check_vhost(where, record.vhost, vhost_known)
        cls = EXCHANGE_TYPES.get(record.type)
        if cls is None:
            raise DefinitionsError(f"{where}: invalid exchange type '{record.type}'")
        try:
            cls(record.name, record.durable, record.auto_delete, record.internal, dict(record.arguments))
        except AMQPError as exc:
            raise DefinitionsError(f"{where}: {exc.text}") from None
        checked.append((record, cls))
    for i, record in enumerate(queues):
        where = f"queues[{i}] ('{record.name}' in vhost '{record.vhost}')"
        _check_vhost(where, record.vhost, vhost_known)
        if not record.name:
            raise DefinitionsError(f"queues[{i}]: queue name must not be empty")
        try:
            queue_arguments.validate(record.name, record.vhost, dict(record.arguments))
        except AMQPError as exc:
            raise DefinitionsError(f"{where}: {exc.text}") from None
    for i, record in enumerate(bindings):
        _check_vhost(f"bindings[{i}]", record.vhost, vhost_known)
    return TopologyPlan(checked, list(queues), list(bindings))


def _check_vhost(where: str, name: str, vhost_known: Callable[[str], bool]) -> None:
    if not vhost_known(name):
        raise DefinitionsError(f"{where}: no vhost '{name}'")


def apply(topology: TopologyPlan, vhosts: Mapping[str, VHost]) -> int:
    """Declare what ``topology`` lists in ``vhosts`` (every vhost it names
    exists by now): exchanges, then queues, then bindings, each stored when
    durable as if a client had declared it. Returns how many records were
    skipped (each logged)."""
    skipped = 0
    for record, cls in topology.exchanges:
        vhost = vhosts[record.vhost]
        if record.name in _STANDARD or record.name.startswith("amq."):
            log.warning("definitions: vhost '%s' exchange '%s' skipped: the default exchange and names beginning "
                        "with 'amq.' are reserved", record.vhost, record.name)
            skipped += 1
        elif record.name in vhost.exchanges:
            log.info("definitions: vhost '%s' exchange '%s' exists, left as it is", record.vhost, record.name)
        else:
            vhost.add_exchange(cls(record.name, record.durable, record.auto_delete, record.internal,
                                   dict(record.arguments)))
            log.info("definitions: vhost '%s' exchange '%s' (%s) declared", record.vhost, record.name, record.type)
    for record in topology.queues:
        vhost = vhosts[record.vhost]
        if record.name in vhost.queues:
            log.info("definitions: vhost '%s' queue '%s' exists, left as it is", record.vhost, record.name)
            continue
        vhost.add_queue(Queue(vhost, record.name, record.durable, None, record.auto_delete, dict(record.arguments)))
        log.info("definitions: vhost '%s' queue '%s' declared (durable=%s auto_delete=%s)", record.vhost,
                 record.name, record.durable, record.auto_delete)
    for record in topology.bindings:
        skipped += not _bind(record, vhosts[record.vhost])
    return skipped


def _bind(record: BindingDef, vhost: VHost) -> bool:
    """Add one binding; False (logged) when an end is missing, the source is
    the default exchange or the arguments are refused."""
    source = vhost.exchanges.get(record.source) if record.source else None
    ends = vhost.queues if record.destination_type == "queue" else vhost.exchanges
    destination = ends.get(record.destination)
    what = (f"definitions: vhost '{record.vhost}' binding '{record.source}' -> {record.destination_type} "
            f"'{record.destination}' (routing key '{record.routing_key}')")
    if source is None or destination is None:
        log.warning("%s skipped: %s missing", what, "source" if source is None else "destination")
        return False
    try:
        vhost.bind(source, destination, record.routing_key, dict(record.arguments))
    except AMQPError as exc:
        log.warning("%s skipped: %s", what, exc.text)
        return False
    return True
