"""The local control channel (broker/control) and ``leveret queues list``,
against a real broker process: the socket in the data directory, its mode
and its replacement after a crash, the JSON-lines protocol with its error
codes, and the command as a user runs it."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from broker.control.address import reachable, socket_path
from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import REPO_ROOT, BrokerProcess


def leveret(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the ``leveret`` command line (``python -m broker``) to the end."""
    return subprocess.run([sys.executable, "-m", "broker", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=dict(os.environ, **(env or {})), timeout=60)


def ask(data_dir, *lines: bytes) -> list[dict]:
    """Send raw request lines on one control connection; the decoded replies."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, reachable(socket_path(data_dir)) as a:
        sock.settimeout(10)
        sock.connect(a)
        sock.sendall(b"".join(lines))
        data = b""
        while data.count(b"\n") < len(lines):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return [json.loads(line) for line in data.splitlines()]


def test_queues_list_shows_depth_unacked_consumers_and_arguments(fresh_broker, unique):
    broker = fresh_broker()
    busy, idle = unique("h4-busy"), unique("h4-idle")
    with pika_connection(broker) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(busy, durable=True, arguments={"x-max-length": 100})
        ch.queue_declare(idle, exclusive=True)
        for n in range(5):
            ch.basic_publish("", busy, f"m{n}".encode())
        ch.basic_qos(prefetch_count=2)
        taken = []
        ch.basic_consume(busy, lambda _c, method, _p, _b: taken.append(method.delivery_tag))
        while len(taken) < 2:
            conn.process_data_events(time_limit=1)

        listing = leveret("queues", "list", "--data-dir", str(broker.data_dir), "--json")
        assert listing.returncode == 0, listing.stderr
        rows = {row["name"]: row for row in json.loads(listing.stdout)}
        assert rows[busy] == {"vhost": "/", "name": busy, "type": "classic", "durable": True,
                              "auto_delete": False, "exclusive": False, "ready": 3, "unacked": 2,
                              "consumers": 1, "arguments": {"x-max-length": 100}}
        assert (rows[idle]["ready"], rows[idle]["exclusive"], rows[idle]["durable"]) == (0, True, False)

        table = leveret("queues", "list", "--data-dir", str(broker.data_dir))
        assert table.returncode == 0, table.stderr
        header, rule, *lines = table.stdout.splitlines()
        assert header.split() == ["vhost", "name", "type", "ready", "unacked", "consumers", "arguments"]
        assert set(rule) <= {"-", " "}
        busy_line = next(line for line in lines if busy in line)
        assert busy_line.split()[:6] == ["/", busy, "classic", "3", "2", "1"]
        assert busy_line.endswith('{"x-max-length": 100}')


def test_queues_list_of_an_unknown_vhost_and_of_no_broker(fresh_broker, tmp_path):
    broker = fresh_broker()
    refused = leveret("queues", "list", "--data-dir", str(broker.data_dir), "--vhost", "h4-none")
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == "leveret: no vhost 'h4-none'\n"

    nowhere = tmp_path / "nothing-here"
    missing = leveret("queues", "list", "--data-dir", str(nowhere))
    assert missing.returncode == 1
    assert missing.stderr == f"leveret: no broker running on data directory {nowhere}\n"
    from_env = leveret("queues", "list", env={"LEVERET_DATA_DIR": str(nowhere)})
    assert from_env.stderr == missing.stderr


def test_socket_is_private_removed_at_stop_and_replaced_after_a_crash(fresh_broker):
    broker = fresh_broker()
    path = socket_path(broker.data_dir)
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    broker.kill()
    assert path.exists()  # left behind by SIGKILL: nobody answers on it
    stale = leveret("queues", "list", "--data-dir", str(broker.data_dir))
    assert stale.stderr == f"leveret: no broker running on data directory {broker.data_dir}\n"
    broker.start()
    assert leveret("queues", "list", "--data-dir", str(broker.data_dir)).returncode == 0
    assert broker.stop() == 0
    assert not path.exists()


def test_protocol_replies_and_error_codes(fresh_broker):
    broker = fresh_broker()
    replies = ask(broker.data_dir,
                  b'{"command": "commands.list"}\n',
                  b"not json\n",
                  b'{"command": "h4.nothing", "args": {}}\n',
                  b'{"command": "queues.list", "args": {"vhost": 7}}\n',
                  b'["queues.list"]\n',
                  b'{"command": "queues.list", "args": {"vhost": "/"}}\n')
    names = [c["name"] for c in replies[0]["result"]]
    assert replies[0]["ok"] is True and "queues.list" in names and names == sorted(names)
    assert (replies[1]["ok"], replies[1]["code"]) == (False, 400)
    assert replies[1]["error"].startswith("request is not JSON")
    assert replies[2] == {"ok": False, "code": 404,
                          "error": "unknown command 'h4.nothing' (commands.list lists them)"}
    assert replies[3] == {"ok": False, "code": 400, "error": "argument 'vhost' must be str, got 7"}
    assert (replies[4]["ok"], replies[4]["code"]) == (False, 400)
    assert replies[5] == {"ok": True, "result": []}
    assert "control command h4.nothing refused (404)" in broker.log_text()


def test_data_directory_path_longer_than_a_socket_address(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "data"
    assert len(str(socket_path(deep))) > 108
    broker = BrokerProcess(deep).start()
    try:
        listing = leveret("queues", "list", "--data-dir", str(deep), "--json")
        assert (listing.returncode, json.loads(listing.stdout)) == (0, [])
    finally:
        broker.stop()
    assert not socket_path(deep).exists()


def _as_nobody(data_dir) -> bytes:
    """In a forked child running as uid 65534, connect to the control
    socket (through a descriptor of the data directory, so that the
    test's private parent directories do not stop it first) and send
    commands.list; returns ``errno <n>`` or the reply line."""
    directory = os.open(data_dir, os.O_PATH | os.O_DIRECTORY)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest, no exceptions out
        status = 0
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(10)
                try:
                    sock.connect(f"/proc/self/fd/{directory}/leveret.sock")
                except OSError as exc:
                    os.write(write_end, f"errno {exc.errno}".encode())
                else:
                    sock.sendall(b'{"command": "commands.list"}\n')
                    os.write(write_end, sock.recv(65536))
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
            status = 1
        os._exit(status)
    os.close(write_end)
    os.close(directory)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0, said
    return said


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_another_os_user_cannot_use_the_socket(fresh_broker):
    broker = fresh_broker()
    os.chmod(broker.data_dir, 0o755)  # the directory is not what keeps them out
    assert _as_nobody(broker.data_dir) == f"errno {errno.EACCES}".encode()
    # were the file's mode loosened, the broker still checks who connects
    os.chmod(socket_path(broker.data_dir), 0o666)
    reply = json.loads(_as_nobody(broker.data_dir))
    assert reply == {"ok": False, "code": 403, "error": "only the broker's user may use the control socket"}
    assert "control socket: refused a connection from uid 65534" in broker.log_text()
