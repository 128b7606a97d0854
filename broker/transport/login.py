"""The access-control side of one connection (rabbitmq.com/access-control.html):
the handshake's login and connection.open checks against the server's
broker.access.AccessControl, their log lines (issue 19: a refusal names
the user, the client address and the reason, never the password), and
the connection's place in the connection counts the limits apply to."""

from __future__ import annotations

import logging

from protocol.errors import AMQPError

log = logging.getLogger("broker.transport.connection")


class Login:
    """For one broker.transport.connection.Connection (``connection``: its
    ``server``, ``name``, ``peer_address``, ``handshake``; ``grant`` is set
    here). ``authenticate`` and ``open_vhost`` are the handshake's
    callbacks (protocol.handshake.Handshake); ``closed`` uncounts the
    connection once it is gone."""

    def __init__(self, connection):
        self.connection = connection
        #: counted by access control as open (connection limits), until ``closed``
        self.counted = False

    def authenticate(self, username: str, password: str) -> bool:
        """The login check (broker.access.AccessControl.authenticate); a
        refusal is logged with the user, the client address and the reason."""
        connection = self.connection
        user, reason = connection.server.access.authenticate(username, password, connection.peer_address)
        if user is None:
            log.warning("%s: login refused for user '%s' (mechanism %s): %s", connection.name, username,
                        connection.handshake.mechanism, reason)
        return user is not None

    def authenticate_external(self, username: str) -> bool:
        """SASL EXTERNAL: ``username`` is the CN of a client certificate the
        TLS layer verified; it must be a known user, and a loopback-only
        user still needs a loopback address (broker.access.AccessControl.
        authenticate_external; rabbitmq.com/docs/ssl, "Using Client
        Certificates for Authentication"). A refusal is logged."""
        connection = self.connection
        user, reason = connection.server.access.authenticate_external(username, connection.peer_address)
        if user is None:
            log.warning("%s: login refused for user '%s' (mechanism EXTERNAL): %s", connection.name, username,
                        reason)
        return user is not None

    def open_vhost(self, vhost: str) -> None:
        """connection.open: limits, the vhost and the user's access to it
        (530 NOT_ALLOWED, logged with the user and the client address);
        sets the connection's ``grant`` and counts it against the limits."""
        connection = self.connection
        username = connection.handshake.username
        try:
            connection.server.admit_connection()  # the node-wide --max-connections first
            connection.grant = connection.server.access.open_vhost(username, vhost)
        except AMQPError as error:
            log.warning("%s: user '%s' refused vhost '%s': %s", connection.name, username, vhost, error.text)
            raise
        self.counted = True
        connection.server.open_connections += 1

    def closed(self) -> None:
        """The connection is gone: it no longer counts (idempotent)."""
        if self.counted:
            self.counted = False
            connection = self.connection
            connection.server.open_connections -= 1
            connection.server.access.connection_closed(connection.handshake.username, connection.handshake.vhost)
