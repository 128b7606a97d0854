"""Resource alarms: the memory high watermark and the disk free limit
(rabbitmq.com/alarms.html, rabbitmq.com/memory.html, rabbitmq.com/disk-alarms.html).

Every CHECK_INTERVAL seconds the broker measures its resident memory and
the free space of the file system holding its data directory. Past the
watermark, or below the limit, the alarm is raised: the publish flow
control (broker/transport/flow_control.py) blocks publishing connections
with the reason ``memory`` or ``disk`` and tells them connection.blocked;
when the measure is back on the right side the alarm clears and they are
read again. Consumers keep flowing throughout, which is what frees memory
and (through acks and WAL compaction) disk.

Linux only for the measures (``/proc``, cgroup files); elsewhere the
memory available is the physical memory (``os.sysconf``) and the
resident size comes from ``resource.getrusage`` (the peak: an alarm may
then not clear).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
from pathlib import Path

from broker.transport.flow_control import DISK, MEMORY, PublishFlow

log = logging.getLogger(__name__)

#: seconds between two measures (RabbitMQ: memory every 0.5 s by default,
#: disk every 10 s at most)
CHECK_INTERVAL = 0.5
#: cgroup memory limit files, v2 then v1; "max" or a huge number: no limit
CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def physical_memory() -> int:
    """Bytes of RAM the machine has (``SC_PHYS_PAGES`` x page size)."""
    return os.sysconf("SC_PHYS_PAGES") * _PAGE


def cgroup_memory_limit(files: tuple[str, ...] = CGROUP_LIMIT_FILES) -> int | None:
    """The memory limit (bytes) of the cgroup this process runs in, None
    when there is none (``max``, an unreadable file, or v1's "no limit"
    value near 2**63)."""
    for name in files:
        try:
            text = Path(name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
        return None
    return None


def available_memory() -> int:
    """Memory (bytes) a relative watermark is a fraction of: the machine's,
    or the cgroup's limit when lower (a container's limit is what the
    kernel's OOM killer enforces)."""
    total = physical_memory()
    limit = cgroup_memory_limit()
    return min(total, limit) if limit else total


def memory_limit(watermark: float, available: int) -> int:
    """The alarm threshold in bytes: ``watermark`` <= 1 is a fraction of
    ``available`` bytes, above 1 it is bytes itself."""
    return int(watermark * available) if watermark <= 1 else int(watermark)


def disk_limit(disk_free_limit: int, wal_segment_size: int) -> int:
    """The disk alarm threshold (bytes): never below two WAL segments, so
    that the segment being written and the next one always fit."""
    return max(disk_free_limit, 2 * wal_segment_size)


def resident_memory() -> int:
    """This process's resident set size in bytes (``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def free_disk(path: Path) -> int:
    """Bytes available to this (unprivileged) process on the file system
    holding ``path`` (``statvfs``: f_bavail x f_frsize)."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def _malloc_trim():
    """glibc's ``malloc_trim`` (returns freed heap pages to the kernel, so
    that the resident size falls once memory is freed), or None."""
    try:
        return ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc is among them
    except (OSError, AttributeError):
        return None


class ResourceAlarms:
    """The memory and disk alarms of one broker.

    ``memory_limit`` and ``disk_free_limit`` are the thresholds in bytes;
    ``data_dir`` the directory whose file system is watched; ``flow`` the
    publish flow control that blocks publishers. After each ``check()``,
    ``memory_used`` and ``disk_free`` hold the last measures (bytes) and
    ``active`` the alarms in force (``"memory"``, ``"disk"``): the shape
    the management API (``/api/nodes``: mem_alarm, disk_free_alarm) and the
    Prometheus alarm metrics read. ``start()`` checks every
    CHECK_INTERVAL seconds until ``stop()``.
    """

    def __init__(self, flow: PublishFlow, data_dir: Path, memory_limit: int, disk_free_limit: int,
                 interval: float = CHECK_INTERVAL):
        self.flow = flow
        self.data_dir = Path(data_dir)
        self.memory_limit = memory_limit
        self.disk_free_limit = disk_free_limit
        self.interval = interval
        self.memory_used = 0
        self.disk_free = 0
        self.active: set[str] = set()
        self._trim = _malloc_trim()
        self._task: asyncio.Task | None = None

    @property
    def memory_alarm(self) -> bool:
        """True while the memory alarm is raised."""
        return MEMORY in self.active

    @property
    def disk_alarm(self) -> bool:
        """True while the disk alarm is raised."""
        return DISK in self.active

    def check(self) -> None:
        """Measure memory and disk once and raise or clear the alarms."""
        used = resident_memory()
        if used > self.memory_limit and self._trim is not None:
            # freed memory may still be resident: give it back before judging
            self._trim(0)
            used = resident_memory()
        self.memory_used = used
        self._set(MEMORY, used > self.memory_limit,
                  f"memory use {used} bytes, high watermark {self.memory_limit} bytes")
        try:
            self.disk_free = free = free_disk(self.data_dir)
        except OSError as exc:
            log.warning("free disk space of %s cannot be measured: %s", self.data_dir, exc)
            return
        self._set(DISK, free < self.disk_free_limit,
                  f"free disk space {free} bytes in {self.data_dir}, limit {self.disk_free_limit} bytes")

    def _set(self, alarm: str, on: bool, details: str) -> None:
        if on and alarm not in self.active:
            self.active.add(alarm)
            log.warning("%s resource limit alarm set (%s): publishing connections are blocked", alarm, details)
            self.flow.block(alarm)
        elif not on and alarm in self.active:
            self.active.discard(alarm)
            log.warning("%s resource limit alarm cleared (%s)", alarm, details)
            self.flow.unblock(alarm)

    def start(self) -> None:
        """Check now, then every ``interval`` seconds on the running loop."""
        log.info("resource alarms: memory high watermark %d bytes, disk free limit %d bytes on %s",
                 self.memory_limit, self.disk_free_limit, self.data_dir)
        self.check()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # a failed measure must not end the checks
                log.exception("resource alarm check failed")

    def stop(self) -> None:
        """Stop checking (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
