"""Debian's rabbitmqadmin (the management API client shipped with
RabbitMQ 3.10) against Leveret's management API: list every object type,
show overview, declare/delete every kind of object, purge, publish, get,
export and import; each result checked through rabbitmqadmin itself or a
second client (pika)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pika
import pytest

from tests.interop.management_client import start_with_management

RABBITMQADMIN = shutil.which("rabbitmqadmin") or "/usr/bin/rabbitmqadmin"

pytestmark = pytest.mark.skipif(shutil.which("rabbitmqadmin") is None,
                                reason="rabbitmqadmin is not installed (it comes with rabbitmq-server)")


@pytest.fixture(scope="module")
def admin(tmp_path_factory):
    proc, port = start_with_management(tmp_path_factory.mktemp("mgmt-admin") / "data")

    def run(*args: str, user: str = "guest", password: str = "guest", check: bool = True) -> str:
        done = subprocess.run([RABBITMQADMIN, "-H", "127.0.0.1", "-P", str(port), "-u", user, "-p", password,
                               *args], capture_output=True, text=True, timeout=30)
        if check:
            assert done.returncode == 0, f"rabbitmqadmin {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    run.proc = proc
    yield run
    proc.stop()


def listed(admin, kind: str, *extra: str) -> list[dict]:
    return json.loads(admin("-f", "raw_json", "list", kind, *extra))


def test_list_every_object_type(admin):
    connection = pika.BlockingConnection(pika.URLParameters(admin.proc.url))
    try:
        channel = connection.channel()
        channel.queue_declare("h10-listed")
        channel.basic_consume("h10-listed", lambda *a: None)
        assert [c["user"] for c in listed(admin, "connections")] == ["guest"]
        assert listed(admin, "channels")[0]["number"] == 1
        consumers = listed(admin, "consumers")
        assert [(c["queue"]["name"], c["ack_required"]) for c in consumers] == [("h10-listed", True)]
        assert "amq.topic" in {e["name"] for e in listed(admin, "exchanges")}
        assert {"name": "h10-listed", "consumers": 1} .items() <= listed(admin, "queues")[0].items()
        assert ("", "h10-listed") in {(b["source"], b["destination"]) for b in listed(admin, "bindings")}
        assert [u["name"] for u in listed(admin, "users")] == ["guest"]
        assert [v["name"] for v in listed(admin, "vhosts")] == ["/"]
        assert listed(admin, "permissions")[0]["configure"] == ".*"
        node = listed(admin, "nodes")[0]
        for key in ("mem_used", "mem_limit", "mem_alarm", "disk_free", "disk_free_limit", "disk_free_alarm",
                    "fd_used"):
            assert key in node
        for kind in ("parameters", "policies", "vhost_limits"):
            assert listed(admin, kind) == []
        # the table output, as an operator reads it
        assert "h10-listed" in admin("list", "queues", "name", "messages")
    finally:
        connection.close()


def test_show_overview(admin):
    overview = json.loads(admin("-f", "raw_json", "show", "overview"))[0]
    assert overview["rabbitmq_version"].startswith("3.")
    assert overview["object_totals"]["exchanges"] >= 6
    table = admin("show", "overview")
    assert "rabbitmq_version" in table and "object_totals.queues" in table


def test_declare_publish_get_purge_delete(admin):
    admin("declare", "exchange", "name=h10-x", "type=topic")
    admin("declare", "queue", "name=h10-q", "durable=true", 'arguments={"x-max-length": 10}')
    admin("declare", "binding", "source=h10-x", "destination=h10-q", "routing_key=a.*")
    assert {"name": "h10-x", "type": "topic"}.items() <= next(
        e for e in listed(admin, "exchanges") if e["name"] == "h10-x").items()
    queue = next(q for q in listed(admin, "queues") if q["name"] == "h10-q")
    assert queue["durable"] is True and queue["arguments"] == {"x-max-length": 10}
    assert ("h10-x", "h10-q", "a.*") in {(b["source"], b["destination"], b["routing_key"])
                                         for b in listed(admin, "bindings")}

    admin("publish", "exchange=h10-x", "routing_key=a.b", "payload=one")
    admin("publish", "exchange=h10-x", "routing_key=a.c", "payload=two", 'properties={"delivery_mode": 2}')
    admin("publish", "exchange=amq.default", "routing_key=h10-q", "payload=three")
    assert next(q for q in listed(admin, "queues") if q["name"] == "h10-q")["messages"] == 3

    peeked = json.loads(admin("-f", "raw_json", "get", "queue=h10-q", "count=2"))
    assert [(m["payload"], m["redelivered"]) for m in peeked] == [("one", False), ("two", False)]
    assert peeked[1]["properties"] == {"delivery_mode": 2}
    taken = json.loads(admin("-f", "raw_json", "get", "queue=h10-q", "ackmode=ack_requeue_false"))
    assert [(m["payload"], m["redelivered"], m["message_count"]) for m in taken] == [("one", True, 2)]

    admin("purge", "queue", "name=h10-q")
    assert next(q for q in listed(admin, "queues") if q["name"] == "h10-q")["messages"] == 0

    key = next(b for b in listed(admin, "bindings") if b["source"] == "h10-x")["properties_key"]
    admin("delete", "binding", "source=h10-x", "destination_type=queue", "destination=h10-q",
          f"properties_key={key}")
    assert not [b for b in listed(admin, "bindings") if b["source"] == "h10-x"]
    admin("delete", "queue", "name=h10-q")
    admin("delete", "exchange", "name=h10-x")
    assert "h10-q" not in {q["name"] for q in listed(admin, "queues")}
    assert "h10-x" not in {e["name"] for e in listed(admin, "exchanges")}


def test_vhost_user_permission(admin):
    admin("declare", "vhost", "name=h10-vh")
    admin("declare", "user", "name=h10-user", "password=h10-secret", "tags=monitoring")
    admin("declare", "permission", "vhost=h10-vh", "user=h10-user", "configure=^h10", "write=.*", "read=.*")
    assert "h10-vh" in {v["name"] for v in listed(admin, "vhosts")}
    assert {"name": "h10-user", "tags": ["monitoring"]}.items() <= next(
        u for u in listed(admin, "users") if u["name"] == "h10-user").items()
    assert ("h10-user", "h10-vh", "^h10") in {(p["user"], p["vhost"], p["configure"])
                                              for p in listed(admin, "permissions")}
    # the new user logs in to the API and over AMQP with its password
    assert json.loads(admin("-f", "raw_json", "list", "vhosts", user="h10-user", password="h10-secret"))
    params = pika.URLParameters(admin.proc.url.replace("guest:guest", "h10-user:h10-secret").replace("%2F", "h10-vh"))
    pika.BlockingConnection(params).close()
    # a monitoring user may read but not write
    refused = admin("declare", "vhost", "name=h10-no", user="h10-user", password="h10-secret", check=False)
    assert "h10-no" not in {v["name"] for v in listed(admin, "vhosts")}, refused

    admin("delete", "permission", "vhost=h10-vh", "user=h10-user")
    assert "h10-user" not in {p["user"] for p in listed(admin, "permissions")}
    admin("delete", "user", "name=h10-user")
    admin("delete", "vhost", "name=h10-vh")
    assert "h10-user" not in {u["name"] for u in listed(admin, "users")}
    assert "h10-vh" not in {v["name"] for v in listed(admin, "vhosts")}


def test_export_then_import(admin, tmp_path):
    admin("declare", "queue", "name=h10-kept", "durable=true")
    exported = tmp_path / "definitions.json"
    admin("export", str(exported))
    document = json.loads(exported.read_text())
    assert "h10-kept" in {q["name"] for q in document["queues"]}
    assert "guest" in {u["name"] for u in document["users"]}

    admin("delete", "queue", "name=h10-kept")
    document["vhosts"].append({"name": "h10-imported"})
    exported.write_text(json.dumps(document))
    admin("import", str(exported))
    assert "h10-kept" in {q["name"] for q in listed(admin, "queues")}
    assert "h10-imported" in {v["name"] for v in listed(admin, "vhosts")}
