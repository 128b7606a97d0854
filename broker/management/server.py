"""``ManagementServer``: the aiohttp application of the management API in
the broker process, on ``config.management_host:management_port``. Every
``/api/...`` request is authenticated (auth.py), matched against the route
table (routing.py, filled by one module per resource family) and answered
as JSON; an error is RabbitMQ's ``{"error", "reason"}`` body. A port that
cannot be bound is logged and the broker runs without the API (the API is
for operators; it never stops the broker)."""

from __future__ import annotations

import logging

from aiohttp import web

from broker.admin import Actor, AdminError
from broker.management import (access_routes, connections, health, history, messages, move, overview,
                                topology, topology_writes)
from broker.management.auth import authenticate, authorise
from broker.management.http import ApiError
from broker.management.routing import Call, Routes

log = logging.getLogger(__name__)

_ADMIN_STATUS = {"not_found": 404, "exists": 409, "invalid": 400}


def build_routes() -> Routes:
    """The route table of every resource module."""
    routes = Routes()
    for module in (overview, health, connections, topology, topology_writes, messages, history, move,
                   access_routes):
        module.register(routes)
    return routes


class ManagementServer:
    """The API of ``server`` (broker.app.server.Server). ``start`` binds
    (``port`` is then the bound port, useful with port 0), ``close`` stops."""

    def __init__(self, server):
        self.server = server
        self.routes = build_routes()
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def application(self) -> web.Application:
        app = web.Application(client_max_size=self.server.config.max_message_size + (1 << 20))
        app.router.add_route("*", "/api{tail:.*}", self._dispatch)
        app.router.add_route("GET", "/", self._index)
        return app

    async def start(self) -> None:
        """Listen; an address that cannot be bound is logged (no API)."""
        config = self.server.config
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, config.management_host, config.management_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            log.error("management API cannot listen on %s:%d (%s): running without it", config.management_host,
                      config.management_port, exc)
            await runner.cleanup()
            return
        self._runner = runner
        self.port = runner.addresses[0][1]
        log.info("management API listening on http://%s:%d/api/", config.management_host, self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="Leveret management API: see /api/overview\n")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        address = f"{peer[0]}:{peer[1]}" if peer else "unknown"
        try:
            raw = request.raw_path.split("?", 1)[0][len("/api"):]
            route, params = self.routes.match(request.method, raw)
            user = authenticate(self.server.access, request.headers.get("Authorization"),
                                peer[0] if peer else "")
            authorise(user, route.need)
            call = Call(request, self.server, user, Actor(user.name, f"{address} (management API)"))
            return await route.handler(call, **params)
        except ApiError as exc:
            if exc.status == 401:
                log.warning("management API %s %s from %s: %s", request.method, request.path, address, exc.reason)
            return exc.response()
        except AdminError as exc:
            return ApiError(_ADMIN_STATUS.get(exc.kind, 400), "bad_request", str(exc)).response()
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the API down
            log.exception("management API %s %s from %s failed", request.method, request.path, address)
            return ApiError(500, "internal_server_error", str(exc) or type(exc).__name__).response()
