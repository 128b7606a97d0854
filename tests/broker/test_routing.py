"""route_message: exchange-to-exchange bindings and alternate exchanges, with
the alternate-exchange rule RabbitMQ 3.10 applies (checked on the wire): an
exchange's AE is used when that exchange's own bindings match nothing."""

from broker.exchanges import (DirectExchange, FanoutExchange, HeadersExchange,
                              TopicExchange, route_message)


class Q:
    """A stand-in queue: hashable by identity, like the broker's."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


def no_headers():
    raise AssertionError("get_headers must not be called")


def registry(*exchanges):
    by_name = {x.name: x for x in exchanges}
    return by_name.get


def route(x, key="k", get_headers=no_headers, lookup=None):
    return route_message(x, key, get_headers, lookup or registry())


def test_single_exchange():
    q1, q2 = Q("q1"), Q("q2")
    x = DirectExchange("x")
    x.bind(q1, "k")
    x.bind(q2, "k")
    x.bind(q1, "other")
    assert route(x) == [q1, q2]
    assert route(x, "other") == [q1]
    assert route(x, "none") == []
    assert isinstance(route(x), list)


def test_result_is_a_fresh_list():
    q = Q("q")
    x = FanoutExchange("x")
    x.bind(q, "")
    out = route(x)
    out.append("junk")
    assert route(x) == [q]


def test_e2e_chain():
    q1, q2, q3 = Q("q1"), Q("q2"), Q("q3")
    a, b, c = DirectExchange("a"), TopicExchange("b"), FanoutExchange("c")
    a.bind(b, "k")
    a.bind(q1, "k")
    b.bind(c, "*")
    b.bind(q2, "nomatch.*")
    c.bind(q3, "")
    assert route(a) == [q1, q3]
    assert route(a, "other") == []


def test_e2e_uses_same_routing_key():
    q = Q("q")
    a, b = FanoutExchange("a"), DirectExchange("b")
    a.bind(b, "ignored")
    b.bind(q, "rk")
    assert route(a, "rk") == [q]
    assert route(a, "x") == []


def test_e2e_cycle_terminates():
    q1, q2 = Q("q1"), Q("q2")
    a, b = FanoutExchange("a"), FanoutExchange("b")
    a.bind(b, "")
    b.bind(a, "")
    b.bind(q2, "")
    a.bind(q1, "")
    assert route(a) == [q1, q2]
    assert route(b) == [q2, q1]


def test_self_binding():
    q = Q("q")
    a = FanoutExchange("a")
    a.bind(a, "")
    a.bind(q, "")
    assert route(a) == [q]


def test_queue_reachable_by_two_paths_once():
    q, q2 = Q("q"), Q("q2")
    a, b, c = FanoutExchange("a"), FanoutExchange("b"), FanoutExchange("c")
    a.bind(b, "")
    a.bind(c, "")
    a.bind(q, "")
    b.bind(q, "")
    c.bind(q, "")
    c.bind(q2, "")
    b.bind(c, "")
    assert route(a) == [q, q2]


def test_e2e_unbind_destination():
    q = Q("q")
    a, b = FanoutExchange("a"), FanoutExchange("b")
    a.bind(b, "")
    b.bind(q, "")
    assert route(a) == [q]
    assert a.unbind_destination(b) == 1
    assert route(a) == []


def test_ae_used_only_when_unroutable():
    q, qae = Q("q"), Q("qae")
    ae = FanoutExchange("ae")
    ae.bind(qae, "")
    x = DirectExchange("x", arguments={"alternate-exchange": "ae"})
    x.bind(q, "k")
    lookup = registry(ae, x)
    assert route(x, "k", lookup=lookup) == [q]
    assert route(x, "other", lookup=lookup) == [qae]


def test_ae_missing_is_skipped():
    x = DirectExchange("x", arguments={"alternate-exchange": "nope"})
    assert route(x, "k", lookup=registry(x)) == []


def test_ae_name_as_bytes():
    qae = Q("qae")
    ae = FanoutExchange("ae")
    ae.bind(qae, "")
    x = DirectExchange("x", arguments={"alternate-exchange": b"ae"})
    assert route(x, lookup=registry(ae)) == [qae]


def test_ae_chain():
    qae2 = Q("qae2")
    x = DirectExchange("x", arguments={"alternate-exchange": "ae1"})
    ae1 = DirectExchange("ae1", arguments={"alternate-exchange": "ae2"})
    ae2 = FanoutExchange("ae2")
    ae2.bind(qae2, "")
    assert route(x, lookup=registry(x, ae1, ae2)) == [qae2]


def test_ae_cycle_terminates():
    a = DirectExchange("a", arguments={"alternate-exchange": "b"})
    b = DirectExchange("b", arguments={"alternate-exchange": "a"})
    lookup = registry(a, b)
    assert route(a, lookup=lookup) == []
    self_ae = DirectExchange("s", arguments={"alternate-exchange": "s"})
    assert route(self_ae, lookup=registry(self_ae)) == []


def test_ae_not_used_when_only_match_is_an_exchange_that_matches_nothing():
    # RabbitMQ 3.10: the e2e binding is a match for x, so x's AE is not used.
    qae = Q("qae")
    ae = FanoutExchange("ae")
    ae.bind(qae, "")
    x = FanoutExchange("x", arguments={"alternate-exchange": "ae"})
    inner = DirectExchange("inner")
    x.bind(inner, "")
    assert route(x, lookup=registry(ae, x, inner)) == []


def test_inner_exchange_ae_used_even_if_another_branch_reached_a_queue():
    # RabbitMQ 3.10: AE is decided per exchange on the path.
    q1, qae = Q("q1"), Q("qae")
    ae = FanoutExchange("ae")
    ae.bind(qae, "")
    x = FanoutExchange("x")
    x.bind(q1, "")
    inner = DirectExchange("inner", arguments={"alternate-exchange": "ae"})
    x.bind(inner, "")
    assert route(x, lookup=registry(ae, x, inner)) == [q1, qae]


def test_ae_reaching_an_already_visited_exchange_is_cut():
    q = Q("q")
    x = FanoutExchange("x")
    inner = DirectExchange("inner", arguments={"alternate-exchange": "x"})
    x.bind(inner, "")
    x.bind(q, "")
    assert route(x, lookup=registry(x, inner)) == [q]


def test_ae_then_e2e():
    q = Q("q")
    x = DirectExchange("x", arguments={"alternate-exchange": "ae"})
    ae = FanoutExchange("ae")
    tail = TopicExchange("tail")
    ae.bind(tail, "")
    tail.bind(q, "#")
    assert route(x, lookup=registry(x, ae, tail)) == [q]


def test_get_headers_not_called_without_headers_exchange():
    q = Q("q")
    a, b = DirectExchange("a", arguments={"alternate-exchange": "t"}), FanoutExchange("b")
    t = TopicExchange("t")
    t.bind(b, "#")
    b.bind(q, "")
    assert route(a, get_headers=no_headers, lookup=registry(a, b, t)) == [q]


def test_get_headers_called_once_across_several_headers_exchanges():
    calls = []

    def get():
        calls.append(1)
        return {"h": "1"}

    q1, q2, q3 = Q("q1"), Q("q2"), Q("q3")
    f = FanoutExchange("f")
    h1, h2 = HeadersExchange("h1"), HeadersExchange("h2")
    h3 = HeadersExchange("h3", arguments={"alternate-exchange": "h4"})
    h4 = HeadersExchange("h4")
    f.bind(h1, "")
    f.bind(h2, "")
    f.bind(h3, "")
    h1.bind(q1, "", {"h": "1"})
    h2.bind(q2, "", {"h": None})
    h3.bind(Q("never"), "", {"h": "2"})
    h4.bind(q3, "", {})
    assert route(f, get_headers=get, lookup=registry(h4)) == [q1, q2, q3]
    assert calls == [1]


def test_get_headers_once_when_first_exchange_is_headers_with_ae():
    calls = []

    def get():
        calls.append(1)
        return None

    q = Q("q")
    h = HeadersExchange("h", arguments={"alternate-exchange": "h2"})
    h.bind(Q("never"), "", {"a": "1"})
    h2 = HeadersExchange("h2")
    h2.bind(q, "", {"x-match": "all"})
    assert route(h, get_headers=get, lookup=registry(h2)) == [q]
    assert calls == [1]


def test_get_headers_not_called_when_headers_exchange_is_bindingless():
    h = HeadersExchange("h")
    assert route(h, get_headers=no_headers) == []
