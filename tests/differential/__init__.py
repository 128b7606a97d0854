"""Differential tests: the same client scenarios against Leveret and the
reference RabbitMQ 3.10, asserting the same observable result."""
