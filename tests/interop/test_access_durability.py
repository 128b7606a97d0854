"""Users, vhosts, permissions and limits are durable (topology database):
a broker process is SIGKILLed right after its admin calls returned, and
the broker started again on the same data directory has all of them
(issue 12, "Durability")."""

from __future__ import annotations

import json
import subprocess
import sys

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ProbableAccessDeniedError, ProbableAuthenticationError

from tests.interop.server_process import REPO_ROOT, BrokerProcess

OPERATIONS = [
    ["add_vhost", "shop"],
    ["add_user", "dave", "dave-pw"],
    ["set_tags", "dave", ["management"]],
    ["set_permissions", "dave", "shop", "^dave-", "^(dave-|amq\\.default$)", "^dave-"],
    ["set_vhost_limits", "shop", {"max-queues": 1}],
    ["add_user", "erin", "erin-pw"],
    ["set_permissions", "erin", "shop", ".*", ".*", ".*"],
    ["delete_user", "erin"],
    ["set_password", "guest", "new-guest-pw"],
]


def credentials(user, password, vhost):
    return pika.ConnectionParameters("127.0.0.1", 0, vhost, pika.PlainCredentials(user, password),
                                     connection_attempts=1)


def connect(proc, user, password, vhost):
    parameters = credentials(user, password, vhost)
    parameters.port = proc.port
    return pika.BlockingConnection(parameters)


def test_access_control_survives_sigkill(tmp_path):
    data_dir = tmp_path / "data"
    writer = subprocess.Popen([sys.executable, "-m", "tests.interop.admin_process", str(data_dir),
                               json.dumps(OPERATIONS)], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert writer.stdout.readline().strip() == "applied"
    finally:
        writer.kill()  # SIGKILL: no clean shutdown
        writer.wait()
    proc = BrokerProcess(data_dir).start()
    try:
        with connect(proc, "dave", "dave-pw", "shop") as conn:
            ch = conn.channel()
            ch.queue_declare("dave-orders")
            with pytest.raises(ChannelClosedByBroker) as denied:
                conn.channel().queue_declare("other")
            assert denied.value.reply_code == 403
            with pytest.raises(ChannelClosedByBroker) as limited:
                conn.channel().queue_declare("dave-second")
            assert limited.value.reply_code == 406
        with pytest.raises(ProbableAuthenticationError):
            connect(proc, "erin", "erin-pw", "shop")
        with pytest.raises(ProbableAuthenticationError):
            connect(proc, "guest", "guest", "/")
        connect(proc, "guest", "new-guest-pw", "/").close()
        with pytest.raises(ProbableAccessDeniedError):
            connect(proc, "guest", "new-guest-pw", "shop")  # guest has no permissions there
        assert "previous shutdown unclean" in proc.log_text()
    finally:
        proc.stop()
