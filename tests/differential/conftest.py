"""Fixtures for the differential tests.

``differential(scenario, expected)`` runs ``scenario(url)`` first against the
reference RabbitMQ 3.10 (``../shared/tools/reference-rabbitmq start``, on
127.0.0.1:5682, or ``LEVERET_REFERENCE_URL``) and checks that it observed
``expected`` -- this validates the scenario and proves a test cannot pass by
both brokers doing nothing -- then against a private Leveret process and
asserts that Leveret observed exactly the same.

When the reference RabbitMQ is not reachable every differential test is
skipped, with the reason, before any Leveret process is started.

``LEVERET_DIFF_REFERENCE_ONLY=1`` (development aid) checks the scenarios
against RabbitMQ alone and then skips the Leveret half, so a scenario's
expectations can be validated (and timed) on their own.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable
from urllib.parse import urlparse

import pytest

from tests.differential.scenario_tools import DELIVERIES
from tests.interop.server_process import BrokerProcess
from tests.log_guard import stop_checked

REFERENCE_ONLY = os.environ.get("LEVERET_DIFF_REFERENCE_ONLY") == "1"
REFERENCE_URL = os.environ.get("LEVERET_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5682/%2F")


@pytest.fixture(scope="session")
def reference_url() -> str:
    """URL of the reference RabbitMQ; skips the test when nothing listens there."""
    parsed = urlparse(REFERENCE_URL)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5672
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as exc:
        pytest.skip(f"reference RabbitMQ not reachable on {host}:{port} ({exc}); "
                    "start it with ../shared/tools/reference-rabbitmq start")
    return REFERENCE_URL


@pytest.fixture(scope="session")
def leveret_url(reference_url, tmp_path_factory):
    """URL of a private Leveret process shared by the differential tests."""
    proc = BrokerProcess(tmp_path_factory.mktemp("differential") / "data").start()
    yield proc.url
    stop_checked(proc)


@pytest.fixture
def differential(reference_url: str, request) -> Callable[..., Any]:
    """``differential(scenario, expected)``: run on RabbitMQ, check ``expected``,
    run on Leveret, assert equal. Returns the observation."""

    def run(scenario: Callable[[str], Any], expected: Any) -> Any:
        DELIVERIES.clear()
        reference = scenario(reference_url)
        assert reference == expected, (
            f"the reference RabbitMQ observed something else than the scenario expects:\n"
            f"  rabbitmq: {reference!r}\n  expected: {expected!r}")
        if REFERENCE_ONLY:
            pytest.skip("LEVERET_DIFF_REFERENCE_ONLY=1: checked against RabbitMQ only")
        leveret_url = request.getfixturevalue("leveret_url")
        observed = scenario(leveret_url)
        assert observed == reference, (
            f"Leveret differs from RabbitMQ 3.10:\n  leveret:  {observed!r}\n  rabbitmq: {reference!r}")
        whole, whole_reference = DELIVERIES.get(leveret_url), DELIVERIES.get(reference_url)
        assert whole == whole_reference, (
            f"Leveret's deliveries differ from RabbitMQ 3.10 in a field the scenario does not return "
            f"(every property and header, in order per queue and per consumer):\n"
            f"  leveret:  {whole!r}\n  rabbitmq: {whole_reference!r}")
        return observed

    return run
