"""Worker processes for the load generator: one process per producer or
consumer, so the Python client is not the bottleneck (and not one GIL).

A *role* is a function ``role(**kwargs) -> run`` that connects and sets up
(declares, subscribes...) and returns a callable; the process then reports
"ready", waits for the group's start signal, calls ``run()`` and sends its
result (a picklable dict, to which it adds ``client_cpu_pct``: its own
CPU use while running, % of one core) back.

    group = Group()
    group.add(roles.consumer, host=..., ...)
    group.add(roles.producer, host=..., ...)
    group.start()                  # forks, waits until every role is set up
    t0 = group.go()                # monotonic seconds
    results = group.results()      # in the order added; RuntimeError if one failed

Processes are forked (no re-import; the orchestrator runs no other thread
while it forks); a process that does not finish in time is killed by its
own pid in ``close()``.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback

CTX = multiprocessing.get_context("fork")


def shared_count():
    """A count shared with the workers: ``.value`` is -1 until set."""
    value = CTX.RawValue("q", -1)
    return value


def _child(index: int, role, kwargs: dict, out, go) -> None:
    try:
        run = role(**kwargs)
        out.put((index, "ready", None))
        go.wait()
        t0, cpu0 = time.monotonic(), time.process_time()
        result = run()
        if isinstance(result, dict):     # the worker's own CPU use, % of one core
            result["client_cpu_pct"] = 100 * (time.process_time() - cpu0) / max(time.monotonic() - t0, 1e-9)
        out.put((index, "done", result))
    except BaseException:  # reported to the orchestrator, which fails the run
        out.put((index, "error", traceback.format_exc()))


class Group:
    """A set of worker processes started and released together."""

    def __init__(self):
        self.roles: list = []
        self.procs: list = []
        self.out = CTX.Queue()
        self.go_event = CTX.Event()
        self._results: dict[int, object] = {}

    def add(self, role, **kwargs) -> int:
        """Add a worker running ``role(**kwargs)``; returns its index."""
        self.roles.append((role, kwargs))
        return len(self.roles) - 1

    def start(self, timeout: float = 120.0) -> None:
        """Fork every worker and wait until all are set up (``timeout``
        seconds). Raises RuntimeError with the worker's traceback if one fails."""
        for i, (role, kwargs) in enumerate(self.roles):
            p = CTX.Process(target=_child, args=(i, role, kwargs, self.out, self.go_event), daemon=True)
            p.start()
            self.procs.append(p)
        ready = 0
        while ready < len(self.procs):
            index, state, payload = self._get(timeout)
            if state == "ready":
                ready += 1
            elif state == "done":
                self._results[index] = payload
            else:
                raise RuntimeError(f"worker {index} ({self.roles[index][0].__name__}) failed:\n{payload}")

    def go(self) -> float:
        """Release every worker; returns the monotonic time of the release."""
        t0 = time.monotonic()
        self.go_event.set()
        return t0

    def results(self, timeout: float = 300.0, on_done=None) -> list:
        """Every worker's result, in the order added (waits ``timeout``
        seconds in all). ``on_done(index, result)`` is called as each arrives."""
        deadline = time.monotonic() + timeout
        while len(self._results) < len(self.procs):
            index, state, payload = self._get(max(0.1, deadline - time.monotonic()))
            if state == "error":
                raise RuntimeError(f"worker {index} ({self.roles[index][0].__name__}) failed:\n{payload}")
            if state == "done":
                self._results[index] = payload
                if on_done:
                    on_done(index, payload)
        for p in self.procs:
            p.join(10)
        return [self._results[i] for i in range(len(self.procs))]

    def _get(self, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.out.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                pass
            dead = [(i, p.exitcode) for i, p in enumerate(self.procs) if p.exitcode not in (None, 0)]
            if dead and self.out.empty():
                raise RuntimeError(f"worker(s) died without a result (index, exit code): {dead}")
            if time.monotonic() >= deadline:
                alive = [p.pid for p in self.procs if p.is_alive()]
                raise RuntimeError(f"workers timed out after {timeout:.0f} s (still running: {alive})")

    def close(self) -> None:
        """Kill (by pid) any worker still running and reap them all."""
        for p in self.procs:
            if p.is_alive():
                p.kill()
            p.join(5)
        self.out.close()
