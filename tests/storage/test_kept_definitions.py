"""The kept definitions table (storage/kept_definitions.py): records are
replaced by identity, read back in order after the database is reopened,
and forgotten with their vhost or user."""

from __future__ import annotations

from storage.topology import TopologyStore

POLICY = {"vhost": "v", "name": "p", "pattern": "^a", "apply-to": "all", "definition": {"max-length": 1},
          "priority": 0}
TOPIC = {"user": "bob", "vhost": "v", "exchange": "amq.topic", "write": "^a", "read": ".*"}


def test_save_replace_reopen_forget(tmp_path):
    store = TopologyStore(tmp_path / "topology.db")
    store.open()
    store.kept.save("policies", [POLICY, {**POLICY, "vhost": "w"}])
    store.kept.save("policies", [{**POLICY, "priority": 5}])  # same vhost and name: replaced
    store.kept.save("topic_permissions", [TOPIC, {**TOPIC, "user": "carol"}])
    store.kept.save("global_parameters", [{"name": "cluster_name", "value": "x"}])
    store.close()

    store.open()
    kept = store.kept.load()
    assert sorted((p["vhost"], p["priority"]) for p in kept["policies"]) == [("v", 5), ("w", 0)]
    assert kept["parameters"] == []
    assert store.kept.forget_user("bob") == 1
    assert [p["user"] for p in store.kept.load()["topic_permissions"]] == ["carol"]
    assert store.kept.forget_vhost("v") == 2  # its policy and carol's topic permission
    kept = store.kept.load()
    assert [p["vhost"] for p in kept["policies"]] == ["w"] and kept["topic_permissions"] == []
    assert kept["global_parameters"] == [{"name": "cluster_name", "value": "x"}]
    store.close()
