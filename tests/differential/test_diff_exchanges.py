"""Differential: alternate exchanges, exchange-to-exchange bindings, and
CC/BCC sender-selected distribution.

Rules from https://www.rabbitmq.com/ae.html, https://www.rabbitmq.com/e2e.html
and https://www.rabbitmq.com/sender-selected.html.
"""

from __future__ import annotations

from tests.differential.scenario_tools import scope


def alternate_exchanges(url: str):
    """Unroutable messages go to the alternate exchange (and are then not
    returned to a mandatory publisher); AE chains are followed; a missing AE
    or an AE cycle that routes nowhere means unroutable (mandatory: returned)."""
    with scope(url) as s:
        ae2 = s.exchange("ae2", "fanout")
        ae1 = s.exchange("ae1", "direct", **{"alternate-exchange": "@ae2"})
        x = s.exchange("x", "direct", **{"alternate-exchange": "@ae1"})
        missing = s.exchange("missing-ae", "direct", **{"alternate-exchange": "@never-declared"})
        loop_a = s.exchange("loop-a", "direct", **{"alternate-exchange": "@loop-b"})
        s.exchange("loop-b", "direct", **{"alternate-exchange": "@loop-a"})
        routed, via_ae1, via_ae2 = s.queue("routed"), s.queue("via-ae1"), s.queue("via-ae2")
        s.ch.queue_bind(routed, x, "k")
        s.ch.queue_bind(via_ae1, ae1, "ae1-key")
        s.ch.queue_bind(via_ae2, ae2)
        outcome = {
            "routed": s.publish(x, "k", "routed", mandatory=True),
            "to-ae1": s.publish(x, "ae1-key", "to-ae1", mandatory=True),
            "to-ae2": s.publish(x, "nowhere", "to-ae2", mandatory=True),
            "missing-ae": s.publish(missing, "k", "m", mandatory=True),
            "missing-ae-plain": s.publish(missing, "k", "m"),
            "ae-cycle": s.publish(loop_a, "k", "c", mandatory=True),
        }
        queues = {name: s.drain(s.name(name), "body", "exchange", "routing_key")
                  for name in ("routed", "via-ae1", "via-ae2")}
        return {"outcome": outcome, "queues": queues}


def test_alternate_exchange(differential):
    differential(alternate_exchanges, {
        "outcome": {"routed": "ack", "to-ae1": "ack", "to-ae2": "ack", "missing-ae": "returned",
                    "missing-ae-plain": "ack", "ae-cycle": "returned"},
        "queues": {"routed": [{"body": "routed", "exchange": "<x>", "routing_key": "k"}],
                   "via-ae1": [{"body": "to-ae1", "exchange": "<x>", "routing_key": "ae1-key"}],
                   "via-ae2": [{"body": "to-ae2", "exchange": "<x>", "routing_key": "nowhere"}]},
    })


def exchange_to_exchange(url: str):
    """e2e bindings route through the destination exchange with the original
    routing key; cycles and diamonds deliver once per queue; the AE of an
    exchange reached through a binding applies when it routes nowhere;
    unbinding stops the flow."""
    with scope(url) as s:
        src = s.exchange("src", "topic")
        dst = s.exchange("dst", "direct", **{"alternate-exchange": "@dst-ae"})
        dst_ae = s.exchange("dst-ae", "fanout")
        loop = s.exchange("loop", "fanout")
        s.ch.exchange_bind(dst, src, "a.*")
        s.ch.exchange_bind(loop, dst, "a.b")
        s.ch.exchange_bind(dst, loop)             # cycle dst -> loop -> dst
        s.ch.exchange_bind(loop, src, "#")        # diamond src -> loop as well
        q, q_loop, q_ae = s.queue("q"), s.queue("q-loop"), s.queue("q-ae")
        s.ch.queue_bind(q, dst, "a.b")
        s.ch.queue_bind(q_loop, loop)
        s.ch.queue_bind(q_ae, dst_ae)
        outcome = {
            "a.b": s.publish(src, "a.b", "ab", mandatory=True),
            "a.c": s.publish(src, "a.c", "ac", mandatory=True),
            "z": s.publish(src, "z", "z", mandatory=True),
        }
        s.ch.exchange_unbind(loop, src, "#")
        s.ch.exchange_unbind(dst, src, "a.*")
        outcome["after-unbind"] = s.publish(src, "a.b", "gone", mandatory=True)
        queues = {name: s.drain(s.name(name), "body", "exchange", "routing_key") for name in ("q", "q-loop", "q-ae")}
        return {"outcome": outcome, "queues": queues}


