"""broker/control's registry and wire format, without a socket: how a
package adds commands, how arguments are checked, what a reply line
holds."""

from __future__ import annotations

import asyncio

import pytest

from broker.control.registry import Registry, argument
from broker.control.standard import standard_registry
from broker.control.wire import ControlError, error, ok, parse_reply, parse_request, request


def test_a_package_adds_commands_and_a_name_is_taken_once():
    registry = Registry()

    @registry.command("h4.echo", "returns its args")
    async def echo(context, args):
        return {"context": context, "args": args}

    registry.add("h4.sync", lambda context, args: [context, args["n"]], "a plain function")
    assert asyncio.run(registry.call("ctx", "h4.echo", {"a": 1})) == {"context": "ctx", "args": {"a": 1}}
    assert asyncio.run(registry.call("ctx", "h4.sync", {"n": 2})) == ["ctx", 2]
    assert registry.names() == ["commands.list", "h4.echo", "h4.sync"]
    with pytest.raises(ValueError, match="'h4.echo' is already registered"):
        registry.add("h4.echo", echo, "again")
    with pytest.raises(ControlError) as unknown:
        asyncio.run(registry.call(None, "h4.missing", {}))
    assert unknown.value.code == 404


def test_standard_registry_lists_queues_list():
    described = asyncio.run(standard_registry().call(None, "commands.list", {}))
    names = [d["name"] for d in described]
    assert "queues.list" in names and {"users.add", "vhosts.delete", "definitions.import"} <= set(names)
    assert names == sorted(names)


def test_argument_checks_presence_and_type():
    assert argument({"vhost": "/"}, "vhost", str) == "/"
    assert argument({}, "vhost", str, None) is None
    assert argument({"n": 3}, "n", int) == 3
    for args, kind, text in (({}, str, "missing argument 'vhost'"),
                             ({"vhost": 3}, str, "argument 'vhost' must be str, got 3"),
                             ({"vhost": True}, int, "argument 'vhost' must be int, got True")):
        with pytest.raises(ControlError) as bad:
            argument(args, "vhost", kind)
        assert (bad.value.message, bad.value.code) == (text, 400)


def test_lines_round_trip():
    assert parse_request(request("queues.list", {"vhost": "é"})) == ("queues.list", {"vhost": "é"})
    assert parse_request(b'{"command": "x"}') == ("x", {})
    assert parse_reply(ok([1, "a"])) == [1, "a"]
    with pytest.raises(ControlError) as failed:
        parse_reply(error(ControlError("no vhost 'x'", 404)))
    assert (failed.value.message, failed.value.code) == ("no vhost 'x'", 404)
    for line in (b"{", b"[]", b'{"command": 1}', b'{"command": "x", "args": []}'):
        with pytest.raises(ControlError):
            parse_request(line)
