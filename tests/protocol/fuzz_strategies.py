"""Hypothesis strategies shared by the fuzz tests of protocol/: field
tables and basic properties as clients send them (pamqp encodes them),
valid method payloads, and byte-level mutations of any payload.

Every fuzz test runs a bounded number of examples (``FUZZ``), so that
``make test`` stays fast; ``HYPOTHESIS_PROFILE=long`` runs many more."""

from __future__ import annotations

import datetime
import decimal
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from pamqp import commands

settings.register_profile("default", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: short strings: at most 255 UTF-8 bytes
short_text = st.text(max_size=40).filter(lambda text: len(text.encode()) <= 255)
#: queue and exchange names pamqp's constructors accept
names = st.from_regex(r"[A-Za-z0-9_.:-]{0,40}", fullmatch=True)

scalar_values = st.one_of(
    st.booleans(),
    st.integers(-2**63, 2**63 - 1),
    st.text(max_size=30),
    st.binary(max_size=30).map(bytearray),
    st.floats(allow_nan=False, width=32),
    st.none(),
    st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2100, 1, 1),
                 timezones=st.just(datetime.UTC)).map(lambda moment: moment.replace(microsecond=0)),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**6, max_value=10**6),
)
field_values = st.recursive(
    scalar_values,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(short_text, inner, max_size=4)),
    max_leaves=12)
field_tables = st.dictionaries(short_text, field_values, max_size=6)

properties = st.builds(
    commands.Basic.Properties,
    content_type=st.none() | short_text,
    content_encoding=st.none() | short_text,
    headers=st.none() | field_tables,
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 9),
    correlation_id=st.none() | short_text,
    reply_to=st.none() | short_text,
    expiration=st.none() | st.integers(0, 10**9).map(str),
    message_id=st.none() | short_text,
    timestamp=st.none() | st.datetimes(min_value=datetime.datetime(1970, 1, 2),
                                       max_value=datetime.datetime(2100, 1, 1),
                                       timezones=st.just(datetime.UTC)).map(lambda m: m.replace(microsecond=0)),
    message_type=st.none() | short_text,
    user_id=st.none() | short_text,
    app_id=st.none() | short_text,
)

#: methods a client sends, with arbitrary names and arguments
client_methods = st.one_of(
    st.builds(commands.Queue.Declare, queue=names, passive=st.booleans(), durable=st.booleans(),
              exclusive=st.booleans(), auto_delete=st.booleans(), nowait=st.booleans(), arguments=field_tables),
    st.builds(commands.Exchange.Declare, exchange=names, exchange_type=st.sampled_from(["direct", "topic"]),
              durable=st.booleans(), arguments=field_tables),
    st.builds(commands.Queue.Bind, queue=names, exchange=names, routing_key=short_text,
              arguments=field_tables),
    st.builds(commands.Basic.Consume, queue=names, consumer_tag=short_text, no_ack=st.booleans(),
              exclusive=st.booleans(), arguments=field_tables),
    st.builds(commands.Basic.Qos, prefetch_count=st.integers(0, 65535), global_=st.booleans()),
    st.builds(commands.Basic.Cancel, consumer_tag=short_text),
    st.builds(commands.Queue.Delete, queue=names, if_unused=st.booleans(), if_empty=st.booleans()),
    st.builds(commands.Channel.Close, reply_code=st.integers(0, 999), reply_text=short_text,
              class_id=st.integers(0, 65535), method_id=st.integers(0, 65535)),
    st.builds(commands.Connection.StartOk, client_properties=field_tables, mechanism=st.just("PLAIN"),
              response=st.text(max_size=20), locale=short_text),
    st.builds(commands.Connection.TuneOk, channel_max=st.integers(0, 65535), frame_max=st.integers(0, 2**32 - 1),
              heartbeat=st.integers(0, 65535)),
)


@st.composite
def mutated(draw, payloads, keep: int = 0):
    """A payload from ``payloads`` with a few byte-level mutations (cut,
    flip, insert, delete, duplicate a span) past its first ``keep`` bytes."""
    data = bytearray(draw(payloads))
    for _ in range(draw(st.integers(1, 4))):
        if len(data) <= keep:
            data += draw(st.binary(min_size=1, max_size=8))
            continue
        at = draw(st.integers(keep, len(data) - 1))
        action = draw(st.sampled_from(["cut", "flip", "insert", "delete", "repeat", "extreme"]))
        if action == "cut":
            del data[at:]
        elif action == "flip":
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif action == "repeat":
            data[at:at] = data[at:at + draw(st.integers(1, 16))]
        else:  # a length field becomes huge or zero
            data[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff"]))
    return bytes(data)
