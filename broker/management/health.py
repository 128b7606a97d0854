"""Health checks, as RabbitMQ 3.10's rabbit_mgmt_wm_health_check_*
(rabbitmq.com/monitoring.html#health-checks): each answers 200
``{"status": "ok"}`` or 503 ``{"status": "failed", "reason": ...}``, for
Kubernetes probes and load balancers; and ``/api/aliveness-test/vh``,
which declares the queue ``aliveness-test``, publishes ``test_message``
to it and gets it back (rabbit_mgmt_wm_aliveness_test)."""

from __future__ import annotations

from pamqp.commands import Basic

from broker.management import figures, http
from broker.management.auth import require
from broker.management.messages import publish_message, take_messages
from broker.management.overview import listeners
from broker.management.routing import Call, Routes
from broker.queues.queue import Queue

#: the protocol names a listener check accepts for each listener
_PROTOCOLS = {"amqp": ("amqp", "amqp091", "amqp0-9-1", "amqp0.9.1"), "amqp/ssl": ("amqp/ssl", "amqps"),
              "http": ("http", "management")}
_UNITS = ("days", "weeks", "months", "years")
ALIVENESS_QUEUE = "aliveness-test"


def register(routes: Routes) -> None:
    routes.get("/health/checks/alarms", alarms)
    routes.get("/health/checks/local-alarms", alarms)
    routes.get("/health/checks/port-listener/{port}", port_listener)
    routes.get("/health/checks/protocol-listener/{protocol}", protocol_listener)
    routes.get("/health/checks/virtual-hosts", virtual_hosts)
    routes.get("/health/checks/certificate-expiration/{within}/{unit}", certificate_expiration)
    routes.get("/health/checks/node-is-quorum-critical", ok)
    routes.get("/health/checks/node-is-mirror-sync-critical", ok)
    routes.get("/health/checks/ready-to-serve-clients", ready_to_serve_clients)
    routes.get("/health/checks/is-in-service", ready_to_serve_clients)
    routes.get("/aliveness-test/{vhost}", aliveness_test)


def _ok():
    return http.answer({"status": "ok"})


def _failed(reason: str, **extra):
    return http.answer({"status": "failed", "reason": reason, **extra}, status=503)


async def ok(call: Call):
    return _ok()


async def alarms(call: Call):
    """503 while ``server.alarms`` names an alarm (memory, disk)."""
    raised = sorted(figures.raised_alarms(call.server))
    if raised:
        node = call.server.server_properties()["cluster_name"]
        return _failed("There are alarms in effect in the cluster",
                       alarms=[{"node": node, "resource": name} for name in raised])
    return _ok()


async def port_listener(call: Call, port: str):
    try:
        wanted = int(port)
    except ValueError:
        raise http.bad_request(f"invalid port {port!r}") from None
    ports = [listener["port"] for listener in listeners(call.server)]
    if wanted in ports:
        return http.answer({"status": "ok", "port": wanted})
    return _failed(f"No active listener on port {wanted}", missing=wanted, ports=ports)


async def protocol_listener(call: Call, protocol: str):
    active = [listener["protocol"] for listener in listeners(call.server)]
    wanted = protocol.lower()
    if any(wanted in _PROTOCOLS.get(name, (name,)) for name in active):
        return http.answer({"status": "ok", "protocol": protocol})
    return _failed(f"No active listener for protocol {protocol}", missing=protocol, protocols=active)


async def virtual_hosts(call: Call):
    down = sorted(set(call.server.access.vhosts) - set(call.server.vhosts))
    if down:
        return _failed(f"Some virtual hosts are down: {', '.join(down)}", **{"virtual-hosts": down})
    return _ok()


async def certificate_expiration(call: Call, within: str, unit: str):
    """Leveret's listeners here have no certificate: always ok once the
    arguments are valid (400 otherwise, as RabbitMQ)."""
    try:
        if int(within) < 0:
            raise ValueError
    except ValueError:
        raise http.bad_request(f"invalid value for within: {within!r}") from None
    if unit not in _UNITS:
        raise http.bad_request(f"invalid unit {unit!r}: one of {', '.join(_UNITS)}")
    return _ok()


async def ready_to_serve_clients(call: Call):
    if getattr(call.server, "accepting", True):
        return _ok()
    return _failed("the broker is not accepting client connections")


async def aliveness_test(call: Call, vhost: str):
    require(call, vhost, "configure", "queue", ALIVENESS_QUEUE)
    namespace = call.server.vhosts[vhost]
    queue = namespace.queues.get(ALIVENESS_QUEUE)
    if queue is None:
        queue = Queue(namespace, ALIVENESS_QUEUE, False, None, False, {})
        namespace.add_queue(queue)
    await publish_message(call.server, vhost, namespace.exchanges[""], ALIVENESS_QUEUE, Basic.Properties(),
                          b"test_message")
    taken = await take_messages(call.server, queue, 1, "ack_requeue_false")
    if taken and taken[0][0].message.body == b"test_message":
        return _ok()
    return _failed("the test message did not come back")