def test_exchange_to_exchange_bindings(differential):
    def seen(*pairs):
        return [{"body": b, "exchange": "<src>", "routing_key": k} for b, k in pairs]

    differential(exchange_to_exchange, {
        "outcome": {"a.b": "ack", "a.c": "ack", "z": "ack", "after-unbind": "returned"},
        "queues": {"q": seen(("ab", "a.b")), "q-loop": seen(("ab", "a.b"), ("ac", "a.c"), ("z", "z")),
                   "q-ae": seen(("ac", "a.c"), ("z", "z"))},  # z: src -> loop -> dst -> AE
    })


def exchange_binding_errors(url: str):
    """Reply codes and texts for bad exchange.bind calls."""
    with scope(url) as s:
        x = s.exchange("x", "direct")
        missing = s.name("missing")
        return [
            s.error(lambda: s.ch.exchange_bind(missing, x, "k")),
            s.error(lambda: s.ch.exchange_bind(x, missing, "k")),
            s.error(lambda: s.ch.exchange_bind("", x, "k")),
            s.error(lambda: s.ch.exchange_bind(x, "", "k")),
        ]


def test_exchange_binding_errors(differential):
    differential(exchange_binding_errors, [
        (404, "NOT_FOUND - no exchange '<missing>' in vhost '/'"),
        (404, "NOT_FOUND - no exchange '<missing>' in vhost '/'"),
        (403, "ACCESS_REFUSED - operation not permitted on the default exchange"),
        (403, "ACCESS_REFUSED - operation not permitted on the default exchange"),
    ])


def cc_bcc(url: str):
    """CC and BCC header keys are extra routing keys at every exchange hop;
    each queue gets one copy; BCC is removed from what consumers see, CC is
    not; the default exchange routes CC keys to queues by name."""
    with scope(url) as s:
        x = s.exchange("x", "direct")
        topic = s.exchange("topic", "topic")
        s.ch.exchange_bind(topic, x, "to-topic")
        names = {}
        for key in ("main", "cc", "bcc", "both", "unbound", "by-pattern", "by-name"):
            names[key] = s.queue(key)
        for key in ("main", "cc", "bcc", "both"):
            s.ch.queue_bind(names[key], x, key)
        s.ch.queue_bind(names["both"], x, "cc")
        s.ch.queue_bind(names["by-pattern"], topic, "*.orders")
        outcome = [
            s.publish(x, "main", "m1", headers={"CC": ["cc", "to-topic"], "BCC": ["bcc", "eu.orders"], "app": "x"}),
            s.publish(x, "nowhere", "m2", mandatory=True, headers={"BCC": ["bcc"]}),
            s.publish("", names["main"], "m3", headers={"CC": [names["by-name"]]}),
        ]
        queues = {key: s.drain(real, "body", "routing_key", "headers") for key, real in names.items()}
        return {"outcome": outcome, "queues": queues}


def test_cc_and_bcc(differential):
    def seen(body, key, headers):
        return {"body": body, "routing_key": key, "headers": headers}

    m1 = {"CC": ["cc", "to-topic"], "app": "x"}
    differential(cc_bcc, {
        "outcome": ["ack", "ack", "ack"],
        "queues": {"main": [seen("m1", "main", m1), seen("m3", "<main>", {"CC": ["<by-name>"]})],
                   "cc": [seen("m1", "main", m1)], "bcc": [seen("m1", "main", m1), seen("m2", "nowhere", {})],
                   "both": [seen("m1", "main", m1)], "unbound": [],
                   "by-pattern": [seen("m1", "main", m1)],
                   "by-name": [seen("m3", "<main>", {"CC": ["<by-name>"]})]},
    })


def cc_errors(url: str):
    """A CC/BCC header that is not an array is refused; non-string array
    elements are ignored."""
    with scope(url) as s:
        q = s.queue("q")
        return {"cc-string": s.error(lambda: s.publish("", q, "a", headers={"CC": "x"})),
                "bcc-number": s.error(lambda: s.publish("", q, "b", headers={"BCC": 5})),
                "cc-mixed": s.publish("", "nowhere", "c", mandatory=True, headers={"CC": [7, q]}),
                "q": s.drain(q, "body")}


def test_cc_header_errors(differential):
    differential(cc_errors, {
        "cc-string": (406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}'),
        "bcc-number": (406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"BCC",signedint}'),
        "cc-mixed": "ack", "q": ["c"],
    })
