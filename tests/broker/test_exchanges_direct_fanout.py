"""Direct and fanout exchanges, plus the binding bookkeeping and declare
equivalence every exchange type shares (broker/exchanges/base.py)."""

import pytest

from broker.exchanges import (EXCHANGE_TYPES, DeduplicationExchange, DelayedMessageExchange, DirectExchange,
                              Exchange, FanoutExchange, HeadersExchange, TopicExchange)


def r(x, key=""):
    return list(x.route(key, lambda: None))


def test_exchange_types_registry():
    assert EXCHANGE_TYPES == {"direct": DirectExchange, "fanout": FanoutExchange,
                              "topic": TopicExchange, "headers": HeadersExchange,
                              # plugin types (issue 4): rabbitmq-delayed-message-exchange,
                              # rabbitmq-message-deduplication
                              "x-delayed-message": DelayedMessageExchange,
                              "x-message-deduplication": DeduplicationExchange}
    for name, cls in EXCHANGE_TYPES.items():
        assert cls.type_name == name
        assert issubclass(cls, Exchange)
        assert cls.needs_headers is (name == "headers")


def test_attributes():
    x = DirectExchange("d", durable=True, auto_delete=True, internal=True,
                       arguments={"alternate-exchange": "ae"})
    assert (x.name, x.durable, x.auto_delete, x.internal) == ("d", True, True, True)
    assert x.arguments == {"alternate-exchange": "ae"}
    assert DirectExchange("d").arguments == {}


def test_direct_exact_match_only():
    x = DirectExchange("d")
    x.bind("q1", "a.b")
    assert r(x, "a.b") == ["q1"]
    assert r(x, "a") == []
    assert r(x, "a.b.c") == []
    assert r(x, "A.B") == []
    assert r(x, "*") == []


def test_direct_multiple_bindings():
    x = DirectExchange("d")
    x.bind("q1", "k")
    x.bind("q2", "k")
    x.bind("q1", "other")
    x.bind("q3", "")
    assert r(x, "k") == ["q1", "q2"]
    assert r(x, "other") == ["q1"]
    assert r(x, "") == ["q3"]


def test_direct_same_queue_two_argument_sets_delivered_once():
    x = DirectExchange("d")
    assert x.bind("q", "k", {"a": 1})
    assert x.bind("q", "k", {"a": 2})
    assert r(x, "k") == ["q"]
    assert x.unbind("q", "k", {"a": 1})
    assert r(x, "k") == ["q"]
    assert x.unbind("q", "k", {"a": 2})
    assert r(x, "k") == []


def test_bind_is_idempotent():
    x = DirectExchange("d")
    assert x.bind("q", "k") is True
    assert x.bind("q", "k") is False
    assert x.bind("q", "k", {}) is False
    assert x.bind("q", "k", None) is False
    assert x.bind("q", "k", {"x": 1}) is True
    assert x.bind("q", "k", {"x": 1}) is False
    assert len(x.bindings()) == 2


def test_unbind():
    x = DirectExchange("d")
    x.bind("q1", "k")
    x.bind("q2", "k")
    assert x.unbind("q1", "k") is True
    assert x.unbind("q1", "k") is False
    assert x.unbind("q2", "k", {"nope": 1}) is False
    assert x.unbind("q3", "k") is False
    assert r(x, "k") == ["q2"]


def test_binding_arguments_are_copied():
    x = DirectExchange("d")
    args = {"a": 1}
    x.bind("q", "k", args)
    args["a"] = 2
    assert x.has_binding("q", "k", {"a": 1})
    assert not x.has_binding("q", "k", {"a": 2})


def test_bindings_listing_and_queries():
    x = DirectExchange("d")
    assert not x.has_bindings()
    assert x.bindings() == []
    x.bind("q1", "a")
    x.bind("q2", "b", {"z": [1, {"y": b"v"}]})
    x.bind("q1", "c")
    assert x.bindings() == [("q1", "a", {}), ("q2", "b", {"z": [1, {"y": b"v"}]}),
                            ("q1", "c", {})]
    assert x.has_bindings()
    assert x.has_binding("q1", "a", None)
    assert x.has_binding("q1", "a", {})
    assert x.has_binding("q2", "b", {"z": [1, {"y": b"v"}]})
    assert not x.has_binding("q2", "b", {})
    assert not x.has_binding("q1", "b", None)


def test_unbind_destination():
    x = DirectExchange("d")
    x.bind("q1", "a")
    x.bind("q1", "b")
    x.bind("q1", "b", {"x": 1})
    x.bind("q2", "a")
    assert x.unbind_destination("q1") == 3
    assert x.unbind_destination("q1") == 0
    assert x.bindings() == [("q2", "a", {})]
    assert r(x, "a") == ["q2"]
    assert r(x, "b") == []
    assert x.unbind_destination("q2") == 1
    assert not x.has_bindings()


def test_unbind_destination_exchange_tracks_e2e_count():
    x = DirectExchange("d")
    y = FanoutExchange("f")
    x.bind(y, "a")
    x.bind(y, "b")
    assert x._e2e_bindings == 2
    assert x.unbind_destination(y) == 2
    assert x._e2e_bindings == 0


def test_fanout_ignores_key():
    x = FanoutExchange("f")
    x.bind("q1", "")
    x.bind("q2", "whatever")
    assert r(x, "") == ["q1", "q2"]
    assert r(x, "anything.at.all") == ["q1", "q2"]


def test_fanout_queue_bound_twice_once():
    x = FanoutExchange("f")
    x.bind("q1", "a")
    x.bind("q1", "b")
    x.bind("q2", "a")
    assert r(x, "x") == ["q1", "q2"]
    x.unbind("q1", "a")
    assert r(x, "x") == ["q1", "q2"]
    x.unbind("q1", "b")
    assert r(x, "x") == ["q2"]
    assert FanoutExchange("empty").route("k", None) is not None
    assert not FanoutExchange("empty").route("k", None)


def test_route_does_not_call_get_headers():
    def boom():
        raise AssertionError("called")
    for cls in (DirectExchange, FanoutExchange, TopicExchange):
        x = cls("x")
        x.bind("q", "k")
        assert list(x.route("k", boom)) == ["q"]


@pytest.mark.parametrize("change, field", [
    (dict(type_name="fanout"), "type"),
    (dict(durable=False), "durable"),
    (dict(auto_delete=True), "auto_delete"),
    (dict(internal=True), "internal"),
    (dict(arguments={}), "alternate-exchange"),
    (dict(arguments={"alternate-exchange": "other"}), "alternate-exchange"),
    (dict(type_name="topic", durable=False), "type"),
])
def test_equivalent_reports_first_difference(change, field):
    x = DirectExchange("d", durable=True, arguments={"alternate-exchange": "ae"})
    base = dict(type_name="direct", durable=True, auto_delete=False, internal=False,
                arguments={"alternate-exchange": "ae"})
    assert x.equivalent(**base) is None
    base.update(change)
    assert x.equivalent(**base) == field


def test_equivalent_ignores_other_arguments_and_string_type():
    x = DirectExchange("d", arguments={"x-foo": 1})
    assert x.equivalent("direct", False, False, False, None) is None
    assert x.equivalent("direct", False, False, False, {"x-bar": 2}) is None
    assert x.equivalent("direct", False, False, False, {"alternate-exchange": "a"}) \
        == "alternate-exchange"
    y = DirectExchange("d", arguments={"alternate-exchange": "ae"})
    assert y.equivalent("direct", False, False, False, {"alternate-exchange": b"ae"}) is None
