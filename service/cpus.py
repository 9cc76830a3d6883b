"""The number of CPUs this process may really use: its CPU affinity, capped by a cgroup v2 CPU quota.

In a container, ``os.cpu_count()`` is the host's count; ``docker --cpuset-cpus`` shows up in the affinity and
``docker --cpus`` only in the cgroup quota (``cpu.max``), so both are read.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (``os.cpu_count()`` where the platform has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def quota_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int | None:
    """CPUs granted by a cgroup v2 quota (``"<quota> <period>"``, rounded up), or None without a quota."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """CPUs to size a thread pool with: the affinity count, capped by the cgroup quota when there is one."""
    count = affinity_cpus()
    quota = quota_cpus(cpu_max)
    return max(1, min(count, quota) if quota is not None else count)
