"""A small HTTP client for the management API tests (urllib: no library
between the test and the wire), and a broker process with the API on a
free port."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.interop.server_process import BrokerProcess, free_port


class Api:
    """``get/put/post/delete(path, body=None)`` -> (status, decoded JSON or
    None) against ``base`` (``http://host:port/api``) as ``user``/``password``."""

    def __init__(self, base: str, user: str = "guest", password: str = "guest"):
        self.base = base.rstrip("/")
        self.user = user
        self.password = password

    def as_user(self, user: str, password: str) -> "Api":
        return Api(self.base, user, password)

    def call(self, method: str, path: str, body: object = None, headers: dict | None = None,
             raw: bytes | None = None) -> tuple[int, object]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if self.user is not None:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        return status, (json.loads(text) if text.strip() else None)

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def put(self, path: str, body: object = None, **kw):
        return self.call("PUT", path, body if body is not None else {}, **kw)

    def post(self, path: str, body: object = None, **kw):
        return self.call("POST", path, body if body is not None else {}, **kw)

    def delete(self, path: str, **kw):
        return self.call("DELETE", path, **kw)

    def ok(self, method: str, path: str, body: object = None) -> object:
        """The decoded answer; AssertionError naming the status otherwise."""
        status, value = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path}: {status} {value}"
        return value


def start_with_management(data_dir: Path, *extra: str) -> tuple[BrokerProcess, int]:
    """A broker process with the management API on a free port: (process, port)."""
    port = free_port()
    proc = BrokerProcess(data_dir, ["--management-port", str(port), *extra]).start()
    return proc, port
