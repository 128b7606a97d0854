"""AMQP 0-9-1 on bytes only: framing, codecs, command assembly, the connection
handshake state machine and reply codes. No asyncio, no sockets, no broker
state (see docs/architecture.md, "Layers")."""
