"""broker/model/field_values.py: how argument and header values are read
(AMQP field values as pamqp decodes them) and printed in RabbitMQ's
inequivalent-arg errors."""

from broker.model.field_values import integer, printed, text


def test_integer_takes_ints_of_any_size_but_not_booleans():
    assert integer(5) == 5
    assert integer(-(1 << 40)) == -(1 << 40)
    assert integer(0) == 0
    assert integer(True) is None
    assert integer("5") is None
    assert integer(5.0) is None
    assert integer(None) is None


def test_text_decodes_long_strings_and_leaves_the_rest():
    assert text(b"dlx") == "dlx"
    assert text(bytearray(b"dlx")) == "dlx"
    assert text("dlx") == "dlx"
    assert text(b"\xff") == "\ufffd"
    assert text(None) is None
    assert text(7) == 7


def test_printed_as_rabbitmq_prints_values():
    assert printed(True) == "true"
    assert printed(False) == "false"
    assert printed(10) == "10"
    assert printed("ae") == "ae"
    assert printed(None) == "None"
