"""Resource alarms: a memory high watermark and a free-disk limit, as RabbitMQ has them.

What is measured:
- memory: the broker process's resident set size (RSS, from /proc/self/statm), which is what
  the kernel's OOM killer looks at and what RabbitMQ's default ``vm_memory_calculation_strategy
  = rss`` measures. Where /proc is missing (macOS), the bytes of queued message bodies plus a
  per-message overhead stand in for it.
- disk: the free bytes (``shutil.disk_usage``) of the file system holding the data directory,
  checked every second. A broker without a data directory writes nothing, so it has no disk
  alarm unless a ``disk_free`` reading is injected.

Thresholds take RabbitMQ's two forms: a float is relative to the machine's RAM (the memory
watermark defaults to 0.4 of it, the cgroup limit counting as RAM when it is lower), an int is
absolute bytes (the disk limit defaults to 50 000 000 bytes). An alarm is set while usage is
above the watermark (or free disk below the limit) and cleared as soon as it is not, as in
RabbitMQ. The listener blocks publishing connections while any alarm is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from leveret.broker.node import Node

log = logging.getLogger("leveret.alarms")

MEMORY, DISK = "memory", "disk"
# The reason connection.blocked carries, as RabbitMQ words it.
BLOCKED_REASONS = {MEMORY: "low on memory", DISK: "low on disk"}
DISK_CHECK_INTERVAL = 1.0
PER_MESSAGE_OVERHEAD = 200  # rough bytes of Python objects around each queued body
_CGROUP_LIMIT_FILES = ("/sys/fs/cgroup/memory.max",
                       "/sys/fs/cgroup/memory/memory.limit_in_bytes")


def total_memory() -> int:
    """Bytes of RAM available to this process: physical memory, or the cgroup limit when
    the broker runs in a container with a lower one."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 8 << 30
    for path in _CGROUP_LIMIT_FILES:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def process_rss() -> int | None:
    """This process's resident set size in bytes, or None where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def queued_message_bytes(node: Node) -> int:
    """Bytes held by ready messages, with an estimate of the objects around each one."""
    total = 0
    for vhost in node.vhosts.values():
        for q in vhost.queues.values():
            # in memory only: a paged backlog's bodies are on disk (docs/storage.md)
            total += q.memory_used + PER_MESSAGE_OVERHEAD * q.messages_in_memory
    return total


def resolve_threshold(value: float | int, name: str) -> int:
    """Bytes for a threshold: a float is a fraction of RAM, an int absolute bytes."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a fraction of RAM (float) or bytes (int), "
                         f"got {value!r}")
    if isinstance(value, float):
        return int(value * total_memory())
    return value


class ResourceMonitor:
    """Measures memory and free disk and keeps ``node.alarms``: the active alarm names, in
    the order they were set.

    ``memory_used`` and ``disk_free`` replace the real readings (tests, embedders); the
    thresholds can be changed while running with the ``set_*`` methods, like
    ``rabbitmqctl set_vm_memory_high_watermark`` and ``set_disk_free_limit``.
    """

    def __init__(self, node: Node, data_dir: Path | None = None,
                 memory_used: Callable[[], int] | None = None,
                 disk_free: Callable[[], int] | None = None) -> None:
        self.node = node
        self.data_dir = data_dir
        self.memory_reading = memory_used or self._default_memory_used
        self.disk_reading = disk_free
        if disk_free is None and data_dir is not None:
            self.disk_reading = self._default_disk_free
        self.disk_check_interval = DISK_CHECK_INTERVAL  # statvfs is cheap, but not free
        self.memory_limit = 0
        self.disk_free_limit = 0
        self.set_memory_high_watermark(node.limits.memory_high_watermark)
        self.set_disk_free_limit(node.limits.disk_free_limit)
        self.memory_used: int = 0
        self.disk_free: int | None = None
        self._last_disk_check = float("-inf")

    @property
    def alarms(self) -> list[str]:
        return self.node.alarms

    def set_memory_high_watermark(self, value: float | int) -> None:
        self.memory_limit = resolve_threshold(value, "memory_high_watermark")
        self.node.limits.memory_high_watermark = value

    def set_disk_free_limit(self, value: float | int) -> None:
        self.disk_free_limit = resolve_threshold(value, "disk_free_limit")
        self.node.limits.disk_free_limit = value
        self._last_disk_check = float("-inf")  # check at once, not in a second

    def _default_memory_used(self) -> int:
        rss = process_rss()
        return rss if rss is not None else queued_message_bytes(self.node)

    def _default_disk_free(self) -> int:
        assert self.data_dir is not None
        return shutil.disk_usage(self.data_dir).free

    def check(self) -> bool:
        """Take the readings that are due and update the alarms; True if they changed."""
        self.memory_used = self.memory_reading()
        memory_alarm = self.memory_used > self.memory_limit
        disk_alarm = DISK in self.node.alarms
        now = time.monotonic()
        due = now - self._last_disk_check >= self.disk_check_interval
        if self.disk_reading is not None and due:
            self._last_disk_check = now
            try:
                self.disk_free = self.disk_reading()
            except OSError as exc:  # data dir gone: keep the last state, say so once a second
                log.error("cannot read free disk space of %s: %s", self.data_dir, exc)
            else:
                disk_alarm = self.disk_free < self.disk_free_limit
        changed = self._set(MEMORY, memory_alarm, self.memory_used, self.memory_limit)
        if self.disk_free is not None:
            changed |= self._set(DISK, disk_alarm, self.disk_free, self.disk_free_limit)
        return changed

    def _set(self, alarm: str, active: bool, reading: int, limit: int) -> bool:
        alarms = self.node.alarms
        if active == (alarm in alarms):
            return False
        state = "set" if active else "cleared"
        fields = {"alarm": alarm, "alarm_state": state, "limit_bytes": limit,
                  ("memory_used_bytes" if alarm == MEMORY else "disk_free_bytes"): reading}
        if active:
            alarms.append(alarm)
        else:
            alarms.remove(alarm)
        if alarm == MEMORY:
            log.warning("memory resource limit alarm %s: %d bytes used, watermark %d bytes%s",
                        state, reading, self.memory_limit,
                        ": blocking publishers" if active else "", extra=fields)
        else:
            log.warning("disk resource limit alarm %s: %d bytes free, limit %d bytes%s",
                        state, reading, self.disk_free_limit,
                        ": blocking publishers" if active else "", extra=fields)
        return True

    def blocked_reason(self) -> str | None:
        """What connection.blocked says: the reason of the first alarm still set."""
        alarms = self.node.alarms
        return BLOCKED_REASONS[alarms[0]] if alarms else None

