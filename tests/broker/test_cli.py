"""The ``leveret`` command line: flags, environment variables, defaults, and
what ``main`` hands to ``broker.app.server.run``. No server is started."""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import pytest

from broker.app import cli
from broker.app.config import Config
from tests.broker.cli_helpers import data_dir, run_leveret as _tool  # noqa: F401  (fixture)


def test_defaults_without_flags_or_environment():
    assert cli.build_config([], {}) == Config()


def test_the_default_is_the_safe_fsync_mode():
    """A confirm means fsynced unless the user asks otherwise (README,
    "Durability"): comparing defaults with themselves would not notice a
    flipped default. tests/durability checks what the default does."""
    assert Config().fsync == "always"
    assert cli.build_config([], {}).fsync == "always"
    assert cli.build_config(["--fsync", "never"], {}).fsync == "never"


def test_every_flag_sets_its_field():
    config = cli.build_config(
        ["--host", "0.0.0.0", "--port", "5673", "--data-dir", "/tmp/lev", "--log-level", "debug",
         "--heartbeat", "5", "--frame-max", "8192", "--channel-max", "16",
         "--max-message-size", "1048576", "--handshake-timeout", "2.5"],
        {},
    )
    assert config == Config(host=("0.0.0.0",), port=5673, data_dir=Path("/tmp/lev"), log_level="debug",
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
    assert (config.port, config.host) == (5675, ("::1",))


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
    assert config.host == ("0.0.0.0",)  # no flag: the environment still applies


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
    fake = types.ModuleType("broker.app.server")

    def run(config: Config) -> int:
        seen.append(config)
        return 3

    fake.run = run
    monkeypatch.setitem(sys.modules, "broker.app.server", fake)
    # ``from broker.app import server`` takes the package attribute when the
    # real module was imported before (by another test): replace that too
    monkeypatch.setattr(sys.modules["broker.app"], "server", fake, raising=False)
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
        logging.getLogger("broker.app.server").info("hello %s", "there")
        logging.getLogger("broker.app.server").debug("not shown")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    # 2026-11-22 10:00:00,123 INFO broker.app.server: hello there
    date, time_, rest = lines[0].split(" ", 2)
    assert len(date) == 10 and date[4] == "-" and "," in time_
    assert rest == "INFO broker.app.server: hello there"


def test_help_via_python_m_broker():
    result = _tool("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--host", "--port", "--data-dir", "--log-level", "--heartbeat", "--frame-max",
                 "--channel-max", "--max-message-size", "--handshake-timeout", "serve", "LEVERET_PORT"):
        assert flag in result.stdout


def test_serve_help_via_python_m_broker():
    result = _tool("serve", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: leveret serve" in result.stdout and "--data-dir" in result.stdout


def test_bad_flag_via_python_m_broker_exits_2():
    result = _tool("--port", "not-a-port")
    assert result.returncode == 2
    assert "--port" in result.stderr


# --- messages find/show, db rebuild -----------------------------------------

def test_tool_commands_parse():
    args = cli.build_parser().parse_args(
        ["messages", "find", "--data-dir", "/d", "--vhost", "/", "--queue", "q", "--exchange", "x",
         "--routing-key", "k", "--message-id", "m", "--correlation-id", "c", "--header", "a=1",
         "--header", "b=x=y", "--state", "acked", "--since", "2026-05-09T07:00:00Z",
         "--until", "1778310000000", "--limit", "5", "--json"])
    assert (args.command, args.action, args.data_dir) == ("messages", "find", Path("/d"))
    assert args.headers == [("a", "1"), ("b", "x=y")] and args.limit == 5 and args.json
    args = cli.build_parser().parse_args(["messages", "show", "42"])
    assert (args.action, args.id, args.json, hasattr(args, "data_dir")) == ("show", "42", False, False)
    assert cli.build_parser().parse_args(["db", "rebuild"]).action == "rebuild"


@pytest.mark.parametrize("argv", [
    ["messages", "find", "--port", "5673"],
    ["messages", "show", "1", "--log-level", "debug"],
    ["db", "rebuild", "--heartbeat", "0"],
    ["--port", "5673", "messages", "find"],
    ["--host", "::1", "db", "rebuild"],
    ["messages"],
    ["db"],
    ["messages", "show"],
    ["messages", "find", "--state", "bogus"],
    ["messages", "find", "--columns", "id,bogus"],
    ["messages", "find", "--columns", "id,,state"],
    ["queues", "list", "--port", "1"],
    ["messages", "find", "--header", "novalue"],
    ["messages", "find", "--since", "yesterday"],
    ["messages", "find", "--limit", "0"],
])
def test_tool_commands_reject_server_options_and_bad_values(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage: leveret" in capsys.readouterr().err


def test_tool_data_dir_from_flag_environment_or_default():
    env = {"LEVERET_DATA_DIR": "/env"}
    assert cli.build_config(["db", "rebuild", "--data-dir", "/f"], env).data_dir == Path("/f")
    assert cli.build_config(["--data-dir", "/top", "db", "rebuild"], env).data_dir == Path("/top")
    assert cli.build_config(["db", "rebuild"], env).data_dir == Path("/env")
    assert cli.build_config(["queues", "list"], {}).data_dir == Path("data")


def test_db_rebuild(data_dir, tmp_path):
    import shutil

    from storage.wal import WriteAheadLog
    from tests.storage.test_mirror_scenario import dump

    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    before = dump(copy / "messages.db")
    wal = WriteAheadLog(copy / "wal")                 # as if the broker were running
    wal.open().drain()
    try:
        refused = _tool("db", "rebuild", "--data-dir", str(copy))
    finally:
        wal.close()
    assert refused.returncode == 1 and "locked" in refused.stderr
    result = _tool("db", "rebuild", env={"LEVERET_DATA_DIR": str(copy)})
    assert result.returncode == 0, result.stderr
    assert "24 records, 9 messages" in result.stdout
    assert dump(copy / "messages.db") == before


def test_wal_segment_size_option():
    """--wal-segment-size / LEVERET_WAL_SEGMENT_SIZE (for tests that need
    several WAL segments) parse like the other options, at least 4096 bytes."""
    assert cli.build_config(["--wal-segment-size", "65536"], {}).wal_segment_size == 65536
    assert cli.build_config([], {"LEVERET_WAL_SEGMENT_SIZE": "8192"}).wal_segment_size == 8192
    assert Config().wal_segment_size == 64 << 20
    with pytest.raises(SystemExit):
        cli.build_config(["--wal-segment-size", "100"], {})
    assert "wal-segment-size" in cli.build_parser().format_help()
