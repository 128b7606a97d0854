"""What recovery keeps of replayed WAL records so that message TTL
deadlines keep counting across a restart and byte limits know the sizes of
recovered messages (broker/queues/lifecycle.py ``QueueLifecycle.restored``);
messages of queues without TTL or byte limit cost nothing."""

from __future__ import annotations

from broker.model.message_headers import has_expiration
from broker.queues.message_ttl import message_expiration


def replay_keeper(storage):
    """For ``Storage.open(keep=...)``: what recovery needs of a replayed
    MESSAGE record to restore deadlines and byte counts,
    ``(at_ms, expiration or None, body_length)``, kept only for messages
    with an expiration property or in a queue with x-message-ttl or
    x-max-length-bytes (others cost nothing)."""
    wanted: set | None = None

    def keep(record):
        nonlocal wanted
        if wanted is None:
            _exchanges, queues, _bindings = storage.topology.load()
            wanted = {(row.vhost, row.name) for row in queues
                      if "x-message-ttl" in row.arguments or "x-max-length-bytes" in row.arguments}
        expiring = has_expiration(record.header)
        if not expiring and not any((record.vhost, name) in wanted for name in record.queues):
            return None
        expiration = None
        if expiring:
            expiration = message_expiration(record.header)
        return (record.at_ms, None if expiration is None else str(expiration), record.body_length)
    return keep
