"""The message database settings: ``--mirror``, ``--mirror-body-limit``,
``--mirror-retention-days``, ``--mirror-retention-rows``,
``--mirror-max-backlog`` and their ``LEVERET_MIRROR_*`` variables."""

from __future__ import annotations

import pytest

from broker.app import cli
from broker.app.config import Config, parse_on_off


def test_defaults():
    config = cli.build_config([], {})
    assert (config.mirror, config.mirror_body_limit, config.mirror_retention_days,
            config.mirror_retention_rows, config.mirror_max_backlog) == (True, 65536, 7.0,
                                                                         10_000_000, 200_000)
    assert config.mirror_options() == {"body_limit": 65536, "max_backlog": 200_000,
                                       "retention_seconds": 7 * 86400.0,
                                       "retention_rows": 10_000_000}


def test_flags():
    config = cli.build_config(["--mirror", "off", "--mirror-body-limit", "0",
                               "--mirror-retention-days", "0.5", "--mirror-retention-rows", "1000",
                               "--mirror-max-backlog", "50"], {})
    assert (config.mirror, config.mirror_body_limit, config.mirror_retention_days,
            config.mirror_retention_rows, config.mirror_max_backlog) == (False, 0, 0.5, 1000, 50)
    assert config.mirror_options()["retention_seconds"] == 43200.0


def test_environment_and_flag_precedence():
    env = {"LEVERET_MIRROR": "OFF", "LEVERET_MIRROR_BODY_LIMIT": "1024",
           "LEVERET_MIRROR_RETENTION_DAYS": "30", "LEVERET_MIRROR_RETENTION_ROWS": "5",
           "LEVERET_MIRROR_MAX_BACKLOG": "7"}
    config = cli.build_config([], env)
    assert (config.mirror, config.mirror_body_limit, config.mirror_retention_days,
            config.mirror_retention_rows, config.mirror_max_backlog) == (False, 1024, 30.0, 5, 7)
    assert cli.build_config(["--mirror", "on"], env).mirror is True
    assert Config.from_env({"LEVERET_MIRROR": "no"}).mirror is False


@pytest.mark.parametrize("text, value", [("on", True), ("ON", True), ("true", True), ("1", True),
                                         ("yes", True), ("off", False), ("False", False),
                                         ("0", False), (" no ", False)])
def test_on_off_words(text, value):
    assert parse_on_off(text) is value


@pytest.mark.parametrize("argv", [
    ["--mirror", "maybe"],
    ["--mirror-body-limit", "-1"],
    ["--mirror-retention-days", "-2"],
    ["--mirror-retention-days", "inf"],
    ["--mirror-retention-rows", "0"],
    ["--mirror-max-backlog", "many"],
    ["messages", "find", "--mirror-body-limit", "10"],
    ["db", "rebuild", "--mirror", "off"],
])
def test_bad_values_and_misplaced_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage: leveret" in capsys.readouterr().err


@pytest.mark.parametrize("name, value", [("LEVERET_MIRROR", "sometimes"),
                                         ("LEVERET_MIRROR_BODY_LIMIT", "-5"),
                                         ("LEVERET_MIRROR_RETENTION_ROWS", "0")])
def test_bad_environment_values_are_usage_errors(name, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.build_config([], {name: value})
    assert exit_info.value.code == 2
    assert name in capsys.readouterr().err


def test_help_lists_the_mirror_options(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    out = capsys.readouterr().out
    for text in ("--mirror on|off", "--mirror-body-limit", "LEVERET_MIRROR_RETENTION_DAYS",
                 "default on", "default 65536", "--mirror-max-backlog"):
        assert text in out
