"""Headers exchange matching, RabbitMQ 3.10 semantics (checked on the wire
against rabbit_exchange_type_headers): x-match all/any/all-with-x/any-with-x,
x- arguments ignored unless -with-x, void arguments test presence."""

import pytest

from broker.exchanges import HeadersExchange


def matches(args, headers):
    x = HeadersExchange("h")
    x.bind("q", "", args)
    return list(x.route("", lambda: headers)) == ["q"]


@pytest.mark.parametrize("args, headers, expected", [
    # no x-match means all
    ({}, None, True),
    ({}, {"a": "1"}, True),
    ({"a": "1"}, {"a": "1"}, True),
    ({"a": "1"}, {"a": "1", "b": "2"}, True),
    ({"a": "1"}, {"a": "2"}, False),
    ({"a": "1"}, None, False),
    ({"a": "1"}, {}, False),
    # all
    ({"x-match": "all"}, None, True),
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}, True),
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1"}, False),
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "3"}, False),
    # any
    ({"x-match": "any"}, None, False),
    ({"x-match": "any"}, {"a": "1"}, False),
    ({"x-match": "any", "a": "1", "b": "2"}, {"b": "2"}, True),
    ({"x-match": "any", "a": "1", "b": "2"}, {"a": "9", "b": "9"}, False),
    ({"x-match": "any", "a": "1", "b": "2"}, None, False),
    # x- arguments are ignored by all/any ...
    ({"x-match": "all", "x-foo": "1"}, None, True),
    ({"x-match": "all", "x-foo": "1"}, {"x-foo": "2"}, True),
    ({"x-match": "all", "a": "1", "x-foo": "1"}, {"a": "1"}, True),
    ({"x-match": "any", "x-foo": "1"}, {"x-foo": "1"}, False),
    ({"x-match": "any", "x-foo": "1", "a": "1"}, {"a": "1"}, True),
    # ... and compared by the -with-x variants
    ({"x-match": "all-with-x", "x-foo": "1"}, None, False),
    ({"x-match": "all-with-x", "x-foo": "1"}, {"x-foo": "1"}, True),
    ({"x-match": "all-with-x", "x-foo": "1"}, {"x-foo": "2"}, False),
    ({"x-match": "all-with-x", "a": "1", "x-foo": "1"}, {"a": "1"}, False),
    ({"x-match": "all-with-x", "a": "1", "x-foo": "1"}, {"a": "1", "x-foo": "1"}, True),
    ({"x-match": "any-with-x", "x-foo": "1"}, {"x-foo": "1"}, True),
    ({"x-match": "any-with-x", "x-foo": "1", "a": "1"}, {"x-foo": "0", "a": "0"}, False),
    ({"x-match": "any-with-x"}, {"x-foo": "1"}, False),
    ({"x-match": "all-with-x"}, None, True),
    # the x-match argument never matches against a header of that name
    ({"x-match": "all-with-x"}, {"x-match": "any"}, True),
    ({"x-match": "any-with-x"}, {"x-match": "any-with-x"}, False),
    # void (None) binding values test presence only
    ({"a": None}, {"a": "anything"}, True),
    ({"a": None}, {"a": None}, True),
    ({"a": None}, {"b": "1"}, False),
    ({"a": None}, None, False),
    ({"x-match": "any", "a": None, "b": "2"}, {"a": 5}, True),
    ({"x-match": "any", "a": None, "b": "2"}, {"c": 5}, False),
    ({"a": "1"}, {"a": None}, False),
    # str and bytes are the same longstr on the wire
    ({"a": "abc"}, {"a": b"abc"}, True),
    ({"a": b"abc"}, {"a": "abc"}, True),
    ({"a": "é"}, {"a": "é".encode()}, True),
    ({"a": "abc"}, {"a": b"abd"}, False),
    ({"x-match": "any", "a": "abc"}, {"a": b"abc"}, True),
    # numbers: 1 == 1.0, but a boolean is never a number
    ({"a": 1}, {"a": 1}, True),
    ({"a": 1}, {"a": 1.0}, True),
    ({"a": 1}, {"a": True}, False),
    ({"a": True}, {"a": 1}, False),
    ({"a": True}, {"a": True}, True),
    ({"a": 1}, {"a": "1"}, False),
    ({"a": 1}, {"a": 2}, False),
    # nested tables and arrays
    ({"a": {"k": "v"}}, {"a": {"k": b"v"}}, True),
    ({"a": [1, "x"]}, {"a": [1, b"x"]}, True),
    ({"a": [1]}, {"a": [True]}, False),
    ({"a": {"k": 1}}, {"a": {"k": 1, "j": 2}}, False),
])
def test_headers_match(args, headers, expected):
    assert matches(args, headers) is expected


@pytest.mark.parametrize("value, message", [
    ("bogus", 'Invalid x-match field value <<"bogus">>; expected all, any, '
              "all-with-x, or any-with-x"),
    ("ALL", 'Invalid x-match field value <<"ALL">>'),
    (5, "Invalid x-match field type signedint (value 5); expected longstr"),
    (None, "Invalid x-match field type void (value undefined); expected longstr"),
    (True, "Invalid x-match field type bool"),
])
def test_invalid_x_match_rejected_at_bind(value, message):
    x = HeadersExchange("h")
    with pytest.raises(ValueError) as exc:
        x.bind("q", "", {"x-match": value})
    assert message in str(exc.value)
    assert not x.has_bindings()
    assert x.bindings() == []


def test_x_match_as_bytes_accepted():
    assert matches({"x-match": b"any", "a": "1"}, {"a": "1", "b": "2"})


def test_binding_key_is_ignored_for_matching_but_identifies_binding():
    x = HeadersExchange("h")
    assert x.bind("q", "k1", {"a": "1"})
    assert x.bind("q", "k2", {"a": "1"})
    assert not x.bind("q", "k2", {"a": "1"})
    assert list(x.route("zzz", lambda: {"a": "1"})) == ["q"]
    assert x.unbind("q", "k1", {"a": "1"})
    assert list(x.route("", lambda: {"a": "1"})) == ["q"]
    assert x.unbind("q", "k2", {"a": "1"})
    assert list(x.route("", lambda: {"a": "1"})) == []


def test_several_queues_each_once_in_binding_order():
    x = HeadersExchange("h")
    x.bind("q2", "", {"a": "1"})
    x.bind("q1", "", {"x-match": "any", "a": "1", "b": "2"})
    x.bind("q2", "", {"b": "2"})
    x.bind("q3", "", {"c": "3"})
    assert list(x.route("", lambda: {"a": "1", "b": "2"})) == ["q2", "q1"]


def test_get_headers_called_once_and_not_when_unbound():
    calls = []

    def get():
        calls.append(1)
        return {"a": "1"}

    x = HeadersExchange("h")
    assert list(x.route("", get)) == []
    assert calls == []
    x.bind("q1", "", {"a": "1"})
    x.bind("q2", "", {"a": None})
    assert list(x.route("", get)) == ["q1", "q2"]
    assert calls == [1]


def test_unbind_destination_headers():
    x = HeadersExchange("h")
    x.bind("q1", "", {"a": "1"})
    x.bind("q1", "", {"b": "1"})
    x.bind("q2", "", {"a": "1"})
    assert x.unbind_destination("q1") == 2
    assert list(x.route("", lambda: {"a": "1", "b": "1"})) == ["q2"]
    assert len(x._entries) == 1
