"""RabbitMQ's definitions format: a file the reference RabbitMQ 3.10.8
exported (users, permissions and topology set up there with the ``h8_``
prefix, then ``rabbitmqctl export_definitions``) parses, renders back to
the same records, and bad records are named in the error."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest

from broker.admin.definitions_format import dumps, json_value, loads, parse, render
from broker.admin.definitions_records import Definitions, DefinitionsError, QueueDef

EXPORTED = Path(__file__).with_name("rabbitmq_3_10_definitions.json")


@pytest.fixture
def exported() -> dict:
    return json.loads(EXPORTED.read_text())


def test_reference_export_parses(exported):
    d = parse(exported)
    assert d.rabbit_version == "3.10.8"
    alice = next(u for u in d.users if u.name == "h8_alice")
    assert alice.hashing_algorithm == "rabbit_password_hashing_sha256"
    assert alice.tags == ("monitoring", "management")
    bob = next(u for u in d.users if u.name == "h8_bob")
    assert bob.limits == {"max-channels": 5}
    vhost = next(v for v in d.vhosts if v.name == "h8_vh")
    assert vhost.limits == {"max-connections": 10, "max-queues": 20}  # written as [[name, value], ...]
    bob_perm = next(p for p in d.permissions if p.user == "h8_bob")
    assert (bob_perm.configure, bob_perm.write, bob_perm.read) == ("", r"^amq\.topic$", "^h8_q1$")
    assert d.topic_permissions[0].exchange == "amq.topic"
    assert d.policies[0].apply_to == "queues" and d.policies[0].definition == {"message-ttl": 60000}
    assert d.parameters[0].component == "vhost-limits"
    q1 = next(q for q in d.queues if q.name == "h8_q1")
    assert q1.arguments["x-dead-letter-exchange"] == "h8_direct" and q1.durable
    assert next(q for q in d.queues if q.name == "h8_qq").type == "quorum"
    e2e = next(b for b in d.bindings if b.destination_type == "exchange")
    assert (e2e.source, e2e.destination, e2e.routing_key) == ("h8_direct", "h8_topic", "e2e")


def test_render_parses_back_to_the_same_records(exported):
    d = parse(exported)
    again = loads(dumps(d))
    assert again == d


def test_render_has_rabbitmq_keys(exported):
    document = render(parse(exported))
    exchange = next(x for x in document["exchanges"] if x["name"] == "h8_topic")
    assert exchange == next(x for x in exported["exchanges"] if x["name"] == "h8_topic")
    queue = next(q for q in document["queues"] if q["name"] == "h8_q1")
    assert queue == next(q for q in exported["queues"] if q["name"] == "h8_q1")
    for key in exported:
        assert key in document


def test_internal_written_only_when_true():
    d = parse({"exchanges": [{"name": "i", "vhost": "/", "type": "direct", "durable": True, "auto_delete": False,
                              "internal": True, "arguments": {}}]})
    assert render(d)["exchanges"][0]["internal"] is True
    d.exchanges[0] = type(d.exchanges[0])("/", "x", "direct", True, False)
    assert "internal" not in render(d)["exchanges"][0]


def test_older_formats_are_read():
    d = parse({"users": [{"name": "u", "password_hash": "h", "tags": "administrator,management"}],
               "vhosts": [{"name": "v"}],
               "queues": [{"name": "q", "vhost": "v", "durable": True, "auto_delete": False, "arguments": {},
                           "type": "quorum"}]})
    assert d.users[0].tags == ("administrator", "management")
    assert d.users[0].hashing_algorithm == "rabbit_password_hashing_sha256"
    assert d.vhosts[0].description == "" and d.vhosts[0].limits == {}
    assert d.queues[0].arguments == {"x-queue-type": "quorum"}


def test_clear_text_password_accepted():
    d = parse({"users": [{"name": "u", "password": "secret", "tags": []}]})
    assert d.users[0].password == "secret" and d.users[0].password_hash == ""
    assert "secret" not in dumps(d)


@pytest.mark.parametrize("document, message", [
    ([], "a definitions document is a JSON object, got a list"),
    ({"queues": {}}, "'queues' must be a list, got an object"),
    ({"queues": [1]}, "queues[0]: expected an object, got a number"),
    ({"queues": [{"name": "q", "vhost": "/", "auto_delete": False, "arguments": {}}]},
     "queues[0]: missing key 'durable'"),
    ({"queues": [{"name": "q", "vhost": "/", "durable": 1, "auto_delete": False, "arguments": {}}]},
     "queues[0]: 'durable' must be true or false, got a number"),
    ({"users": [{"name": "u", "tags": []}]}, "users[0]: missing key 'password_hash'"),
    ({"bindings": [{"source": "x", "vhost": "/", "destination": "q", "destination_type": "topic",
                    "routing_key": "", "arguments": {}}]},
     "bindings[0]: 'destination_type' must be 'queue' or 'exchange', got 'topic'"),
    ({"policies": [{"vhost": "/", "name": "p", "pattern": ".*", "apply-to": "everything", "definition": {}}]},
     "policies[0]: 'apply-to' must be one of"),
    ({"policies": [{"vhost": "/", "name": "p", "pattern": ".*", "definition": {}, "priority": True}]},
     "policies[0]: 'priority' must be an integer, got true/false"),
])
def test_bad_documents_name_the_record(document, message):
    with pytest.raises(DefinitionsError) as caught:
        parse(document)
    assert str(caught.value).startswith(message)


def test_not_json():
    with pytest.raises(DefinitionsError, match="not a JSON document"):
        loads("{")


def test_amqp_values_as_json():
    stamp = datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc)
    assert json_value({"a": b"x\xff", "b": [stamp, 1], "c": {"d": True}}) == {
        "a": "x\ufffd", "b": [int(stamp.timestamp()), 1], "c": {"d": True}}


def test_counts_line():
    d = Definitions(queues=[QueueDef("/", "q", True, False)])
    assert "1 queues" in d.counts() and "0 users" in d.counts()
