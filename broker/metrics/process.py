"""The broker process's resources as RabbitMQ's Prometheus plugin reports
them (rabbitmq.com/prometheus.html; rabbit_prometheus collectors): resident
memory, file descriptors, free disk space, their limits and the alarms.

Limits and alarm states come from ``server.alarms`` when the broker has one
(the resource alarms); otherwise RabbitMQ's defaults stand in
(vm_memory_high_watermark 0.4 of the RAM, disk_free_limit 50 MB,
rabbitmq.com/alarms.html) and no alarm is raised.
"""

from __future__ import annotations

import os
import resource
import shutil

#: RabbitMQ's defaults (rabbitmq.com/memory.html, disk-alarms.html)
DEFAULT_MEMORY_WATERMARK = 0.4
DEFAULT_DISK_FREE_LIMIT = 50_000_000

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_memory_bytes() -> int:
    """Resident set size of this process, bytes (/proc/self/statm; the
    peak RSS from getrusage where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def total_memory_bytes() -> int:
    """Physical memory of the machine, bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * _PAGE
    except (ValueError, OSError, AttributeError):
        return 0


def open_fds() -> int:
    """File descriptors open in this process (0 when /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def max_fds() -> int:
    """The soft limit on open file descriptors."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def disk_free_bytes(path) -> int:
    """Free bytes on the file system holding ``path`` (0 when it cannot be read)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def resources(server) -> dict:
    """The figures of the node metrics, each a number: ``rss``,
    ``memory_limit``, ``memory_alarm`` (0/1), ``disk_free``,
    ``disk_free_limit``, ``disk_alarm`` (0/1), ``open_fds``, ``max_fds``."""
    alarms = getattr(server, "alarms", None)
    memory_limit = getattr(alarms, "memory_limit", None)
    if memory_limit is None:
        memory_limit = int(total_memory_bytes() * DEFAULT_MEMORY_WATERMARK)
    disk_limit = getattr(alarms, "disk_free_limit", None)
    if disk_limit is None:
        disk_limit = DEFAULT_DISK_FREE_LIMIT
    return {
        "rss": resident_memory_bytes(), "memory_limit": memory_limit,
        "memory_alarm": int(bool(getattr(alarms, "memory_alarm", False))),
        "disk_free": disk_free_bytes(server.config.data_dir), "disk_free_limit": disk_limit,
        "disk_alarm": int(bool(getattr(alarms, "disk_alarm", False))),
        "open_fds": open_fds(), "max_fds": max_fds(),
    }
