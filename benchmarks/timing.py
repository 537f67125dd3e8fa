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
