"""Benchmark scenarios, in the order ``bench/run.py`` runs them (see each
module's docstring for what it measures and checks)."""

from bench.scenarios import ceiling, confirm, drain, fanout, many, publish, pubsub

# ``many`` first: RabbitMQ is one long-running process whose RSS stays high
# after the big scenarios, and ``many`` compares absolute RSS
SCENARIOS = {m.NAME: m for m in (many, publish, confirm, pubsub, fanout, drain)}
CEILING = ceiling
