"""The ``leveret`` command line: flags, environment variables, defaults, and
what ``main`` hands to ``broker.server.run``. No server is started."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from pathlib import Path

import pytest

from broker import cli
from broker.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_without_flags_or_environment():
    assert cli.build_config([], {}) == Config()


def test_every_flag_sets_its_field():
    config = cli.build_config(
        ["--host", "0.0.0.0", "--port", "5673", "--data-dir", "/tmp/lev", "--log-level", "debug",
         "--heartbeat", "5", "--frame-max", "8192", "--channel-max", "16",
         "--max-message-size", "1048576", "--handshake-timeout", "2.5"],
        {},
    )
    assert config == Config(host="0.0.0.0", port=5673, data_dir=Path("/tmp/lev"), log_level="debug",
                            heartbeat=5, frame_max=8192, channel_max=16, max_message_size=1048576,
                            handshake_timeout=2.5)


def test_serve_subcommand_is_the_default():
    flags = ["--port", "5674", "--heartbeat", "0"]
    assert cli.build_config(["serve", *flags], {}) == cli.build_config(flags, {})
    assert cli.parse_command_line([], {})[0] == "serve"
    assert cli.parse_command_line(flags, {})[0] == "serve"
    assert cli.parse_command_line(["serve"], {})[0] == "serve"


def test_options_before_and_after_serve_combine():
    config = cli.build_config(["--port", "5675", "serve", "--host", "::1"], {})
    assert (config.port, config.host) == (5675, "::1")


def test_environment_overrides_defaults():
    environ = {"LEVERET_PORT": "5680", "LEVERET_DATA_DIR": "/var/lib/leveret", "LEVERET_LOG_LEVEL": "WARNING",
               "LEVERET_HEARTBEAT": "0", "LEVERET_HANDSHAKE_TIMEOUT": "3", "LEVERET_DEFAULT_USER": "app"}
    config = cli.build_config([], environ)
    assert config.port == 5680
    assert config.data_dir == Path("/var/lib/leveret")
    assert config.log_level == "warning"
    assert config.heartbeat == 0
    assert config.handshake_timeout == 3.0
    assert config.default_user == "app"
    assert config.host == Config().host


def test_flag_overrides_environment():
    environ = {"LEVERET_PORT": "5680", "LEVERET_HOST": "0.0.0.0", "LEVERET_LOG_LEVEL": "error"}
    config = cli.build_config(["--port", "5681", "--log-level", "debug"], environ)
    assert config.port == 5681
    assert config.log_level == "debug"
    assert config.host == "0.0.0.0"  # no flag: the environment still applies


def test_flag_equal_to_the_default_still_overrides_environment():
    config = cli.build_config(["--port", str(Config().port)], {"LEVERET_PORT": "5680"})
    assert config.port == Config().port


def test_uses_os_environ_when_not_given(monkeypatch):
    monkeypatch.setenv("LEVERET_CHANNEL_MAX", "99")
    assert cli.build_config([]).channel_max == 99


@pytest.mark.parametrize("argv", [
    ["--port", "65536"],
    ["--port", "-1"],
    ["--port", "http"],
    ["--log-level", "verbose"],
    ["--heartbeat", "-1"],
    ["--frame-max", "4095"],
    ["--channel-max", "0"],
    ["--max-message-size", "0"],
    ["--handshake-timeout", "0"],
    ["--handshake-timeout", "nan"],
    ["--host", ""],
    ["--no-such-flag"],
    ["no-such-command"],
])
def test_invalid_flag_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_config(argv, {})
    assert exit_info.value.code == 2
    assert "usage: leveret" in capsys.readouterr().err


@pytest.mark.parametrize("name, value", [
    ("LEVERET_PORT", "abc"),
    ("LEVERET_PORT", "70000"),
    ("LEVERET_LOG_LEVEL", "verbose"),
    ("LEVERET_FRAME_MAX", "100"),
    ("LEVERET_HANDSHAKE_TIMEOUT", "-1"),
])
def test_invalid_environment_variable_is_a_usage_error(name, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_config([], {name: value})
    assert exit_info.value.code == 2
    assert name in capsys.readouterr().err


def test_invalid_environment_variable_is_reported_even_when_a_flag_overrides_it():
    # A broken variable is reported even when a flag would override it:
    # silently ignoring it would hide a misconfigured deployment.
    with pytest.raises(SystemExit):
        cli.build_config(["--port", "5672"], {"LEVERET_PORT": "abc"})


def test_main_runs_the_server_with_the_config_and_exits_with_its_code(monkeypatch):
    seen: list[Config] = []
    fake = types.ModuleType("broker.server")

    def run(config: Config) -> int:
        seen.append(config)
        return 3

    fake.run = run
    monkeypatch.setitem(sys.modules, "broker.server", fake)
    monkeypatch.setattr(sys.modules["broker"], "server", fake, raising=False)
    root_handlers = logging.getLogger().handlers[:]
    root_level = logging.getLogger().level
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--port", "5690", "--log-level", "warning"])
    finally:
        logging.getLogger().handlers[:] = root_handlers
        logging.getLogger().setLevel(root_level)
    assert exit_info.value.code == 3
    assert len(seen) == 1 and seen[0].port == 5690 and seen[0].log_level == "warning"


def test_log_line_format(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        cli.setup_logging("info")
        logging.getLogger("broker.server").info("hello %s", "there")
        logging.getLogger("broker.server").debug("not shown")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    # 2026-11-22 10:00:00,123 INFO broker.server: hello there
    date, time_, rest = lines[0].split(" ", 2)
    assert len(date) == 10 and date[4] == "-" and "," in time_
    assert rest == "INFO broker.server: hello there"


def _run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "broker", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)


def test_help_via_python_m_broker():
    result = _run_module("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--host", "--port", "--data-dir", "--log-level", "--heartbeat", "--frame-max",
                 "--channel-max", "--max-message-size", "--handshake-timeout", "serve", "LEVERET_PORT"):
        assert flag in result.stdout


def test_serve_help_via_python_m_broker():
    result = _run_module("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: leveret serve" in result.stdout and "--data-dir" in result.stdout


def test_bad_flag_via_python_m_broker_exits_2():
    result = _run_module("--port", "not-a-port")
    assert result.returncode == 2
    assert "--port" in result.stderr
