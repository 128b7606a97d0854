"""The definitions round trip with the reference RabbitMQ 3.10: users,
limits, permissions, topic permissions, a policy, a global parameter and
topology set up there (names unique to this run),
``rabbitmqctl export_definitions``, imported into a Leveret process,
exported by Leveret, deleted from RabbitMQ and imported back there with
``rabbitmqctl import_definitions``: RabbitMQ's second export equals its
first. On the way, ``leveret permissions list`` and ``users list`` print
what ``rabbitmqctl list_permissions`` / ``list_users`` print.

Needs ``rabbitmqctl`` for the reference node
(``../shared/tools/reference-rabbitmq ctl``, or ``LEVERET_REFERENCE_CTL``)
and its management API (``LEVERET_REFERENCE_MANAGEMENT``, default
http://127.0.0.1:15682: the set-up, which rabbitmqctl would make slow);
skipped without rabbitmqctl. Everything created there is deleted at the end."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.interop.admin_helpers import ok
from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import REPO_ROOT, BrokerProcess

MANAGEMENT = os.environ.get("LEVERET_REFERENCE_MANAGEMENT", "http://127.0.0.1:15682")
CTL = Path(os.environ.get("LEVERET_REFERENCE_CTL", REPO_ROOT.parent / "shared" / "tools" / "reference-rabbitmq"))
#: seconds RabbitMQ gets to finish an import (import_definitions returns
#: before it is applied)
IMPORT_DEADLINE = 30.0


def ctl(*args: str) -> str:
    """rabbitmqctl ARGS on the reference node."""
    done = subprocess.run(["bash", str(CTL), "ctl", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def mine(document: dict, vhost: str, users: set[str]) -> dict:
    """The records of ``document`` that belong to this run, lists sorted,
    vhost tags in one spelling (RabbitMQ writes "" or [] for none)."""
    def ours(record: dict) -> bool:
        return record.get("vhost") == vhost or record.get("name") in users | {vhost}

    picked = {}
    for section in ("users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
                    "policies", "exchanges", "queues", "bindings"):
        records = [dict(r) for r in document.get(section, []) if ours(r)]
        for record in records:
            metadata = record.get("metadata")
            if metadata is not None and isinstance(metadata.get("tags"), str):
                record["metadata"] = {**metadata, "tags": [t for t in metadata["tags"].split(",") if t]}
        picked[section] = sorted(records, key=lambda r: json.dumps(r, sort_keys=True))
    return picked


def rabbitmq_export() -> dict:
    return json.loads(ctl("--quiet", "export_definitions", "-"))


def rabbitmq_import(document: dict) -> None:
    """import_definitions of ``document``: through a world-readable file,
    the node reads it itself (3.10 takes no "-" for stdin)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="leveret-definitions-") as file:
        json.dump(document, file)
        file.flush()
        os.chmod(file.name, 0o644)
        ctl("import_definitions", file.name)


