"""The transport layer: one AMQP connection over asyncio. The asyncio
``Protocol`` (``asyncio_protocol``), the connection state machine with its
handshake, channel table and heartbeats (``connection``), output batching
and the WAL-fsync hold (``output``) and publisher flow control
(``flow_control``). Hands frames to the session layer; knows nothing of
queues (docs/architecture.md, "Layers")."""
