"""Listener and TLS settings on the command line (broker.app.cli,
broker.app.config, broker.app.listeners): ``--host`` repeatable,
``LEVERET_HOST`` a comma-separated list, ``--plain``, the ``--tls-*``
flags, the combinations that cannot work (usage error, exit status 2), and
the TLS context (TLS 1.2 minimum, client certificates per --tls-verify).
No server is started."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from broker.app import cli
from broker.app.config import DEFAULT_HOSTS, Config
from broker.app.listeners import ListenError, format_address, listener_problem, tls_context
from tests.interop.tls_certs import make_pki


def test_default_hosts_are_both_loopbacks():
    assert Config().host == DEFAULT_HOSTS == ("127.0.0.1", "::1")
    assert cli.build_config([], {}).host == DEFAULT_HOSTS


def test_host_flag_repeats_and_takes_lists():
    assert cli.build_config(["--host", "127.0.0.1", "--host", "[::1]"], {}).host == ("127.0.0.1", "::1")
    assert cli.build_config(["--host", "0.0.0.0,::"], {}).host == ("0.0.0.0", "::")


def test_leveret_host_is_a_comma_separated_list():
    assert cli.build_config([], {"LEVERET_HOST": "::1, 127.0.0.1"}).host == ("::1", "127.0.0.1")
    assert cli.build_config([], {"LEVERET_HOST": "0.0.0.0"}).host == ("0.0.0.0",)
    # the flag replaces the environment's list, it does not add to it
    assert cli.build_config(["--host", "::1"], {"LEVERET_HOST": "127.0.0.1"}).host == ("::1",)


def test_tls_flags_and_their_environment_variables(tmp_path):
    flags = cli.build_config(["--tls-port", "5999", "--tls-cert", "c.pem", "--tls-key", "k.pem",
                              "--tls-ca", "ca.pem", "--tls-verify", "peer", "--plain", "off"], {})
    environ = cli.build_config([], {"LEVERET_TLS_PORT": "5999", "LEVERET_TLS_CERT": "c.pem",
                                    "LEVERET_TLS_KEY": "k.pem", "LEVERET_TLS_CA": "ca.pem",
                                    "LEVERET_TLS_VERIFY": "peer", "LEVERET_PLAIN": "off"})
    assert flags == environ
    assert (flags.tls_port, flags.tls_cert, flags.tls_key, flags.tls_ca, flags.tls_verify, flags.plain) == (
        5999, Path("c.pem"), Path("k.pem"), Path("ca.pem"), "peer", False)
    assert (Config().tls_port, Config().tls_verify, Config().plain) == (5671, "none", True)


@pytest.mark.parametrize("argv, environ, message", [
    (["--host", ""], {}, "--host: must be host names or addresses separated by commas"),
    (["--host", "a,,b"], {}, "--host: must be host names or addresses separated by commas"),
    ([], {"LEVERET_HOST": ","}, "environment variable LEVERET_HOST: must be host names or addresses separated by commas, got ','"),
    (["--tls-verify", "maybe"], {}, "must be 'peer' or 'none'"),
    (["--plain", "off"], {}, "--plain off needs --tls-cert"),
    (["--tls-key", "k.pem"], {}, "--tls-key needs --tls-cert"),
    (["--tls-cert", "c.pem", "--tls-verify", "peer"], {}, "--tls-verify peer needs --tls-ca"),
    (["--tls-verify", "peer"], {}, "--tls-verify peer needs --tls-cert"),
])
def test_impossible_listener_settings_are_usage_errors(argv, environ, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_config(argv, environ)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_tool_commands_ignore_listener_settings(tmp_path):
    """``leveret messages`` does not listen: LEVERET_PLAIN=off alone is fine there."""
    command, _config = cli.parse_command_line(["messages", "find", "--data-dir", str(tmp_path)],
                                              {"LEVERET_PLAIN": "off"})
    assert command == "messages"


def test_listener_problem_accepts_workable_settings():
    assert listener_problem(Config()) is None
    assert listener_problem(Config(plain=False, tls_cert=Path("c.pem"))) is None
    assert listener_problem(Config(tls_cert=Path("c.pem"), tls_ca=Path("ca.pem"), tls_verify="peer")) is None


def test_format_address_brackets_ipv6():
    assert format_address("127.0.0.1", 5672) == "127.0.0.1:5672"
    assert format_address("::1", 5671) == "[::1]:5671"


def test_tls_context(tmp_path):
    pki = make_pki(tmp_path)
    config = Config(tls_cert=pki.server.cert, tls_key=pki.server.key)
    context = tls_context(config)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    config.tls_ca, config.tls_verify = pki.ca.cert, "peer"
    assert tls_context(config).verify_mode == ssl.CERT_REQUIRED


def test_tls_context_names_the_file_it_cannot_load(tmp_path):
    pki = make_pki(tmp_path)
    with pytest.raises(ListenError, match=f"from {pki.server.cert} and {pki.client.key}: key values mismatch"):
        tls_context(Config(tls_cert=pki.server.cert, tls_key=pki.client.key))
    with pytest.raises(ListenError, match=f"CA certificates from {tmp_path / 'none.pem'}: no such file"):
        tls_context(Config(tls_cert=pki.server.cert, tls_key=pki.server.key, tls_ca=tmp_path / "none.pem"))
