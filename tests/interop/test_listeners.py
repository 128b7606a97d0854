"""Listeners of a real broker process: the default of 127.0.0.1 and ::1
(so ``localhost`` works whatever it resolves to), ``--host`` repeated,
``LEVERET_HOST`` as a list, plain AMQP switched off, and start-up failures:
every listener is bound before recovery, so a busy port is one line naming
the address and the cause, exit status 4, no traceback, and no recovery
work done (rabbitmq.com/docs/networking)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pika
import pytest

from broker.app.listeners import EXIT_CANNOT_LISTEN
from tests.interop.conftest import EXTERNAL_URL
from tests.interop.pika_helpers import pika_connection
from tests.interop.server_process import REPO_ROOT, BrokerProcess, free_port, stop_process, wait_listening
from tests.interop.tls_certs import make_pki

pytestmark = pytest.mark.skipif(bool(EXTERNAL_URL), reason="needs its own Leveret process")


def has_ipv6() -> bool:
    """True when this machine can bind ::1."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback on this machine")


def command(data_dir: Path, port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "broker", "--port", str(port), "--data-dir", str(data_dir),
            "--log-level", "info", "--mirror", "off", *args]


def run_failing(data_dir: Path, port: int, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a broker that must exit by itself; its output (stdout and stderr
    together) is in ``stdout``."""
    return subprocess.run(command(data_dir, port, *args), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


class Serving:
    """A broker started without BrokerProcess's ``--host``: the hosts are
    the test's. Waits until ``wait_on`` accepts; stopped by pid."""

    def __init__(self, data_dir: Path, port: int, *args: str, wait_on: str = "127.0.0.1",
                 env: dict | None = None):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(command(data_dir, port, *args), cwd=REPO_ROOT, stdout=log,
                                         stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        if not wait_listening(self.proc, wait_on, port, 15):
            self.stop()
            raise RuntimeError(f"broker did not listen on {wait_on}:{port}:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.proc, 10)


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def amqp_works(host: str, port: int) -> bool:
    """A pika connection to ``host`` (a name or an address) opens a channel."""
    with pika_connection(f"amqp://guest:guest@{host}:{port}/%2F") as conn:
        return conn.channel().is_open


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line]


# ---- where the broker listens ----------------------------------------------

@needs_ipv6
def test_default_listens_on_both_loopbacks(tmp_path):
    port = free_port()
    broker = Serving(tmp_path / "data", port)
    try:
        assert accepts("::1", port)
        assert amqp_works("[::1]", port)
        assert amqp_works("127.0.0.1", port)
        assert amqp_works("localhost", port)
        assert f"listening on 127.0.0.1:{port}, [::1]:{port} (amqp)" in broker.log_path.read_text()
    finally:
        broker.stop()


@needs_ipv6
def test_host_flag_is_repeatable_and_replaces_the_default(tmp_path):
    port = free_port()
    broker = Serving(tmp_path / "data", port, "--host", "::1", wait_on="::1")
    try:
        assert amqp_works("[::1]", port)
        assert not accepts("127.0.0.1", port)
    finally:
        broker.stop()
    port = free_port()
    broker = Serving(tmp_path / "data2", port, "--host", "127.0.0.1", "--host", "[::1]")
    try:
        assert accepts("::1", port) and accepts("127.0.0.1", port)
    finally:
        broker.stop()


@needs_ipv6
def test_leveret_host_takes_a_comma_separated_list(tmp_path):
    port = free_port()
    broker = Serving(tmp_path / "data", port, wait_on="::1", env={"LEVERET_HOST": "::1, 127.0.0.1"})
    try:
        assert amqp_works("[::1]", port) and amqp_works("127.0.0.1", port)
    finally:
        broker.stop()


def test_plain_amqp_can_be_switched_off(tmp_path):
    pki = make_pki(tmp_path / "pki")
    plain_port, tls_port = free_port(), free_port()
    broker = Serving(tmp_path / "data", tls_port, "--host", "127.0.0.1", "--plain", "off",
                     "--tls-port", str(tls_port), *pki.server_args())
    try:
        log = broker.log_path.read_text()
        assert f"listening on 127.0.0.1:{tls_port} (amqps)" in log and "(amqp)" not in log
        options = pika.SSLOptions(pki.client_context(), server_hostname="localhost")
        with pika_connection(f"amqp://guest:guest@localhost:{tls_port}/%2F", ssl_options=options) as conn:
            assert conn.channel().is_open
        assert not accepts("127.0.0.1", plain_port)
    finally:
        broker.stop()


# ---- start-up failures ------------------------------------------------------

def damaged_data_dir(tmp_path: Path) -> Path:
    """A data directory whose WAL misses a middle segment: recovering it
    stops the start with exit status 3."""
    proc = BrokerProcess(tmp_path / "damaged", ["--wal-segment-size", "4096", "--mirror", "off"]).start()
    try:
        with pika_connection(proc) as conn:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.queue_declare("kept", durable=True)
            for n in range(12):
                channel.basic_publish("", "kept", bytes(3000), pika.BasicProperties(delivery_mode=2))
    finally:
        proc.stop()
    segments = sorted((proc.data_dir / "wal").glob("*.wal"))
    assert len(segments) >= 4, segments
    segments[len(segments) // 2].unlink()
    return proc.data_dir


def test_busy_port_is_reported_before_recovery(tmp_path):
    """With the port taken, the broker stops before touching the damaged
    WAL: one error line naming the address and the cause, exit 4. With the
    port free, the same data directory fails recovery (exit 3): the first
    run never got that far."""
    data_dir = damaged_data_dir(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = run_failing(data_dir, port, "--host", "127.0.0.1")
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stdout
    assert error_lines(result.stdout) == [error_lines(result.stdout)[0]]
    assert error_lines(result.stdout)[0].endswith(f"cannot listen on 127.0.0.1:{port} (amqp): address already in use")
    assert "Traceback" not in result.stdout
    assert "recovery" not in result.stdout and "WAL" not in result.stdout
    result = run_failing(data_dir, port, "--host", "127.0.0.1")
    assert result.returncode == 3, result.stdout


def test_busy_tls_port_is_reported_and_the_plain_one_released(tmp_path):
    pki = make_pki(tmp_path / "pki")
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        tls_port = squatter.getsockname()[1]
        result = run_failing(tmp_path / "data", port, "--host", "127.0.0.1", "--tls-port", str(tls_port),
                             *pki.server_args())
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stdout
    assert error_lines(result.stdout)[0].endswith(
        f"cannot listen on 127.0.0.1:{tls_port} (amqps): address already in use")
    assert "Traceback" not in result.stdout
    with socket.socket() as probe:  # the plain listener bound first was closed again
        probe.bind(("127.0.0.1", port))


def test_address_not_on_this_machine(tmp_path):
    port = free_port()
    result = run_failing(tmp_path / "data", port, "--host", "192.0.2.1")  # TEST-NET-1 (RFC 5737)
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stdout
    assert error_lines(result.stdout) == [error_lines(result.stdout)[0]]
    assert error_lines(result.stdout)[0].endswith(
        f"cannot listen on 192.0.2.1:{port} (amqp): cannot assign requested address")
    assert "Traceback" not in result.stdout


def test_unreadable_tls_certificate(tmp_path):
    missing = tmp_path / "missing.pem"
    result = run_failing(tmp_path / "data", free_port(), "--host", "127.0.0.1", "--tls-cert", str(missing))
    assert result.returncode == EXIT_CANNOT_LISTEN, result.stdout
    assert error_lines(result.stdout)[0].endswith(
        f"cannot load the TLS certificate and key from {missing}: no such file or directory")
    assert "Traceback" not in result.stdout

