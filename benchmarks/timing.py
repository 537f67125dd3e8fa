"""Wall-clock timing of a callable on a device, shared by the benchmark scripts."""
from __future__ import annotations

import time
from typing import Callable

import torch


def seconds_per_call(fn: Callable[[], object], device: torch.device, calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls, the device's queue drained at both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable[[], object], device: torch.device, target_s: float, most: int = 1000) -> int:
    """How many calls make one measurement last about `target_s` (after a warm-up call)."""
    seconds_per_call(fn, device, 1)
    once = seconds_per_call(fn, device, 1)
    return max(1, min(most, int(target_s / max(once, 1e-6))))
