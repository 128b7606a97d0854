"""``leveret definitions export|import`` and ``--definitions FILE`` on a
real broker process: a file the reference RabbitMQ 3.10 exported imports
(its users log in with the hashes RabbitMQ made, its topology routes), the
export gives the same records back (policies, topic permissions and
parameters kept without effect), a bad file changes nothing, and
definitions loaded at start survive a SIGKILL."""

from __future__ import annotations

import json
import subprocess
import sys
import pika
import pika.exceptions
import pytest

from tests.interop.admin_helpers import connect_error, leveret, ok, user_url
from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import REPO_ROOT, free_port

#: exported by the reference RabbitMQ 3.10.8 after setting up h8_* users,
#: permissions, limits, a policy, a topic permission and topology there
RABBITMQ_EXPORT = REPO_ROOT / "tests" / "broker" / "admin" / "rabbitmq_3_10_definitions.json"


def by_key(records: list[dict], *keys: str) -> dict:
    return {tuple(json.dumps(r[k]) for k in keys): r for r in records}


def test_rabbitmq_export_imports_and_exports_back(fresh_broker):
    broker = fresh_broker()
    out = ok(broker, "definitions", "import", str(RABBITMQ_EXPORT))
    assert out.startswith(f'Importing definitions in JSON from a file at "{RABBITMQ_EXPORT}" ...\nImported 2 users')

    # the hashes RabbitMQ made work; the permissions came along
    with pika_connection(user_url(broker, "h8_alice", "s3cret", "h8_vh")) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("h8_direct", "k1", b"via k1")
        ch.basic_publish("h8_topic", "a.b", b"via a.#")
        assert ch.basic_get("h8_q1", auto_ack=True)[2] == b"via k1"
        assert ch.basic_get("h8_q2", auto_ack=True)[2] == b"via a.#"
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            ch.queue_declare("other")
        assert refused.value.args == (403, "ACCESS_REFUSED - access to queue 'other' in vhost 'h8_vh' refused "
                                           "for user 'h8_alice'")  # RabbitMQ 3.10's text
    assert connect_error(broker, "h8_bob", "pw2", "h8_vh") is None
    assert connect_error(broker, "h8_bob", "wrong", "h8_vh")[0] == 403

    source = json.loads(RABBITMQ_EXPORT.read_text())
    exported = json.loads(ok(broker, "definitions", "export"))
    assert exported["rabbit_version"] == "3.10.8"
    for section, keys in (("users", ("name",)), ("permissions", ("user", "vhost")),
                          ("parameters", ("component", "name", "vhost")), ("exchanges", ("vhost", "name")),
                          ("queues", ("vhost", "name")), ("policies", ("vhost", "name")),
                          ("topic_permissions", ("user", "vhost", "exchange")), ("global_parameters", ("name",))):
        mine = {k: r for k, r in by_key(exported[section], *keys).items() if "h8_" in json.dumps(r)}
        assert mine == by_key(source[section], *keys), section
    vhost = next(v for v in exported["vhosts"] if v["name"] == "h8_vh")
    assert vhost["limits"] == [["max-connections", 10], ["max-queues", 20]]
    # RabbitMQ exports the bindings of internal exchanges but not the exchanges: that one is skipped
    expected_bindings = [b for b in source["bindings"] if b["source"] != "h8_int"]
    assert by_key(exported["bindings"], "vhost", "source", "destination", "routing_key") == \
        by_key(expected_bindings, "vhost", "source", "destination", "routing_key")
    log = broker.log_text()
    assert "binding 'h8_int' -> queue 'h8_q2' (routing key '') skipped: source missing" in log
    for section in ("topic permissions", "policies", "global parameters"):
        assert f"1 {section} kept but not applied: Leveret does not support them yet" in log


