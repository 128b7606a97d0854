"""Metrics (app level, docs/metrics.md): totals and rates of the message
counters (totals), the Prometheus collector with RabbitMQ's names
(collector, process) and its HTTP endpoint (endpoint)."""
