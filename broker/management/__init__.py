"""The management HTTP API: RabbitMQ's management plugin API
(rabbitmq.com/management.html, its route table
deps/rabbitmq_management/src/rabbit_mgmt_dispatcher.erl) served by aiohttp
in the broker process, so that rabbitmqadmin, Flower, KEDA and the like
work unchanged. ``ManagementServer`` (server.py) starts and stops it; one
module per resource family registers its routes (routing.py)."""

from broker.management.server import ManagementServer

__all__ = ["ManagementServer"]
