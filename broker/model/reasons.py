"""Why a message left a queue (or a delayed exchange's holder): the reason
the broker hands to its store with every removal, kept by the WAL as the
reason byte of its ACK record and shown by the message database.

The values are the WAL's own codes (storage/wal/record.py ``REASON_*``):
the lower layers may not import ``storage`` (docs/architecture.md,
"Layers"), so the broker names them here and ``broker.persistence.store``
checks at import that both lists agree."""

REASON_ACKED = 0          #: basic.ack, or a delivery with no-ack
REASON_REJECTED = 1       #: basic.reject / basic.nack without requeue, no dead-letter exchange
REASON_EXPIRED = 2        #: message TTL passed, no dead-letter exchange
REASON_DEAD_LETTERED = 3  #: republished to the queue's dead-letter exchange
REASON_PURGED = 4         #: queue.purge
REASON_DROPPED = 5        #: length limit (drop-head) or delivery limit, no dead-letter exchange
REASON_DELETED = 6        #: the queue (or delayed exchange) was deleted
REASON_DEDUPLICATED = 7   #: a duplicate dropped by x-message-deduplication

#: every reason by name, as ``storage.wal.REASON_NAMES`` spells them
REASON_NAMES = {REASON_ACKED: "acked", REASON_REJECTED: "rejected", REASON_EXPIRED: "expired",
                REASON_DEAD_LETTERED: "dead-lettered", REASON_PURGED: "purged", REASON_DROPPED: "dropped",
                REASON_DELETED: "deleted", REASON_DEDUPLICATED: "deduplicated"}
