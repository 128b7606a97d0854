"""Fixtures that give integration tests a real broker to talk to.

``broker``: one Leveret process shared by the whole test session (tests use
unique names, see ``unique``). Set ``LEVERET_TEST_URL`` (for example the
reference RabbitMQ's ``amqp://guest:guest@127.0.0.1:5682/%2F``) to run the same
tests against another broker instead; tests that need their own process
(``fresh_broker``) are then skipped.

``fresh_broker``: a factory that starts a private Leveret process with extra
command-line arguments; it is stopped when the test ends.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlparse

import pytest

from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import BrokerProcess
from tests.log_guard import stop_checked

EXTERNAL_URL = os.environ.get("LEVERET_TEST_URL")


class ExternalBroker:
    """A broker this test run did not start (reference RabbitMQ)."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        self.url = url
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 5672

    def log_text(self) -> str:
        return ""


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """The shared broker: has ``url``, ``host``, ``port``, ``log_text()``."""
    if EXTERNAL_URL:
        yield ExternalBroker(EXTERNAL_URL)
        return
    proc = BrokerProcess(tmp_path_factory.mktemp("shared") / "data").start()
    yield proc
    stop_checked(proc)


@pytest.fixture
def fresh_broker(tmp_path):
    """Factory: ``fresh_broker("--heartbeat", "1")`` starts a private broker."""
    if EXTERNAL_URL:
        pytest.skip("needs its own Leveret process")
    started: list[BrokerProcess] = []

    def start(*extra_args: str) -> BrokerProcess:
        proc = BrokerProcess(tmp_path / f"data{len(started)}", list(extra_args)).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def unique():
    """Factory for names no other test uses: ``unique("q")`` -> ``q-3f2a…``."""
    return lambda prefix="t": f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ch(broker):
    """A pika channel on the shared broker, in confirm mode: once a publish
    returns, the broker has routed it. Modules may define their own ``ch``."""
    with pika_connection(broker) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        yield channel
