"""``MessageStore``: the store as the lower layers see it (docs/architecture.md,
"Layers": only ``broker.persistence`` imports ``storage``, and a vhost
knows its store only by this shape). ``broker.persistence.store.Store``
implements it; ``VHost.storage`` holds one, or None for a broker without
storage. A ``typing.Protocol``: documentation and type hints only."""

from __future__ import annotations

from typing import Callable, Protocol


class MessageStore(Protocol):
    """Persistent messages, their removals and the durable topology.
    Messages are named by their broker message id, queues (and delayed
    exchange holders) by name, ``reason`` is a broker.model.reasons
    REASON_* value. Reads raise KeyError for a message no queue holds."""

    def persist_message(self, message_id: int, vhost: str, exchange: str, routing_key: str,
                        queues: list[str], header: bytes, body: bytes) -> None:
        """Append a persistent message routed to ``queues``; durable once a
        later ``sync_soon`` callback runs."""

    def record_delivered(self, message_id: int, queue: str, consumer_tag: str = "",
                         delivery_count: int = 1) -> None:
        """The message was handed out from ``queue`` (a delivery is written
        to its socket only after the next sync)."""

    def record_requeued(self, message_id: int, queue: str) -> None:
        """The message went back to the ready list of ``queue``."""

    def record_removed(self, message_id: int, queue: str, reason: int) -> None:
        """The message left ``queue`` for good, for ``reason``."""

    def forget_queue(self, message_id: int, queue: str) -> None:
        """The message's queue no longer exists: removed as deleted."""

    def read_message(self, message_id: int):
        """The stored record (exchange, routing_key, header, body, at_ms)."""

    def read_messages(self, message_ids: list[int]) -> list:
        """``read_message`` for many ids, in their order."""

    def read_for_delivery(self, message_ids: list[int]) -> list[tuple]:
        """``(exchange, routing_key, exchange_routing_key, header, body)`` per id."""

    def delivery_count(self, message_id: int, queue: str) -> int:
        """Times the unsettled message was handed out from ``queue`` (>= 1)."""

    def queues_holding(self, message_id: int) -> tuple[str, ...] | None:
        """Names of the queues still holding the stored message; None when
        it is not stored (any more)."""

    def sync_soon(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything recorded so far is fsynced."""

    def save_exchange(self, vhost: str, exchange) -> None:
        """Store a durable exchange's declaration."""

    def delete_exchange(self, vhost: str, name: str) -> None:
        """Forget a stored exchange."""

    def save_queue(self, vhost: str, queue) -> None:
        """Store a durable queue's declaration."""

    def delete_queue(self, vhost: str, name: str) -> None:
        """Forget a stored queue."""

    def save_binding(self, vhost: str, source, destination, binding_key: str, arguments: dict) -> None:
        """Store a binding (destination: a queue or an exchange)."""

    def delete_binding(self, vhost: str, source, destination, binding_key: str, arguments: dict) -> None:
        """Forget a stored binding."""
