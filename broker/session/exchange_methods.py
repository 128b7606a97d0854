"""Handlers for class exchange (AMQP 0-9-1 spec §1.6; RabbitMQ's extensions:
exchange-to-exchange bindings rabbitmq.com/e2e.html, alternate exchanges
rabbitmq.com/ae.html). Each handler takes ``(channel, method)``: the
broker.session.channel.Channel (not imported here: channel.py imports this
module) and the decoded method."""

from __future__ import annotations

import logging

from pamqp import commands

from broker.exchanges import EXCHANGE_TYPES
from broker.model.field_values import printed
from protocol import reply_codes
from protocol.errors import channel_error, connection_error

log = logging.getLogger(__name__)


def declare(channel, method: commands.Exchange.Declare) -> None:
    """exchange.declare. Errors, in RabbitMQ 3.10's order: 503 COMMAND_INVALID
    (connection) for an unknown type, 403 for the default exchange, 403
    without configure permission on the exchange, 403 for a new ``amq.``
    name, 403 for a new one with an alternate-exchange without read
    permission on it or write permission on the alternate, 404 for a
    passive declare of a missing exchange (a passive declare needs no
    permission in RabbitMQ 3.10), 406 for an inequivalent re-declare."""
    vhost = channel.vhost
    name = method.exchange
    if name == "":
        raise channel_error(reply_codes.ACCESS_REFUSED, "operation not permitted on the default exchange")
    if method.passive:
        vhost.find_exchange(name)
    else:
        cls = EXCHANGE_TYPES.get(method.exchange_type)
        if cls is None:
            raise connection_error(reply_codes.COMMAND_INVALID, f"invalid exchange type '{method.exchange_type}'")
        channel.grant.check("configure", "exchange", name)
        exchange = vhost.exchanges.get(name)
        arguments = method.arguments or {}
        if exchange is None:
            if name.startswith("amq."):
                raise channel_error(reply_codes.ACCESS_REFUSED,
                                    f"exchange name '{name}' contains reserved prefix 'amq.*'")
            alternate = arguments.get("alternate-exchange")
            if isinstance(alternate, str):  # rabbitmq.com/ae.html: read on this one, write on the alternate
                channel.grant.check("read", "exchange", name)
                channel.grant.check("write", "exchange", alternate)
            exchange = cls(name, bool(method.durable), bool(method.auto_delete), bool(method.internal), arguments)
            vhost.add_exchange(exchange)
            log.info("%s vhost '%s': exchange '%s' (%s) declared", channel, vhost.name, name, cls.type_name)
        else:
            field = exchange.equivalent(method.exchange_type, bool(method.durable), bool(method.auto_delete),
                                        bool(method.internal), arguments)
            if field is not None:
                received, current = _field_values(method, exchange, field)
                raise channel_error(
                    reply_codes.PRECONDITION_FAILED,
                    f"inequivalent arg '{field}' for exchange '{name}' in vhost '{vhost.name}': "
                    f"received '{received}' but current is '{current}'")
    if not method.nowait:
        channel.send(commands.Exchange.DeclareOk())


def _field_values(method: commands.Exchange.Declare, exchange, field: str) -> tuple[str, str]:
    if field == "type":
        return method.exchange_type, exchange.type_name
    if field in ("durable", "auto_delete", "internal"):
        return printed(getattr(method, field)), printed(getattr(exchange, field))
    return printed((method.arguments or {}).get(field)), printed(exchange.arguments.get(field))


def delete(channel, method: commands.Exchange.Delete) -> None:
    """exchange.delete; a missing exchange is not an error (as RabbitMQ),
    the default exchange is 403, a system one 403, no configure permission
    403, if-unused with bindings 406."""
    vhost = channel.vhost
    name = method.exchange
    if name == "":
        raise channel_error(reply_codes.ACCESS_REFUSED, "operation not permitted on the default exchange")
    if name.startswith("amq."):
        raise channel_error(reply_codes.ACCESS_REFUSED,
                            f"deletion of system exchange '{name}' in vhost '{vhost.name}' not allowed")
    channel.grant.check("configure", "exchange", name)
    exchange = vhost.exchanges.get(name)
    if exchange is not None:
        if method.if_unused and exchange.has_bindings():
            raise channel_error(reply_codes.PRECONDITION_FAILED,
                                f"exchange '{name}' in vhost '{vhost.name}' in use")
        vhost.delete_exchange(exchange)
        log.info("%s vhost '%s': exchange '%s' deleted", channel, vhost.name, name)
    if not method.nowait:
        channel.send(commands.Exchange.DeleteOk())


def bind(channel, method: commands.Exchange.Bind) -> None:
    """exchange.bind (e2e): 403 without permissions (``check_binding``),
    404 for a missing source or destination, 403 for the default exchange,
    406 for invalid binding arguments."""
    vhost = channel.vhost
    check_binding(channel, method.source, "exchange", method.destination)
    source = vhost.exchange_for_binding(method.source)
    destination = vhost.exchange_for_binding(method.destination)
    vhost.bind(source, destination, method.routing_key, method.arguments or {})
    if not method.nowait:
        channel.send(commands.Exchange.BindOk())


def unbind(channel, method: commands.Exchange.Unbind) -> None:
    """exchange.unbind; 403 without permissions (``check_binding``); a
    missing exchange or binding is not an error (as RabbitMQ); the default
    exchange is 403."""
    vhost = channel.vhost
    check_binding(channel, method.source, "exchange", method.destination)
    if method.destination == "" or method.source == "":
        vhost.exchange_for_binding("")
    destination = vhost.exchanges.get(method.destination)
    source = vhost.exchanges.get(method.source)
    if source is not None and destination is not None:
        vhost.unbind(source, destination, method.routing_key, method.arguments or {})
    if not method.nowait:
        channel.send(commands.Exchange.UnbindOk())


def check_binding(channel, source: str, kind: str, destination: str) -> None:
    """A bind or unbind from the exchange ``source`` to the ``kind``
    ("queue" or "exchange") ``destination`` needs write on the destination,
    then (after the default exchange's 403) read on the source, in RabbitMQ
    3.10's order (rabbit_channel binding_action); 403 ACCESS_REFUSED."""
    channel.grant.check("write", kind, destination)
    if source == "" or (kind == "exchange" and destination == ""):
        channel.vhost.exchange_for_binding("")
    channel.grant.check("read", "exchange", source)


HANDLERS = {
    commands.Exchange.Declare: declare,
    commands.Exchange.Delete: delete,
    commands.Exchange.Bind: bind,
    commands.Exchange.Unbind: unbind,
}
