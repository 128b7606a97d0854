"""route_message / route_message_keys with a ``held`` list: a delayed-message
exchange met anywhere on the path by a message with a positive x-delay
collects ``(exchange, delay)`` and routes nothing now, neither its bindings
nor its alternate exchange (broker/exchanges/routing.py)."""

from broker.exchanges import DelayedMessageExchange, DirectExchange, FanoutExchange, route_message
from broker.exchanges.routing import route_message_keys
from tests.broker.test_routing import Q


def delayed(name, **arguments):
    return DelayedMessageExchange(name, arguments={"x-delayed-type": "fanout", **arguments})


def headers(delay):
    return lambda: {"x-delay": delay}


def test_e2e_to_delayed_exchange_holds_and_rest_routes():
    now_q, source, dx = Q("now"), DirectExchange("src"), delayed("dx")
    for destination in (dx, now_q):
        source.bind(destination, "k")
    dx.bind(Q("later"), "")
    held = []
    assert route_message(source, "k", headers(500), {}.get, held) == [now_q]
    assert held == [(dx, 500)]


def test_without_held_list_or_delay_routes_through():
    q = Q("q")
    source, dx = FanoutExchange("src"), delayed("dx")
    source.bind(dx, "")
    dx.bind(q, "")
    assert route_message(source, "", headers(500), {}.get) == [q]
    for value in (0, -5, "x"):
        held = []
        assert route_message(source, "", headers(value), {}.get, held) == [q]
        assert held == []


def test_first_exchange_delayed_holds():
    dx = delayed("dx")
    dx.bind(Q("q"), "")
    held = []
    assert route_message_keys(dx, ["a", "b"], headers(7), {}.get, held) == []
    assert held == [(dx, 7)]


def test_alternate_exchange_delayed_holds_and_its_own_ae_is_not_used():
    spill_q = Q("spill")
    spill = FanoutExchange("spill")
    spill.bind(spill_q, "")
    dx = delayed("dx", **{"alternate-exchange": "spill"})
    main = DirectExchange("main", arguments={"alternate-exchange": "dx"})
    lookup = {"dx": dx, "spill": spill}.get
    held = []
    assert route_message(main, "nowhere", headers(100), lookup, held) == []
    assert held == [(dx, 100)]


def test_delayed_exchange_reached_twice_holds_once():
    source, mid, dx = FanoutExchange("src"), FanoutExchange("mid"), delayed("dx")
    source.bind(mid, "")
    source.bind(dx, "")
    mid.bind(dx, "")
    held = []
    assert route_message(source, "", headers(1), {}.get, held) == []
    assert held == [(dx, 1)]
