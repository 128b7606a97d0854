"""Content-header properties to columns: the struct fast path agrees with
pamqp's ContentHeader().unmarshal; headers become JSON as documented."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import random
import struct

import pytest
from pamqp import commands, header

from storage.mirror.properties import decode_properties, fast_properties, headers_json

FIELDS = {
    "content_type": lambda r: r.choice(["application/json", "text/plain", ""]),
    "content_encoding": lambda r: r.choice(["gzip", "utf-8"]),
    "headers": lambda r: r.choice([{}, {"a": 1}, {"x-death": [{"count": 1, "queue": "q"}],
                                                  "f": 1.5, "b": False, "s": "é", "z": None}]),
    "delivery_mode": lambda r: r.choice([1, 2]),
    "priority": lambda r: r.randint(0, 9),
    "correlation_id": lambda r: f"corr-{r.randint(0, 10**6)}",
    "reply_to": lambda r: "amq.rabbitmq.reply-to",
    "expiration": lambda r: str(r.randint(1, 10**6)),
    "message_id": lambda r: "m" * r.randint(0, 255),
    "timestamp": lambda r: datetime.datetime(2020 + r.randint(0, 10), 1, 2, 3, 4, 5),
    "message_type": lambda r: "order.created",
    "user_id": lambda r: "guest",
    "app_id": lambda r: "app-ü",
}


def marshal(**props) -> bytes:
    return header.ContentHeader(0, 123, commands.Basic.Properties(**props)).marshal()


def test_fast_path_matches_pamqp_on_random_property_sets():
    rnd = random.Random(7)
    for _ in range(2000):
        props = {name: make(rnd) for name, make in FIELDS.items() if rnd.random() < 0.5}
        data = marshal(**props)
        assert fast_properties(data) == decode_properties(data), props


def test_every_property_lands_in_its_column():
    data = marshal(content_type="ct", content_encoding="ce", headers={"h": 1}, delivery_mode=2,
                   priority=7, correlation_id="ci", reply_to="rt", expiration="ex",
                   message_id="mi", timestamp=datetime.datetime(2026, 1, 1), message_type="ty",
                   user_id="ui", app_id="ai")
    ts = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    assert fast_properties(data) == ("mi", "ci", "ct", "ce", "ty", "ai", "ui", ts, 7, "ex", 2,
                                     "rt", '{"h":1}')
    assert fast_properties(marshal()) == (None,) * 13


def test_odd_headers_fall_back_or_degrade_gracefully():
    # a second flag word (continuation bit): pamqp decides
    data = marshal(message_id="m")
    flags = struct.unpack_from(">H", data, 12)[0] | 1
    odd = data[:12] + struct.pack(">HH", flags, 0) + data[14:]
    assert fast_properties(odd) == decode_properties(odd)
    assert fast_properties(odd)[0] == "m"
    # a short string that is not UTF-8: pamqp raises, the fast path replaces
    raw = bytearray(marshal(message_id="ab"))
    raw[-2:] = b"\xff\xfe"
    assert fast_properties(bytes(raw))[0] == "\ufffd\ufffd"
    with pytest.raises(Exception):
        fast_properties(bytes(raw) + b"extra")            # trailing junk: pamqp raises too


def test_headers_json_mapping():
    value = {"s": "text", "i": -5, "f": 0.25, "t": True, "n": None, "l": [1, "x", [2]],
             "d": {"nested": {"deep": 1}}, "b": b"utf8 bytes", "raw": b"\xff\x00",
             "ts": datetime.datetime(2026, 5, 9, 7, 0, 0, tzinfo=datetime.timezone.utc),
             "naive": datetime.datetime(2026, 5, 9), "dec": decimal.Decimal("1.25")}
    doc = json.loads(headers_json(value))
    assert doc == {"s": "text", "i": -5, "f": 0.25, "t": True, "n": None, "l": [1, "x", [2]],
                   "d": {"nested": {"deep": 1}}, "b": "utf8 bytes",
                   "raw": {"$base64": base64.b64encode(b"\xff\x00").decode()},
                   "ts": "2026-05-09T07:00:00Z", "naive": "2026-05-09T00:00:00Z", "dec": "1.25"}
    assert headers_json(None) is None
    assert headers_json({"é": "ü"}) == '{"é":"ü"}'           # UTF-8 text, not \\u escapes
