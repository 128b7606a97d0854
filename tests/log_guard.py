"""The broker-log guard: a test fails when a broker process it talked to
logged an ERROR (or CRITICAL) line or a traceback the test did not declare,
or did not stop cleanly (tests/interop/server_process.BrokerProcess.problems:
no exit within the shutdown timeout after SIGTERM, a non-zero exit status).

How a test declares the lines it provokes (docs/testing.md):

    @pytest.mark.broker_log(r"cannot recover from the write-ahead log")
    def test_...

or, when the text is only known inside the test, the ``broker_log``
fixture: ``broker_log.expect(re.escape(path))``. Patterns are regular
expressions searched (``re.search``) in each bad line, and in a traceback
as a whole (its frames and exception line).

Which part of a log belongs to a test: everything a broker wrote between the
test's setup and its teardown (the guard's teardown runs after the
``fresh_broker`` processes were stopped, so their shutdown is included).
The shared broker may log the end of a connection a moment after the test
that closed it returned; the expectations of the test just before are
therefore still accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.interop.server_process import BrokerProcess

#: a log line (LOG_FORMAT: "date time LEVEL logger: message") at ERROR or
#: above, or the first line of a Python traceback
BAD_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |^Traceback \(most recent call last\):")
#: lines that continue a traceback (indented frames, the exception line)
TRACEBACK_BODY = re.compile(r"^(\s|During handling|The above exception|\S+(Error|Exception|Exit)\b)")


@dataclass
class Expectations:
    """The patterns one test declared: ``expect(pattern, ...)`` adds some."""

    patterns: list[str] = field(default_factory=list)

    def expect(self, *patterns: str) -> None:
        """Allow bad lines matching any of ``patterns`` (regular expressions)."""
        self.patterns.extend(patterns)

    def allows(self, line: str) -> bool:
        return any(re.search(pattern, line) for pattern in self.patterns)


def bad_lines(text: str) -> list[str]:
    """The ERROR/CRITICAL lines of a broker log, and each traceback as one
    entry (its lines joined by newlines)."""
    out: list[str] = []
    in_traceback = False
    for line in text.splitlines():
        if in_traceback and TRACEBACK_BODY.match(line):
            out[-1] += "\n" + line
            continue
        in_traceback = False
        if BAD_LINE.match(line):
            out.append(line)
            in_traceback = line.startswith("Traceback")
    return out


class LogWindow:
    """The size of every started broker's log when a test began; ``check``
    returns what the test's part of each log (and each stop) did wrong."""

    def __init__(self):
        self.offsets = {id(proc): log_size(proc) for proc in BrokerProcess.started}
        self.problems_before = {id(proc): len(proc.problems) for proc in BrokerProcess.started}

    def check(self, allowed: Expectations, previous: Expectations | None = None) -> list[str]:
        """Unexpected bad lines and stop problems, one string each."""
        found: list[str] = []
        for proc in BrokerProcess.started:
            found += unexpected(proc, self.offsets.get(id(proc), 0), allowed, previous)
            found += proc.problems[self.problems_before.get(id(proc), 0):]
        return found


def unexpected(proc: BrokerProcess, offset: int, allowed: Expectations,
               previous: Expectations | None = None) -> list[str]:
    """The bad lines ``proc`` logged from byte ``offset`` on that neither
    ``allowed`` nor ``previous`` declares, each prefixed with the log path."""
    try:
        with open(proc.log_path, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return [f"{proc.log_path}: {entry[:4000]}" for entry in bad_lines(text)
            if not allowed.allows(entry) and not (previous is not None and previous.allows(entry))]


def stop_checked(proc: BrokerProcess) -> None:
    """Stop a broker shared by many tests (session fixtures) and raise
    AssertionError when it did not exit cleanly or its shutdown logged a bad
    line: the tests' own windows ended before."""
    offset, problems = log_size(proc), len(proc.problems)
    proc.stop()
    found = unexpected(proc, offset, Expectations()) + proc.problems[problems:]
    assert not found, "the shared broker did not stop cleanly:\n" + "\n".join(found)


def log_size(proc: BrokerProcess) -> int:
    """Bytes in ``proc``'s log file now (0 when it has none yet)."""
    try:
        return proc.log_path.stat().st_size
    except FileNotFoundError:
        return 0