def test_kept_definitions_go_with_their_vhost_and_user(fresh_broker):
    broker = fresh_broker()
    ok(broker, "definitions", "import", str(RABBITMQ_EXPORT))
    exported = json.loads(ok(broker, "definitions", "export"))
    assert [p["name"] for p in exported["policies"]] == ["h8_ttl"]
    assert [p["user"] for p in exported["topic_permissions"]] == ["h8_bob"]
    ok(broker, "users", "delete", "h8_bob")
    assert json.loads(ok(broker, "definitions", "export"))["topic_permissions"] == []
    ok(broker, "vhosts", "delete", "h8_vh")
    exported = json.loads(ok(broker, "definitions", "export"))
    assert exported["policies"] == [] and exported["parameters"] == []
    assert [p["name"] for p in exported["global_parameters"]] == ["h8_gp"]  # global: stays
    ok(broker, "vhosts", "add", "h8_vh")  # a new vhost of the same name starts empty
    assert json.loads(ok(broker, "definitions", "export"))["policies"] == []


def small_definitions(**extra) -> dict:
    document = {
        "users": [{"name": "h8_app", "password": "app-pw", "tags": ["management"]}],
        "vhosts": [{"name": "h8_orders"}],
        "permissions": [{"user": "h8_app", "vhost": "h8_orders", "configure": ".*", "write": ".*", "read": ".*"}],
        "exchanges": [{"name": "h8_in", "vhost": "h8_orders", "type": "topic", "durable": True,
                       "auto_delete": False, "internal": False, "arguments": {}}],
        "queues": [{"name": "h8_work", "vhost": "h8_orders", "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 1000}}],
        "bindings": [{"source": "h8_in", "vhost": "h8_orders", "destination": "h8_work",
                      "destination_type": "queue", "routing_key": "order.*", "arguments": {}}],
        "policies": [{"vhost": "h8_orders", "name": "h8_limit", "pattern": "^h8_", "apply-to": "queues",
                      "definition": {"max-length": 10}, "priority": 1}],
    }
    for key, records in extra.items():
        document[key] = document.get(key, []) + records
    return document


def test_definitions_at_start_survive_sigkill(fresh_broker, tmp_path):
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps(small_definitions()))
    broker = fresh_broker("--definitions", str(path))
    url = user_url(broker, "h8_app", "app-pw", "h8_orders")
    with pika_connection(url) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("h8_in", "order.new", b"o-1", pika.BasicProperties(delivery_mode=2))
    before = ok(broker, "definitions", "export")
    assert f"definitions loaded from {path}" in broker.log_text()
    assert json.loads(before)["policies"][0]["definition"] == {"max-length": 10}

    broker.kill()
    broker.start()  # loads the file again: what exists stays as it is
    assert ok(broker, "definitions", "export") == before
    with pika_connection(url) as conn:
        ch = conn.channel()
        assert ch.queue_declare("h8_work", passive=True).method.message_count == 1
        assert ch.basic_get("h8_work", auto_ack=True)[2] == b"o-1"


@pytest.mark.parametrize("extra, message", [
    ({"queues": [{"name": "h8_bad", "vhost": "h8_orders", "durable": True, "auto_delete": False,
                  "arguments": {"x-max-length": -1}}]},
     "queues[1] ('h8_bad' in vhost 'h8_orders'): invalid arg 'x-max-length' for queue 'h8_bad' in vhost "
     "'h8_orders': {value_negative,-1}"),
    ({"permissions": [{"user": "h8_ghost", "vhost": "h8_orders", "configure": "", "write": "", "read": ""}]},
     "permissions[1] (user 'h8_ghost' vhost 'h8_orders'): no user 'h8_ghost'"),
    ({"exchanges": [{"name": "h8_x", "vhost": "h8_nowhere", "type": "direct", "durable": True,
                     "auto_delete": False, "arguments": {}}]},
     "exchanges[1] ('h8_x' in vhost 'h8_nowhere'): no vhost 'h8_nowhere'"),
    ({"exchanges": [{"name": "h8_x", "vhost": "h8_orders", "type": "x-consistent-hash", "durable": True,
                     "auto_delete": False, "arguments": {}}]},
     "exchanges[1] ('h8_x' in vhost 'h8_orders'): invalid exchange type 'x-consistent-hash'"),
    ({"policies": [{"vhost": "h8_orders", "name": "h8_p", "pattern": "[", "definition": {}}]},
     "policies[1]: invalid regular expression '[': unterminated character set at position 0"),
    ({"topic_permissions": [{"user": "h8_ghost", "vhost": "h8_orders", "exchange": "amq.topic", "write": "",
                             "read": ""}]},
     "topic_permissions[0]: no user 'h8_ghost'"),
    ({"users": [{"name": "h8_md5", "password_hash": "not base64!", "hashing_algorithm":
                 "rabbit_password_hashing_md5", "tags": []}]},
     "users[1] ('h8_md5'): password hash is not base64"),
])
def test_bad_document_changes_nothing(fresh_broker, extra, message):
    broker = fresh_broker()
    before = ok(broker, "definitions", "export")
    done = leveret(broker, "definitions", "import", "-", stdin=json.dumps(small_definitions(**extra)))
    assert done.returncode == 1
    assert done.stderr == f"leveret: invalid definitions: {message}\n"
    assert ok(broker, "definitions", "export") == before


def test_not_a_json_file(fresh_broker, tmp_path):
    broker = fresh_broker()
    path = tmp_path / "broken.json"
    path.write_text("{\"users\": [")
    done = leveret(broker, "definitions", "import", str(path))
    assert done.returncode == 1 and f"leveret: {path} is not a JSON document" in done.stderr


def test_bad_definitions_file_stops_the_start(tmp_path):
    path = tmp_path / "definitions.json"
    path.write_text(json.dumps({"queues": [{"name": "q", "vhost": "/"}]}))
    done = subprocess.run([sys.executable, "-m", "broker", "--port", str(free_port()), "--data-dir",
                           str(tmp_path / "data"), "--mirror", "off", "--definitions", str(path)],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 1
    assert f"cannot load the definitions file: {path}: queues[0]: missing key 'durable'" in done.stderr


def test_export_of_what_clients_declared(fresh_broker, tmp_path):
    broker = fresh_broker()
    with pika_connection(broker) as conn:
        ch = conn.channel()
        ch.exchange_declare("h8_hidden", "fanout", durable=True, internal=True)
        ch.exchange_declare("h8_front", "direct", durable=True, arguments={"alternate-exchange": "h8_hidden"})
        ch.exchange_declare("h8_passing", "direct", durable=False)
        ch.exchange_bind("h8_hidden", "h8_front", "e2e")
        ch.queue_declare("h8_kept", durable=False, arguments={"x-message-ttl": 5000})
        mine = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(mine, "h8_front", "private")
        ch.queue_bind("h8_kept", "h8_hidden", "", arguments={"x-note": b"bytes"})
        target = tmp_path / "export.json"
        assert ok(broker, "definitions", "export", str(target)) == \
            f'Exporting definitions in JSON to a file at "{target}" ...\n'
    exported = json.loads(target.read_text())
    exchanges = {x["name"]: x for x in exported["exchanges"]}
    assert set(exchanges) == {"h8_hidden", "h8_front"}  # transient and standard ones are not listed
    assert exchanges["h8_hidden"]["internal"] is True and "internal" not in exchanges["h8_front"]
    assert exchanges["h8_front"]["arguments"] == {"alternate-exchange": "h8_hidden"}
    assert [q["name"] for q in exported["queues"]] == ["h8_kept"]  # not the exclusive one
    assert exported["queues"][0]["durable"] is False
    assert sorted((b["source"], b["destination"], b["destination_type"], b["arguments"].get("x-note"))
                  for b in exported["bindings"]) == [("h8_front", "h8_hidden", "exchange", None),
                                                     ("h8_hidden", "h8_kept", "queue", "bytes")]
    assert [u["name"] for u in exported["users"]] == ["guest"]
    assert exported["permissions"] == [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*",
                                        "read": ".*"}]

    other = fresh_broker()  # the export imports into another broker as it is
    ok(other, "definitions", "import", str(target))
    again = json.loads(ok(other, "definitions", "export"))
    for section in ("exchanges", "queues", "bindings", "permissions", "vhosts"):
        assert again[section] == exported[section], section
