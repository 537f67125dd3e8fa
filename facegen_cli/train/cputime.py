"""A run's CPU time: user + system seconds of the training process (every thread) and of its children (the
data-loading workers), counted on across resumes, so runs that share a machine compare at equal CPU-hours."""
from __future__ import annotations

import multiprocessing
import os
import resource
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _reaped_children() -> float:
    """CPU seconds of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int, waited_children: bool = False) -> float:
    """User + system seconds of process `pid` (every thread) read from /proc, and with `waited_children` those of
    the children it has waited for; OSError where there is no /proc or no such process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = [int(v) for v in fields[11:15 if waited_children else 13]]
    return sum(ticks) / TICKS


def _live_children() -> dict[int, float]:
    """CPU seconds of each child process still running (multiprocessing's: the data loader's workers); empty where
    there is no /proc."""
    seconds = {}
    for child in multiprocessing.active_children():
        try:
            seconds[child.pid] = process_cpu_seconds(child.pid)
        except OSError:  # no /proc, or it has just exited (then the reaped count takes it)
            continue
    return seconds


class CpuClock:
    """CPU seconds since the clock was made, plus `start` (what the run had used before a resume): this process's
    threads (`time.process_time`), its live children and those it has reaped (a child that was alive when the
    clock was made counts from then)."""

    def __init__(self, start: float = 0.0):
        self.start = start
        self._own = time.process_time()
        self._reaped = _reaped_children()
        self._live = _live_children()

    def seconds(self) -> float:
        live = sum(cpu - self._live.get(pid, 0.0) for pid, cpu in _live_children().items())
        return self.start + time.process_time() - self._own + _reaped_children() - self._reaped + live
