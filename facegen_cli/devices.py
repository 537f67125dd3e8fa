"""`--device auto|cpu|cuda[:N]` to a torch device."""
from __future__ import annotations

import torch

from facegen_cli.errors import BadInput, FacegenError


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' picks the first CUDA device when there is one, else the CPU."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise BadInput(f"unknown device {spec!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise FacegenError(f"device {spec!r} asked for, but no CUDA device is available; use the cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FacegenError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise BadInput(f"unsupported device {spec!r}; use auto, cpu or cuda[:N]")
    return device


def memory_format_for(device: torch.device, channels_last: bool = True) -> torch.memory_format:
    """The layout a network's 4-D weights and activations take on `device`: channels_last on a CPU when asked
    (oneDNN's own layout, faster in every measured case: benchmarks/RESULTS.md, "layouts"); contiguous NCHW
    otherwise, the plain reference and what the CUDA kernels and NVIDIA's code expect."""
    return torch.channels_last if channels_last and device.type == "cpu" else torch.contiguous_format


def drawing_memory_format(device: torch.device, precision: str) -> torch.memory_format:
    """The layout a network draws in: channels_last on a CPU in bf16 (which promises the same faces, not fp32's
    pixels; faster: benchmarks/RESULTS.md), NCHW in fp32, whose pixels are held equal to NVIDIA's."""
    return memory_format_for(device, channels_last=precision == "bf16")
