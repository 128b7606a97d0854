"""Message counters and their rates (docs/architecture.md, "Counters and
rates"): the numbers behind the management API's ``message_stats`` and the
Prometheus metrics.

A ``MessageStats`` is a slotted object of plain int counters kept on
objects the hot paths already hold (a channel, a queue, an exchange, a
vhost): counting a message is ``stats.field += n``, no lock, no dict
lookup. Totals over many objects (a vhost, the whole broker) are summed
when they are read, and ``sample`` turns successive readings into
per-second rates as RabbitMQ's management agent does every 5 s
(rabbitmq.com/management.html, "Statistics interval": ``*_details.rate``).
"""

from __future__ import annotations

#: counter names, as RabbitMQ's ``message_stats`` keys (rabbit_mgmt_format,
#: rabbitmq.com/management.html) where it has them: ``publish`` messages
#: received from publishers (channel; enqueued, for a queue), ``confirm``
#: publisher confirms sent (basic.ack), ``return_unroutable`` mandatory
#: messages returned, ``drop_unroutable`` unroutable messages dropped,
#: ``deliver``/``deliver_no_ack`` basic.deliver in manual/automatic ack mode,
#: ``get``/``get_no_ack`` basic.get-ok likewise, ``get_empty`` basic.get-empty,
#: ``redeliver`` deliveries with the redelivered flag, ``ack`` basic.ack from
#: consumers, and the dead-lettered counts per reason (rabbitmq.com/dlx.html)
FIELDS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver", "deliver_no_ack", "get",
          "get_no_ack", "get_empty", "redeliver", "ack", "dead_lettered_expired",
          "dead_lettered_rejected", "dead_lettered_maxlen", "dead_lettered_delivery_limit")

#: seconds between two samples (RabbitMQ's collect_statistics_interval, 5000 ms)
SAMPLE_INTERVAL = 5.0


class MessageStats:
    """Counters (``FIELDS``, ints, only ever increased) and the rates of
    the last ``sample`` (``rates``: field -> messages per second, empty
    before two samples)."""

    __slots__ = FIELDS + ("_previous", "rates")

    def __init__(self) -> None:
        for name in FIELDS:
            setattr(self, name, 0)
        self._previous: tuple[float, tuple] | None = None
        self.rates: dict[str, float] = {}

    def values(self) -> tuple:
        """The counters, in ``FIELDS`` order."""
        return tuple(getattr(self, name) for name in FIELDS)

    def add(self, other: "MessageStats") -> None:
        """Add ``other``'s counters to these (a closing channel's counts
        folded into its vhost's, a sum of totals)."""
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def set_sum(self, parts) -> None:
        """Make the counters the sum of ``parts`` (MessageStats objects),
        keeping the previous sample so that the rates stay continuous."""
        sums = [0] * len(FIELDS)
        for part in parts:
            for i, value in enumerate(part.values()):
                sums[i] += value
        for name, value in zip(FIELDS, sums):
            setattr(self, name, value)

    def sample(self, now: float) -> None:
        """Take a reading at ``now`` (seconds, monotonic): ``rates`` become
        the counters' increase since the previous reading per second."""
        current = self.values()
        previous = self._previous
        if previous is not None and now > previous[0]:
            seconds = now - previous[0]
            self.rates = {name: max(0, value - before) / seconds
                          for name, value, before in zip(FIELDS, current, previous[1])}
        self._previous = (now, current)

    def message_stats(self) -> dict:
        """RabbitMQ's ``message_stats`` object: each counter and its
        ``<name>_details: {"rate": float}``, plus the sums RabbitMQ adds
        (``deliver_get``: deliveries and gets of both ack modes)."""
        rates = self.rates
        result: dict = {}
        for name in FIELDS:
            result[name] = getattr(self, name)
            result[name + "_details"] = {"rate": rates.get(name, 0.0)}
        parts = ("deliver", "deliver_no_ack", "get", "get_no_ack")
        result["deliver_get"] = sum(getattr(self, name) for name in parts)
        result["deliver_get_details"] = {"rate": sum(rates.get(name, 0.0) for name in parts)}
        return result

    @property
    def routed(self) -> int:
        """Messages received from publishers that some queue took (or a
        delayed-message exchange holds): received less unroutable."""
        return self.publish - self.return_unroutable - self.drop_unroutable

    @property
    def delivered(self) -> int:
        """Deliveries and gets, both ack modes."""
        return self.deliver + self.deliver_no_ack + self.get + self.get_no_ack


#: object churn counters, as RabbitMQ's ``churn_rates`` keys (/api/overview)
CHURN_FIELDS = ("connection_created", "connection_closed", "channel_created", "channel_closed", "queue_declared",
                "queue_created", "queue_deleted")


class ChurnStats:
    """How many connections, channels and queues were opened and closed
    (``CHURN_FIELDS``, ints, only ever increased): the server keeps the
    connection and channel counts, each vhost its queue counts
    (queue.declare methods, queues added, including at recovery, and
    queues deleted)."""

    __slots__ = CHURN_FIELDS

    def __init__(self) -> None:
        for name in CHURN_FIELDS:
            setattr(self, name, 0)
