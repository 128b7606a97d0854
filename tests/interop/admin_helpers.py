"""Helpers for the admin command and definitions tests: run the ``leveret``
command line against a broker's data directory, and open a pika connection
as a given user and vhost."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import quote

import pika.exceptions

from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import REPO_ROOT


def leveret(broker, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run ``leveret ARGS --data-dir <broker's>`` (``python -m broker``) to
    the end; ``stdin``: text fed to it (a password, a definitions file)."""
    return subprocess.run([sys.executable, "-m", "broker", *args, "--data-dir", str(broker.data_dir)],
                          input=stdin if stdin is not None else "", capture_output=True, text=True,
                          cwd=REPO_ROOT, env=dict(os.environ), timeout=60)


def ok(broker, *args: str, stdin: str | None = None) -> str:
    """``leveret`` that must succeed; returns its stdout."""
    done = leveret(broker, *args, stdin=stdin)
    assert done.returncode == 0, f"leveret {' '.join(args)} -> {done.returncode}: {done.stderr}"
    return done.stdout


def user_url(broker, user: str, password: str, vhost: str = "/") -> str:
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{broker.host}:{broker.port}/{quote(vhost, safe='')}"


def connect_error(broker, user: str, password: str, vhost: str = "/") -> tuple[int, str] | None:
    """None when ``user`` can open ``vhost``, else the (reply code, text)
    of the refusal (403 a failed login, 530 a vhost it may not use)."""
    try:
        with pika_connection(user_url(broker, user, password, vhost)):
            return None
    except pika.exceptions.ConnectionClosedByBroker as exc:
        return exc.reply_code, exc.reply_text
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError) as exc:
        # pika wraps the connection.close it got: ConnectionClosedByBroker: (530) "text"
        found = re.search(r"\((\d+)\) [\"'](.*)[\"']", str(exc))
        assert found, f"no reply code in {exc!r}"
        return int(found.group(1)), found.group(2)
