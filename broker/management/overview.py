"""GET ``/api/overview``, ``/api/nodes[/name]``, ``/api/whoami``,
``/api/cluster-name`` and ``/api/extensions``, with the fields of RabbitMQ
3.10's management API (rabbit_mgmt_wm_overview, rabbit_mgmt_wm_nodes): the
versions, listeners, message_stats with ``*_details.rate``, queue_totals,
object_totals; each node with every resource and alarm field
(figures.node_resources)."""

from __future__ import annotations

import os
import platform

from broker import __version__
from broker.control.queue_commands import unacked_by_queue
from broker.exchanges import EXCHANGE_TYPES
from broker.management import figures
from broker.management.http import answer, not_found
from broker.management.listing import listed
from broker.management.routing import MONITORING, Call, Routes
from broker.management.topology import node_name

#: the RabbitMQ version whose management API Leveret follows (what
#: rabbitmqadmin and other clients read in ``rabbitmq_version``)
RABBITMQ_VERSION = "3.10.8"


def register(routes: Routes) -> None:
    routes.get("/overview", overview)
    routes.get("/nodes", list_nodes, MONITORING)
    routes.get("/nodes/{node}", show_node, MONITORING)
    routes.get("/whoami", whoami)
    routes.get("/cluster-name", cluster_name)
    routes.get("/extensions", extensions)


def listeners(server) -> list[dict]:
    """The listening sockets, as RabbitMQ lists them (protocol, ip_address, port)."""
    config = server.config
    node = node_name(server)
    rows = [{"node": node, "protocol": "amqp/ssl" if listener.kind == "amqps" else "amqp",
             "ip_address": listener.host, "port": listener.port, "socket_opts": {"backlog": 1024, "nodelay": True}}
            for listener in server.listeners]
    management = getattr(server, "management", None)
    if management is not None and management.port is not None:
        rows.append({"node": node, "protocol": "http", "ip_address": config.management_host,
                     "port": management.port, "socket_opts": {"port": management.port}})
    return rows


def _exchange_types() -> list[dict]:
    return [{"name": name, "description": "", "enabled": True} for name in sorted(EXCHANGE_TYPES)]


async def overview(call: Call):
    server = call.server
    vhosts = [server.vhosts[name] for name in call.visible_vhosts() if name in server.vhosts]
    queues = [queue for vhost in vhosts for queue in vhost.queues.values()]
    unacked = unacked_by_queue(server.connections)
    ready = sum(queue.message_count for queue in queues)
    unacknowledged = sum(unacked.get(id(queue), 0) for queue in queues)
    visible = {vhost.name for vhost in vhosts}
    connections = [c for c in list(server.connections) if c.vhost is not None and c.vhost.name in visible
                   and (call.sees_all() or c.username == call.user.name)]
    channels = sum(len(c.channels) for c in connections)
    return answer({
        "management_version": RABBITMQ_VERSION, "rates_mode": "basic",
        "sample_retention_policies": {"global": [600, 3600, 28800, 86400], "basic": [600, 3600],
                                      "detailed": [600]},
        "exchange_types": _exchange_types(),
        "product_version": __version__, "product_name": "Leveret", "rabbitmq_version": RABBITMQ_VERSION,
        "cluster_name": node_name(server), "erlang_version": f"Python {platform.python_version()}",
        "erlang_full_version": f"Python {platform.python_version()} ({platform.python_implementation()})",
        "release_series_support_status": "supported", "disable_stats": False, "enable_queue_totals": True,
        "message_stats": figures.message_stats(server),
        "churn_rates": {name: 0 for name in ("channel_closed", "channel_created", "connection_closed",
                                             "connection_created", "queue_created", "queue_declared",
                                             "queue_deleted")},
        "queue_totals": {"messages": ready + unacknowledged, "messages_details": {"rate": 0.0},
                         "messages_ready": ready, "messages_ready_details": {"rate": 0.0},
                         "messages_unacknowledged": unacknowledged,
                         "messages_unacknowledged_details": {"rate": 0.0}},
        "object_totals": {"channels": channels, "connections": len(connections),
                          "consumers": sum(queue.consumer_count for queue in queues),
                          "exchanges": sum(len(vhost.exchanges) for vhost in vhosts), "queues": len(queues)},
        "statistics_db_event_queue": 0, "node": node_name(server), "listeners": listeners(server),
        "contexts": [{"node": node_name(server), "description": "RabbitMQ Management", "path": "/",
                      "port": str(listener["port"])} for listener in listeners(server)
                     if listener["protocol"] == "http"],
    })


def node_row(server) -> dict:
    """The one node (every field named in the issue, always present)."""
    row = {"name": node_name(server), "type": "disc", "running": True, "os_pid": str(os.getpid()),
           "being_drained": False, "partitions": [], "cluster_links": [], "net_ticktime": 60,
           "rates_mode": "basic", "enabled_plugins": ["rabbitmq_management"],
           "exchange_types": _exchange_types(),
           "auth_mechanisms": [{"name": name, "description": "", "enabled": True}
                               for name in ("PLAIN", "AMQPLAIN", "EXTERNAL")],
           "applications": [{"name": "leveret", "description": "Leveret", "version": __version__}],
           "contexts": [], "log_files": [], "config_files": [], "db_dir": str(server.config.data_dir),
           "mem_calculation_strategy": "rss", "metrics_gc_queue_length": {}}
    row.update(figures.node_resources(server))
    for key in ("mem_used", "fd_used", "sockets_used", "proc_used", "disk_free"):
        row[key + "_details"] = {"rate": 0.0}
    return row


async def list_nodes(call: Call):
    return listed(call.query, [node_row(call.server)])


async def show_node(call: Call, node: str):
    if node != node_name(call.server):
        raise not_found()
    return answer(node_row(call.server))


async def whoami(call: Call):
    """``{"name", "tags": [...]}`` (RabbitMQ 3.10 lists the tags)."""
    return answer({"name": call.user.name, "tags": list(call.user.tags)})


async def cluster_name(call: Call):
    return answer({"name": node_name(call.server)})


async def extensions(call: Call):
    return answer([])
