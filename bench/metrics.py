"""What the benchmarks read of the processes they run: Prometheus metrics and /proc figures. Starting,
waiting for and stopping the processes is tests/processes.py's, shared with the tests."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def metric_samples(port: int, name: str) -> list[tuple[dict[str, str], float]] | None:
    """The samples ``(labels, value)`` of one metric at ``http://127.0.0.1:<port>/metrics/``; None when
    nothing answers there (the process is not up yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/", timeout=2).read().decode()
    except OSError:
        return None
    return [(s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == name]  # fmt: skip


def metric(port: int, name: str) -> float | None:
    """One metric summed over its label sets; None when nothing answers or the metric has no sample yet."""
    samples = metric_samples(port, name)
    return sum(value for _, value in samples) if samples else None


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5)


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS
