"""The resource alarms as the management API shows them (RabbitMQ's
/api/nodes mem_alarm / disk_free_alarm and their limits, and the
/api/health/checks/alarms check): a broker started with a disk free limit
above the real free space raises the disk alarm at its first check."""

from __future__ import annotations

import time

from tests.interop.management_client import Api, start_with_management

#: far above any real free space: the disk alarm is raised at once
DISK_FREE_LIMIT = 1 << 62


def wait_for(predicate, timeout: float = 30.0):
    """The first truthy value of ``predicate()`` (a hang guard, not a timing check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_disk_alarm_in_nodes_and_health_check(tmp_path):
    proc, port = start_with_management(tmp_path / "data", "--disk-free-limit", str(DISK_FREE_LIMIT))
    try:
        api = Api(f"http://127.0.0.1:{port}/api")
        node = wait_for(lambda: (api.ok("GET", "/nodes")[0] if api.ok("GET", "/nodes")[0]["disk_free_alarm"]
                                 else None))
        assert node, "the disk alarm never showed in /api/nodes"
        assert node["disk_free_limit"] == DISK_FREE_LIMIT and node["mem_alarm"] is False
        status, body = api.get("/health/checks/alarms")
        assert status == 503 and body["status"] == "failed"
        assert [alarm["resource"] for alarm in body["alarms"]] == ["disk"]
    finally:
        proc.stop()


def test_no_alarm_by_default(tmp_path):
    proc, port = start_with_management(tmp_path / "data")
    try:
        api = Api(f"http://127.0.0.1:{port}/api")
        node = api.ok("GET", "/nodes")[0]
        assert (node["mem_alarm"], node["disk_free_alarm"]) == (False, False)
        assert 0 < node["mem_limit"] and node["disk_free_limit"] >= 50_000_000
        assert api.get("/health/checks/alarms") == (200, {"status": "ok"})
    finally:
        proc.stop()
