"""Fixtures for every test directory: the broker-log guard (tests/log_guard.py,
docs/testing.md). It is autouse: a test that talked to a Leveret process
fails at teardown on an ERROR line or traceback it did not declare with
``@pytest.mark.broker_log(pattern, ...)`` or ``broker_log.expect(pattern)``,
and on a broker that did not stop cleanly after SIGTERM."""

from __future__ import annotations

import pytest

from tests.log_guard import Expectations, LogWindow

_previous: list[Expectations | None] = [None]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "broker_log(*patterns): broker ERROR lines / tracebacks this test provokes "
                   "(regular expressions, re.search); the log guard allows them")


@pytest.fixture
def broker_log(request) -> Expectations:
    """The test's declared broker-log lines; ``broker_log.expect(pattern)``
    adds one. Holds the patterns of the ``broker_log`` marker too."""
    allowed = Expectations()
    for marker in request.node.iter_markers("broker_log"):
        allowed.expect(*marker.args)
    return allowed


@pytest.fixture(autouse=True)
def _broker_log_guard(broker_log):
    window = LogWindow()
    yield
    previous, _previous[0] = _previous[0], broker_log
    found = window.check(broker_log, previous)
    if found:
        pytest.fail("the broker logged errors this test did not declare (tests/log_guard.py, "
                    "docs/testing.md):\n" + "\n".join(found), pytrace=False)
