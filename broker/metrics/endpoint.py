"""The Prometheus HTTP endpoint (rabbitmq.com/prometheus.html): aiohttp in
the broker's event loop, ``GET /metrics`` (aggregated) and
``GET /metrics/per-object`` in the Prometheus text format, each answered by
a collector (broker/metrics/collector.py) reading the counters at scrape
time. Also starts the 5 s rate sampler (broker/metrics/totals.py).
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from broker.metrics.collector import LeveretCollector
from broker.metrics.totals import StatsSampler

log = logging.getLogger(__name__)


class MetricsEndpoint:
    """Serve ``server``'s metrics on ``host``:``port`` (0: any free port;
    ``port`` holds the bound one after ``start``). ``sampler`` is the
    broker's StatsSampler (the management API reads its rates too)."""

    def __init__(self, server, host: str, port: int, sampler: StatsSampler):
        self.server = server
        self.host = host
        self.port = port
        self.sampler = sampler
        self._registries = {}
        for path, per_object in (("/metrics", False), ("/metrics/per-object", True)):
            registry = CollectorRegistry(auto_describe=False)
            registry.register(LeveretCollector(server, sampler, per_object))
            self._registries[path] = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Listen. Raises OSError when the address cannot be bound."""
        app = web.Application()
        for path in self._registries:
            app.router.add_get(path, self._scrape)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        sockets = site._server.sockets if site._server is not None else ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Prometheus metrics on http://%s:%d/metrics", self.host, self.port)

    async def _scrape(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registries[request.path])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stop(self) -> None:
        """Stop listening (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
