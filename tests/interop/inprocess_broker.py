"""A real Leveret broker (broker.app.server.Server: listener, recovery,
storage) run on its own event loop in a background thread, listening on
127.0.0.1 and a free port, for tests that change users, vhosts,
permissions and limits while it runs: ``admin(method, *args)`` calls the
broker's admin service (broker/admin) on the broker's loop, as the admin
commands and the management API do. Clients (pika, aio-pika, raw
sockets) talk to it over TCP like to any broker.

``log_lines()`` returns what the broker logged (every logger under
``broker``), for the failed-login and audit lines."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from urllib.parse import quote

from broker.admin import Actor
from broker.app.config import Config
from tests.interop.server_process import free_port

#: the actor tests name in admin calls (the audit lines say it)
TEST_ACTOR = Actor("test-admin", "pytest")


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


class InProcessBroker:
    """``start()`` / ``stop()``; ``host``, ``port``, ``url(user, password,
    vhost)``; ``admin("add_user", "bob", "pw")`` calls
    ``server.admin.add_user(TEST_ACTOR, "bob", "pw")`` on the broker's loop
    and returns its result (or raises its exception)."""

    def __init__(self, data_dir: Path, **settings):
        self.host = "127.0.0.1"
        self.port = free_port()
        # the management API on any free port: parallel brokers must not fight over 15672
        settings.setdefault("management_port", 0)
        settings.setdefault("prometheus_port", 0)
        self.config = Config(host=(self.host,), port=self.port, data_dir=Path(data_dir), mirror=False,
                             compact_interval=3600.0, **settings)
        self.server = None  # broker.app.server.Server, once started
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._collector = _Collector()
        self._level = logging.NOTSET

    def url(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> str:
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqp://{credentials}@{self.host}:{self.port}/{quote(vhost, safe='')}"

    def start(self) -> "InProcessBroker":
        """Start the broker and wait until it listens; raises what its start raised."""
        logger = logging.getLogger("broker")
        self._level = logger.level  # given back by stop: other tests read the broker's log level
        logger.addHandler(self._collector)
        logger.setLevel(logging.DEBUG)
        started = threading.Event()
        failure: list[BaseException] = []

        # imported here, not at collection: tests/broker/test_cli.py replaces the
        # module in sys.modules and needs it not imported yet
        from broker.app.server import Server

        def run() -> None:
            self.loop = loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                self.server = Server(self.config)
                loop.run_until_complete(self.server.start())
            except BaseException as exc:  # handed to the caller of start
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name=f"leveret-{self.port}", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            self._forget_log()
            raise failure[0]
        return self

    def admin(self, method: str, *args, **kwargs):
        """``server.admin.<method>(TEST_ACTOR, *args, **kwargs)`` on the
        broker's loop (list_* methods take no actor)."""
        async def call():
            function = getattr(self.server.admin, method)
            if method.startswith("list_"):
                return function(*args, **kwargs)
            return function(TEST_ACTOR, *args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def on_loop(self, function):
        """``function(server)`` run on the broker's loop; its result."""
        async def call():
            return function(self.server)

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    def stop(self) -> None:
        """Stop the broker (clients get 320, as on shutdown) and its thread."""
        if self._thread is not None and self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
        self._forget_log()

    def _forget_log(self) -> None:
        logger = logging.getLogger("broker")
        logger.removeHandler(self._collector)
        logger.setLevel(self._level)

    def log_lines(self) -> list[str]:
        return list(self._collector.lines)

    def __enter__(self) -> "InProcessBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
