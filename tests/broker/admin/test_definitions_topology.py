"""The topology part of definitions (broker/admin/definitions_topology.py)
on real VHost objects without storage: what ``plan`` refuses before
anything is declared, what ``apply`` declares, leaves alone or skips, and
what an export lists."""

from __future__ import annotations

import pytest

from broker.admin.definitions_records import BindingDef, DefinitionsError, ExchangeDef, QueueDef
from broker.admin.definitions_topology import apply, exported_topology, plan
from broker.queues.queue import Queue
from broker.vhost.namespace import VHost


def known(name: str) -> bool:
    return name == "v"


@pytest.mark.parametrize("exchanges, queues, message", [
    ([ExchangeDef("v", "x", "x-unknown", True, False)], [], "exchanges[0] ('x' in vhost 'v'): invalid exchange "
                                                           "type 'x-unknown'"),
    ([ExchangeDef("v", "d", "x-delayed-message", True, False)], [],
     "exchanges[0] ('d' in vhost 'v'): Invalid argument, 'x-delayed-type' must be an existing exchange type"),
    ([ExchangeDef("w", "x", "direct", True, False)], [], "exchanges[0] ('x' in vhost 'w'): no vhost 'w'"),
    ([], [QueueDef("v", "", True, False)], "queues[0]: queue name must not be empty"),
    ([], [QueueDef("v", "q", True, False, {"x-overflow": "sometimes"})],
     "queues[0] ('q' in vhost 'v'): invalid arg 'x-overflow' for queue 'q' in vhost 'v': invalid_overflow"),
])
def test_plan_refuses(exchanges, queues, message):
    with pytest.raises(DefinitionsError) as caught:
        plan(exchanges, queues, [], known)
    assert str(caught.value) == message


def test_apply_declares_skips_and_keeps_what_exists():
    vhost = VHost("v")
    existing = Queue(vhost, "old", True, None, False, {"x-max-length": 5})
    vhost.add_queue(existing)
    topology = plan(
        [ExchangeDef("v", "amq.custom", "direct", True, False), ExchangeDef("v", "x", "topic", True, False),
         ExchangeDef("v", "i", "fanout", True, False, internal=True)],
        [QueueDef("v", "old", True, False, {}), QueueDef("v", "new", False, True, {"x-message-ttl": 10})],
        [BindingDef("v", "x", "new", "queue", "a.#"), BindingDef("v", "x", "i", "exchange", "e2e"),
         BindingDef("v", "gone", "new", "queue", "k"), BindingDef("v", "", "new", "queue", "new"),
         BindingDef("v", "amq.headers", "old", "queue", "", {"x-match": "nonsense"})],
        known)
    skipped = apply(topology, {"v": vhost})
    assert skipped == 4  # amq.custom; bindings from "gone", from the default exchange, with a bad x-match
    assert "amq.custom" not in vhost.exchanges and vhost.exchanges["i"].internal
    assert vhost.queues["old"] is existing and existing.arguments == {"x-max-length": 5}
    new = vhost.queues["new"]
    assert (new.durable, new.auto_delete, new.arguments) == (False, True, {"x-message-ttl": 10})

    exchanges, queues, bindings = exported_topology({"v": vhost})
    assert [(x.name, x.type, x.internal) for x in exchanges] == [("i", "fanout", True), ("x", "topic", False)]
    assert [q.name for q in queues] == ["new", "old"]
    assert sorted((b.source, b.destination, b.destination_type, b.routing_key) for b in bindings) == [
        ("x", "i", "exchange", "e2e"), ("x", "new", "queue", "a.#")]
