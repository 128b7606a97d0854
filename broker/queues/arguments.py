"""Validation of queue.declare arguments, with RabbitMQ's reply texts
(rabbitmq.com/queues.html#optional-arguments; rabbit_amqqueue.erl's
declare_args checks)."""

from __future__ import annotations

from broker.model.field_values import text
from protocol import reply_codes
from protocol.errors import AMQPError, channel_error

OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_TYPES = ("classic", "quorum")
QUEUE_MODES = ("default", "lazy")


def integer_problem(value) -> str | None:
    """RabbitMQ's reason text when ``value`` is not an integer argument
    (``"expected integer, got longstr"``, quoted as RabbitMQ prints it), else
    None. Shared with basic.consume's x-priority check
    (broker/queues/consumer_selection.py)."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "longstr" if isinstance(value, (str, bytes)) else type(value).__name__
        return f'"expected integer, got {kind}"'  # quoted, as RabbitMQ prints it (~p)
    return None


def _non_negative(value) -> str | None:
    return integer_problem(value) or (f"{{value_negative,{value}}}" if value < 0 else None)


def _positive(value) -> str | None:
    problem = _non_negative(value)
    if problem is None and value == 0:
        return "{value_zero,0}"
    return problem


def _priority(value) -> str | None:
    problem = _non_negative(value)
    if problem is None and value > 255:
        return f"{{max_value_exceeded,{value}}}"
    return problem


def _field_type(value) -> str:
    """RabbitMQ's name for the AMQP field type of a decoded argument value."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -2**31 <= value < 2**31 else "long"
    return {str: "longstr", bytes: "longstr", float: "double", dict: "table", list: "array",
            type(None): "void"}.get(type(value), type(value).__name__)


def _boolean(value) -> str | None:
    """x-single-active-consumer: RabbitMQ's check_bool_arg names the AMQP
    field type it got instead ({unacceptable_type,signedint})."""
    return None if isinstance(value, bool) else f"{{unacceptable_type,{_field_type(value)}}}"


def _string(value) -> str | None:
    """x-dead-letter-routing-key: a longstr (check_dlxrk_arg)."""
    return None if isinstance(value, (str, bytes)) else f"{{unacceptable_type,{_field_type(value)}}}"


def _one_of(choices: tuple, what: str):
    def check(value) -> str | None:
        if text(value) in choices:
            return None
        return "invalid_overflow" if what == "overflow" else f"unsupported queue {what} '{text(value)}'"
    return check


CHECKS = {
    "x-message-ttl": _non_negative,
    "x-expires": _positive,
    "x-max-length": _non_negative,
    "x-max-length-bytes": _non_negative,
    "x-max-priority": _priority,
    "x-delivery-limit": _non_negative,
    "x-overflow": _one_of(OVERFLOW_MODES, "overflow"),
    "x-queue-type": _one_of(QUEUE_TYPES, "type"),
    "x-queue-mode": _one_of(QUEUE_MODES, "mode"),
    "x-single-active-consumer": _boolean,
    "x-consumer-timeout": _non_negative,
    "x-dead-letter-routing-key": _string,
}


def validate(queue_name: str, vhost_name: str, arguments: dict) -> None:
    """Raise a channel-level AMQPError 406 PRECONDITION_FAILED
    ``invalid arg '<arg>' for queue '<q>' in vhost '<v>': <reason>`` for the
    first invalid argument; unknown arguments are accepted, as RabbitMQ
    does. A non-string x-dead-letter-exchange gets RabbitMQ's other wording,
    ``invalid type '<type>' for arg 'x-dead-letter-exchange' in queue ...``."""
    dlx = arguments.get("x-dead-letter-exchange")
    if dlx is not None and not isinstance(dlx, (str, bytes)):
        raise channel_error(reply_codes.PRECONDITION_FAILED,
                            f"invalid type '{_field_type(dlx)}' for arg 'x-dead-letter-exchange' in queue "
                            f"'{queue_name}' in vhost '{vhost_name}'")
    for key, check in CHECKS.items():
        if key in arguments:
            problem = check(arguments[key])
            if problem is not None:
                raise invalid_argument(key, queue_name, vhost_name, problem)
    if "x-dead-letter-routing-key" in arguments and "x-dead-letter-exchange" not in arguments:
        raise invalid_argument("x-dead-letter-routing-key", queue_name, vhost_name, "routing_key_but_no_dlx_defined")


def invalid_argument(key: str, queue_name: str, vhost_name: str, problem: str) -> AMQPError:
    """The channel error 406 PRECONDITION_FAILED ``invalid arg '<key>' for
    queue '<q>' in vhost '<v>': <problem>`` (rabbit_amqqueue's wording, for
    queue.declare and basic.consume arguments)."""
    return channel_error(reply_codes.PRECONDITION_FAILED,
                         f"invalid arg '{key}' for queue '{queue_name}' in vhost '{vhost_name}': {problem}")