def api(method: str, path: str, body: object = None) -> object:
    """One call of the reference's management HTTP API (faster than a
    rabbitmqctl run, which starts an Erlang VM); the decoded reply or None."""
    request = urllib.request.Request(MANAGEMENT + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json",
                                              "authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    with urllib.request.urlopen(request, timeout=60) as reply:
        text = reply.read()
    return json.loads(text) if text else None


def set_up_on_rabbitmq(reference_url: str, vhost: str, alice: str, bob: str) -> None:
    v = quote(vhost, safe="")
    api("PUT", f"/api/vhosts/{v}")
    api("PUT", f"/api/users/{alice}", {"password": "alice-pw", "tags": "management,monitoring"})
    api("PUT", f"/api/users/{bob}", {"password": "bob-pw", "tags": ""})
    for user, (configure, write, read) in ((alice, ("^h8_.*", ".*", ".*")), (bob, ("", "^amq\\.topic$", "^h8_q1$")),
                                           ("guest", (".*", ".*", ".*"))):
        api("PUT", f"/api/permissions/{v}/{user}", {"configure": configure, "write": write, "read": read})
    api("PUT", f"/api/vhost-limits/{v}/max-queues", {"value": 50})
    api("PUT", f"/api/user-limits/{bob}/max-connections", {"value": 3})
    api("PUT", f"/api/user-limits/{bob}/max-channels", {"value": 8})
    api("PUT", f"/api/topic-permissions/{v}/{bob}", {"exchange": "amq.topic", "write": "^a\\.", "read": "^b\\."})
    api("PUT", f"/api/policies/{v}/h8_ttl", {"pattern": "^h8_pol", "definition": {"message-ttl": 60000},
                                             "priority": 3, "apply-to": "queues"})
    api("PUT", f"/api/global-parameters/{vhost}_gp", {"name": f"{vhost}_gp", "value": {"a": 1}})
    url = reference_url.rsplit("/", 1)[0] + "/" + v
    with pika_connection(url) as conn:
        ch = conn.channel()
        ch.exchange_declare("h8_direct", "direct", durable=True)
        ch.exchange_declare("h8_ae", "fanout", durable=True)
        ch.exchange_declare("h8_topic", "topic", durable=True, arguments={"alternate-exchange": "h8_ae"})
        ch.exchange_declare("h8_headers", "headers", durable=True, auto_delete=True)
        ch.queue_declare("h8_q1", durable=True, arguments={
            "x-message-ttl": 60000, "x-dead-letter-exchange": "h8_direct", "x-dead-letter-routing-key": "dead",
            "x-max-length": 100, "x-overflow": "reject-publish"})
        ch.queue_declare("h8_q2", durable=True, arguments={"x-max-priority": 5, "x-single-active-consumer": True})
        ch.queue_declare("h8_quorum", durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_declare("h8_transient", durable=False)
        ch.queue_bind("h8_q1", "h8_direct", "k1")
        ch.queue_bind("h8_q1", "h8_direct", "k2", arguments={"x-foo": "bar", "n": 3})
        ch.queue_bind("h8_q2", "h8_topic", "a.#")
        ch.queue_bind("h8_q2", "h8_headers", "", arguments={"x-match": "any", "h": "v"})
        ch.queue_bind("h8_q2", "amq.direct", "amq")
        ch.exchange_bind("h8_topic", "h8_direct", "e2e")


def imported(expected: dict, seen: dict) -> bool:
    """The management API's export (its own spelling of some keys) holds as
    many records of each kind as ``expected``: the import is done."""
    return all(len(seen[section]) == len(records) for section, records in expected.items())


def leveret_lines(text: str) -> list[str]:
    return sorted(text.splitlines())


def test_definitions_round_trip_with_rabbitmq(reference_url, tmp_path):
    if not CTL.exists():
        pytest.skip(f"no rabbitmqctl wrapper at {CTL}")
    run = uuid.uuid4().hex[:8]
    vhost, alice, bob = f"h8_rt_{run}", f"h8_rt_{run}_alice", f"h8_rt_{run}_bob"
    users = {alice, bob, f"{vhost}_gp"}  # the names this run owns (the last: a global parameter)
    leveret = BrokerProcess(tmp_path / "data").start()
    try:
        set_up_on_rabbitmq(reference_url, vhost, alice, bob)
        first = mine(rabbitmq_export(), vhost, users)
        assert len(first["queues"]) == 4 and len(first["bindings"]) == 6 and len(first["users"]) == 2
        assert len(first["policies"]) == len(first["topic_permissions"]) == len(first["global_parameters"]) == 1

        source = tmp_path / "from-rabbitmq.json"
        source.write_text(json.dumps(first))
        ok(leveret, "definitions", "import", str(source))
        assert leveret_lines(ok(leveret, "permissions", "list", "-p", vhost)) == \
            leveret_lines(ctl("list_permissions", "-p", vhost))
        assert leveret_lines(ok(leveret, "permissions", "list", "--user", bob)) == \
            leveret_lines(ctl("list_user_permissions", bob))
        rabbit_users = [line for line in ctl("list_users").splitlines() if f"_{run}_" in line]
        assert sorted(line for line in ok(leveret, "users", "list").splitlines() if f"_{run}_" in line) == \
            sorted(rabbit_users)

        from_leveret = mine(json.loads(ok(leveret, "definitions", "export")), vhost, users)
        assert from_leveret == first

        api("DELETE", f"/api/vhosts/{quote(vhost, safe='')}")
        for user in (alice, bob):
            api("DELETE", f"/api/users/{user}")
        api("DELETE", f"/api/global-parameters/{vhost}_gp")
        rabbitmq_import(from_leveret)
        deadline = time.monotonic() + IMPORT_DEADLINE
        while not imported(first, mine(api("GET", "/api/definitions"), vhost, users)):
            # the import runs in the node after the command returns
            assert time.monotonic() < deadline, "RabbitMQ did not finish the import"
            time.sleep(0.2)
        second = mine(rabbitmq_export(), vhost, users)
        assert second == first
    finally:
        leveret.stop()
        for path in (f"/api/vhosts/{quote(vhost, safe='')}", f"/api/users/{alice}", f"/api/users/{bob}",
                     f"/api/global-parameters/{vhost}_gp"):
            try:
                api("DELETE", path)
            except urllib.error.HTTPError:  # already gone (404)
                pass
