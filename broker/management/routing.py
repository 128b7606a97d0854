"""The route table and the request context. Paths are matched on their raw
segments, each percent-decoded after splitting, so that a vhost or a name
holding "/" works as ``%2F`` (``/api/queues/%2F/q``), and an empty segment
where a vhost is expected is the vhost "/" (Flower asks for
``/api/queues//``). Each route names who may call it (auth.py)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from broker.admin import Actor
from broker.management.http import ApiError

log = logging.getLogger(__name__)

#: who may call a route (RabbitMQ's user tags, rabbitmq.com/management.html#permissions):
#: any management user; monitoring (or administrator); administrator only
ANY, MONITORING, ADMINISTRATOR = "management", "monitoring", "administrator"


@dataclasses.dataclass
class Call:
    """One authenticated request: ``request``, the broker ``server``
    (broker.app.server.Server), the ``user`` (broker.access.User) and
    ``actor`` (for the audit lines of writes)."""
    request: web.Request
    server: object
    user: object
    actor: Actor

    @property
    def query(self):
        return self.request.query

    @property
    def tags(self) -> tuple:
        return self.user.tags

    def sees_all(self) -> bool:
        """monitoring and administrator users see every vhost's objects."""
        return bool({"administrator", "monitoring"} & set(self.user.tags))

    def visible_vhosts(self) -> list[str]:
        """The vhosts whose objects this user may list: all for monitoring
        and administrator, else those it has permissions in."""
        access = self.server.access
        if self.sees_all():
            return list(access.vhosts)
        return [name for name in access.vhosts
                if (grant := access.grants.get((self.user.name, name))) is not None and grant.active]


Handler = Callable[..., Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler
    need: str


class Routes:
    """``add(method, "/queues/{vhost}/{name}", handler, need)``; ``match``
    finds the route of a request path."""

    def __init__(self):
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, need: str = ANY) -> None:
        self.routes.append(Route(method, tuple(pattern.strip("/").split("/")), handler, need))

    def get(self, pattern: str, handler: Handler, need: str = ANY) -> None:
        self.add("GET", pattern, handler, need)

    def match(self, method: str, raw_path: str) -> tuple[Route, dict]:
        """The route and its decoded parameters for ``raw_path`` (below
        ``/api``, query string removed). Raises 404 (no such path) or 405
        (path known, method not)."""
        parts = raw_path.strip("/").split("/") if raw_path.strip("/") else []
        if raw_path.endswith("//"):  # "/api/queues//": the vhost "/" unencoded (Flower)
            parts.append("")
        methods = []
        for route in self.routes:
            params = _bind(route.segments, parts)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            methods.append(route.method)
        if methods:
            raise ApiError(405, "Method Not Allowed", f"{method} is not allowed here (allowed: {', '.join(methods)})")
        raise ApiError(404, "Object Not Found", "Not Found")


def _bind(segments: tuple[str, ...], parts: list[str]) -> dict | None:
    if len(segments) != len(parts):
        # "/api/queues//q": split gives ["queues", "", "q"], fine; a vhost
        # "/" given raw inside a longer path ("/api/queues///q") is not guessed
        return None
    params = {}
    for segment, part in zip(segments, parts):
        if segment.startswith("{"):
            value = unquote(part)
            if segment == "{vhost}" and value == "":
                value = "/"
            params[segment[1:-1]] = value
        elif segment != part:
            return None
    return params
