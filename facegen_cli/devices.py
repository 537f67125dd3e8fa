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
            raise FacegenError(f"device {spec!r} asked for, but no CUDA device is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise FacegenError(f"device {spec!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise BadInput(f"unsupported device {spec!r}; use auto, cpu or cuda[:N]")
    return device
