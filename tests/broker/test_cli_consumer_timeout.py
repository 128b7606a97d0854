"""The consumer acknowledgement timeout setting: ``--consumer-timeout``
(ms) and ``LEVERET_CONSUMER_TIMEOUT``; default 30 minutes, as RabbitMQ
(rabbitmq.com/consumers.html#acknowledgement-timeout)."""

from __future__ import annotations

import pytest

from broker.app import cli


def test_default_is_thirty_minutes_in_ms():
    assert cli.build_config([], {}).consumer_timeout == 1_800_000


def test_flag_environment_and_precedence():
    assert cli.build_config(["--consumer-timeout", "500"], {}).consumer_timeout == 500
    assert cli.build_config([], {"LEVERET_CONSUMER_TIMEOUT": "0"}).consumer_timeout == 0
    assert cli.build_config(["--consumer-timeout", "7"], {"LEVERET_CONSUMER_TIMEOUT": "9"}).consumer_timeout == 7


@pytest.mark.parametrize("argv, env", [
    (["--consumer-timeout", "-1"], {}),
    (["--consumer-timeout", "1.5"], {}),
    ([], {"LEVERET_CONSUMER_TIMEOUT": "soon"}),
])
def test_invalid_values_exit_with_usage_error(argv, env, capsys):
    with pytest.raises(SystemExit) as info:
        cli.build_config(argv, env)
    assert info.value.code == 2
    assert "consumer" in capsys.readouterr().err.lower()


def test_help_lists_the_flag(capsys):
    with pytest.raises(SystemExit):
        cli.build_config(["--help"], {})
    assert "--consumer-timeout MS" in capsys.readouterr().out
