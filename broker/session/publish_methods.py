"""basic.publish (AMQP 0-9-1 spec §1.8.3.7): the checks RabbitMQ makes
before routing (exchange exists and is not internal, user-id, expiration;
rabbitmq.com/validated-user-id.html), then the vhost's publish pipeline
(broker/vhost/publish.py), whose outcome broker/session/publish_answer.py
turns into basic.return and the publisher confirm (docs/architecture.md,
"One publish")."""

from __future__ import annotations

from broker.queues import message_ttl
from broker.model.message import Message
from broker.model.message_headers import has_expiration, has_user_id
from broker.session.publish_answer import answer
from broker.vhost.publish import publish as publish_pipeline
from protocol import reply_codes
from protocol.errors import channel_error, connection_error


def publish(channel, publish_args: tuple, header: bytes, body: bytes) -> None:
    """A complete basic.publish command (``publish_args`` as decoded by
    ``protocol.hot_methods.decode_publish``): through the vhost's publish
    pipeline (broker/vhost/publish.py), then basic.return and the publisher
    confirm (broker/session/publish_answer.py); or held in a transaction.

    Errors: 403 ACCESS_REFUSED (no write permission on the exchange, the
    default one counting as amq.default: broker/access/permissions.py),
    404 NOT_FOUND (no such exchange), 403 ACCESS_REFUSED (internal
    exchange), 406 PRECONDITION_FAILED (user-id property is not the
    connection's user, as RabbitMQ checks: rabbitmq.com/validated-user-id.html)
    are channel errors; immediate=true is 540 NOT_IMPLEMENTED on the
    connection, as in RabbitMQ.
    """
    exchange_name, routing_key, mandatory, immediate = publish_args
    if immediate:
        raise connection_error(reply_codes.NOT_IMPLEMENTED, "immediate=true")
    if exchange_name not in channel.writable:  # before the lookup, as RabbitMQ: 403 even when missing
        channel.grant.check_publish(exchange_name)
    vhost = channel.vhost
    exchange = vhost.exchanges.get(exchange_name)
    if exchange is None:
        raise channel_error(reply_codes.NOT_FOUND, f"no exchange '{exchange_name}' in vhost '{vhost.name}'")
    if exchange.internal:
        raise channel_error(reply_codes.ACCESS_REFUSED,
                            f"cannot publish to internal exchange '{exchange_name}' in vhost '{vhost.name}'")
    message = Message(exchange_name, routing_key, header, body)
    if has_user_id(header):
        _check_user_id(channel, message)
    if has_expiration(header):  # 406 when invalid (broker/queues/message_ttl.py)
        message_ttl.check_expiration(message)
    if channel.tx is not None:
        channel.tx.add_publish(exchange, message, mandatory)
        return
    answer(channel, message, publish_pipeline(vhost, exchange, message), mandatory)


def _check_user_id(channel, message: Message) -> None:
    try:
        user_id = message.properties.user_id
    except ValueError:
        raise connection_error(reply_codes.SYNTAX_ERROR, "malformed content header properties") from None
    if user_id is not None and user_id != channel.connection.username:
        raise channel_error(reply_codes.PRECONDITION_FAILED,
                            f"user_id property set to '{user_id}' but authenticated user was "
                            f"'{channel.connection.username}'")
