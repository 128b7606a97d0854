"""Figures shared by several routes: ``message_stats`` in RabbitMQ's shape
(a count and ``<name>_details: {"rate": per second}`` per statistic, as
rabbit_mgmt_format renders them) and the node's resources (memory, disk,
file descriptors) with the alarm flags.

Counters and rates are read from ``server.counters`` when the broker keeps
them (a ``snapshot()`` giving ``{stat: (count, rate)}``); until then every
figure is 0 in the right shape, so that clients reading
``message_stats.publish_details.rate`` find it."""

from __future__ import annotations

import os
import resource
import shutil
import time

#: the message_stats keys RabbitMQ 3.10 renders (rabbit_mgmt_format, the
#: fine stats of channels, queues, exchanges and vhosts)
STATS = ("publish", "publish_in", "publish_out", "confirm", "deliver", "deliver_no_ack", "get", "get_no_ack",
         "get_empty", "deliver_get", "redeliver", "ack", "return_unroutable", "drop_unroutable", "disk_reads",
         "disk_writes")

#: RabbitMQ's default vm_memory_high_watermark (rabbitmq.com/memory.html)
MEMORY_WATERMARK = 0.4
#: RabbitMQ's default disk_free_limit, bytes (rabbitmq.com/disk-alarms.html)
DISK_FREE_LIMIT = 50_000_000

STARTED = time.time()


def message_stats(server, scope: object = None) -> dict:
    """``{stat: count, stat + "_details": {"rate": r}}`` for every STATS
    name (rates per second, sampled every 5 s as RabbitMQ does:
    broker/metrics/totals.py). ``scope``: None for the whole broker, a vhost
    name, or an object with ``stats`` (broker.model.stats.MessageStats: a
    queue, a channel); anything else (an exchange: no counters yet) gives
    zeros in the same shape."""
    sampler = getattr(server, "sampler", None)
    if scope is None:
        stats = getattr(sampler, "overall", None)
    elif isinstance(scope, str):
        stats = getattr(sampler, "vhosts", {}).get(scope)
    else:
        stats = getattr(scope, "stats", None)
    counted = stats.message_stats() if stats is not None and hasattr(stats, "message_stats") else {}
    result = {}
    for name in STATS:
        result[name] = counted.get(name, 0)
        result[name + "_details"] = counted.get(name + "_details", {"rate": 0.0})
    return result


def total_memory() -> int:
    """Bytes of physical memory (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def memory_used() -> int:
    """Resident set size of the broker process, bytes."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fds_used() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def raised_alarms(server) -> set[str]:
    """The resource alarms in force ("memory", "disk"): ``server.alarms.active``."""
    return set(getattr(getattr(server, "alarms", None), "active", ()))


def node_resources(server) -> dict:
    """mem_used, mem_limit, mem_alarm, disk_free, disk_free_limit,
    disk_free_alarm, fd_used, fd_total, sockets_used, sockets_total,
    proc_used, proc_total, run_queue, processors, uptime (ms). The alarm
    flags and limits come from ``server.alarms``
    (broker.app.alarms.ResourceAlarms: ``active``, ``memory_limit``,
    ``disk_free_limit``); RabbitMQ's defaults stand in without it."""
    alarm_state = getattr(server, "alarms", None)
    alarms = raised_alarms(server)
    mem_limit = getattr(alarm_state, "memory_limit", None) or int(total_memory() * MEMORY_WATERMARK)
    disk_limit = getattr(alarm_state, "disk_free_limit", None) or DISK_FREE_LIMIT
    try:
        disk_free = shutil.disk_usage(server.config.data_dir).free
    except OSError:
        disk_free = 0
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "mem_used": memory_used(), "mem_limit": mem_limit,
        "mem_alarm": "memory" in alarms,
        "disk_free": disk_free, "disk_free_limit": disk_limit, "disk_free_alarm": "disk" in alarms,
        "fd_used": fds_used(), "fd_total": soft if soft != resource.RLIM_INFINITY else 1 << 20,
        "sockets_used": len(server.connections), "sockets_total": soft if soft != resource.RLIM_INFINITY else 1 << 20,
        "proc_used": 1, "proc_total": 1, "run_queue": 0, "processors": os.cpu_count() or 1,
        "uptime": int((time.time() - STARTED) * 1000),
    }
