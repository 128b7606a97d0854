"""Leveret: the AMQP 0-9-1 server (transport, connections, channels, vhosts,
exchanges, queues, consumers, confirms, config, command line)."""

__version__ = "0.1.0"
