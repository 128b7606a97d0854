"""What every route shares: RabbitMQ's error bodies and status codes, JSON
answers, and reading request bodies as real clients send them (values as
strings or JSON types, extra keys ignored). Source: RabbitMQ 3.10
rabbit_mgmt_util (bad_request, not_found, not_authorised) and
rabbit_mgmt_wm_* (the bodies each route accepts)."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(Exception):
    """An answer other than success: HTTP ``status`` with RabbitMQ's body
    ``{"error": error, "reason": reason}`` (400 bad_request, 401
    not_authorised, 404 Object Not Found / not_found, 405, 409 ...)."""

    def __init__(self, status: int, error: str, reason: str):
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason

    def response(self) -> web.Response:
        headers = {"WWW-Authenticate": 'Basic realm="RabbitMQ Management"'} if self.status == 401 else None
        return web.json_response({"error": self.error, "reason": self.reason}, status=self.status,
                                 headers=headers)


def bad_request(reason: str) -> ApiError:
    return ApiError(400, "bad_request", reason)


def not_found(reason: str = "Not Found") -> ApiError:
    """RabbitMQ's 404 for a missing object: ``{"error": "Object Not Found", "reason": "Not Found"}``."""
    return ApiError(404, "Object Not Found", reason)


def not_authorised(reason: str) -> ApiError:
    return ApiError(401, "not_authorised", reason)


def answer(value: object, status: int = 200) -> web.Response:
    """``value`` as a JSON body."""
    return web.json_response(value, status=status, dumps=_dumps)


def no_content() -> web.Response:
    """204: what RabbitMQ answers to a successful PUT, POST or DELETE without a body."""
    return web.Response(status=204)


def created() -> web.Response:
    """201: a PUT that created the object."""
    return web.Response(status=201)


def _dumps(value: object) -> str:
    return json.dumps(value, default=str)


async def body(request: web.Request) -> dict:
    """The request's JSON object ({} for an empty body). Raises 400
    bad_request for text that is not a JSON object."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise bad_request(f"failed to decode JSON: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request("a JSON object was expected")
    return value


def flag(document: dict, key: str, default: bool) -> bool:
    """A boolean key given as a JSON boolean or as "true"/"false" (what
    rabbitmqadmin sends). Raises 400 for anything else."""
    value = document.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise bad_request(f"{key} must be true or false, got {value!r}")


def integer(document: dict, key: str, default: int) -> int:
    """An integer key given as a number or as digits ("5"). Raises 400."""
    value = document.get(key, default)
    if isinstance(value, bool):
        raise bad_request(f"{key} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"{key} must be an integer, got {value!r}") from None


def text(document: dict, key: str, default: str | None = None) -> str:
    """A string key; a missing one without ``default`` is 400."""
    value = document.get(key, default)
    if value is None:
        raise bad_request(f"{key} is missing")
    if not isinstance(value, str):
        value = str(value)
    return value


def table(document: dict, key: str) -> dict:
    """An object key (``arguments``): {} when missing or "" ; 400 for another type."""
    value = document.get(key) or {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise bad_request(f"{key} must be a JSON object") from None
    if not isinstance(value, dict):
        raise bad_request(f"{key} must be a JSON object")
    return value
