"""The property-flag tests of broker/model/message_headers.py against
content headers encoded by pamqp (AMQP 0-9-1 spec §4.2.6.1, basic
properties of §1.8): each test answers for its own property only."""

import pytest
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from broker.model.message_headers import (has_delivery_mode, has_expiration, has_publish_checked_property,
                                          has_user_id)


def _header(**properties) -> bytes:
    return ContentHeader(0, 10, Basic.Properties(**properties)).marshal()


@pytest.mark.parametrize("properties, expiration, delivery_mode, user_id", [
    ({}, False, False, False),
    ({"expiration": "100"}, True, False, False),
    ({"delivery_mode": 2}, False, True, False),
    ({"user_id": "guest"}, False, False, True),
    ({"expiration": "1", "delivery_mode": 1, "user_id": "u", "priority": 3, "message_id": "m",
      "headers": {"a": 1}}, True, True, True),
    ({"priority": 9, "message_id": "m", "correlation_id": "c", "app_id": "x", "message_type": "t"},
     False, False, False),
])
def test_each_flag_answers_for_its_property(properties, expiration, delivery_mode, user_id):
    header = _header(**properties)
    assert has_expiration(header) is expiration
    assert has_delivery_mode(header) is delivery_mode
    assert has_user_id(header) is user_id
    assert has_publish_checked_property(header) is (expiration or user_id)


def test_a_truncated_header_has_no_expiration():
    assert has_expiration(b"\x00" * 12) is False
