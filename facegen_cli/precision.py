"""`--precision fp32|bf16|auto`: which arithmetic a network runs in, and the parts that stay fp32.

- `fp32`: float32 arithmetic, as NVIDIA's code computes: the reference, and what reproduces
  NVIDIA's pixels. On CUDA a network's own fp16 blocks (NVIDIA's `num_fp16_res`) still run in
  fp16 there, exactly as NVIDIA's code runs them; on a CPU they are fp32.
- `bf16`: convolutions and the activations between them in bfloat16 under `torch.autocast`;
  the parts named in `FP32_PARTS` stay float32, as do parameters, optimizers and losses, and
  NVIDIA's fp16 blocks are not used.
- `auto`: bf16 on a CPU with native bf16 instructions (AVX-512 BF16 or AMX); fp32 elsewhere,
  which on CUDA means NVIDIA's fp16 blocks where the network has them.

Measured choices: benchmarks/RESULTS.md, "precision".
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from typing import ContextManager

import torch

from facegen_cli.errors import BadParameter

PRECISIONS = ("fp32", "bf16", "auto")
# Parts of StyleGAN2 that run in float32 even under bf16: the mapping network (and w_avg), the
# style affines, the demodulation coefficients, the ToRGB layers with the image skip path, and
# the discriminator's 4x4 epilogue (its logits feed the losses).
FP32_PARTS = frozenset({"mapping", "affine", "demod", "torgb", "epilogue"})
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX-512 / AMX; "bf16" is Arm's (FEAT_BF16)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags /proc/cpuinfo lists (empty where there is no such file)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16, AMX or Arm BF16)."""
    flags = cpu_flags() if flags is None else flags
    if flags:
        return any(flag in flags for flag in NATIVE_BF16_FLAGS)
    probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # where there is no /proc/cpuinfo
    return bool(probe is not None and probe())


@dataclass(frozen=True)
class Precision:
    """A resolved precision, `fp32` or `bf16`, for one device type."""

    name: str
    device_type: str = "cpu"

    @property
    def force_fp32(self) -> bool:
        """What to pass as the networks' `force_fp32`: NVIDIA's fp16 blocks never mix with bf16."""
        return self.name == "bf16"

    def autocast(self) -> ContextManager:
        """The context the networks run in: bf16 autocast on this device, or nothing."""
        if self.name == "bf16":
            return torch.autocast(self.device_type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


FP32 = Precision("fp32")


def check_precision(spec: str) -> str:
    """`spec` lower-cased when it is one of PRECISIONS."""
    name = (spec or "").strip().lower()
    if name not in PRECISIONS:
        raise BadParameter("precision", f"precision must be one of {', '.join(PRECISIONS)}, got {spec!r}")
    return name


def resolve_precision(spec: str | Precision, device: torch.device | str = "cpu",
                      native_bf16: bool | None = None) -> Precision:
    """`fp32|bf16|auto` for `device`; `native_bf16` overrides the CPU detection (tests)."""
    if isinstance(spec, Precision):
        return spec
    device_type = torch.device(device).type
    name = check_precision(spec)
    if name == "auto":
        native = device_type == "cpu" and (cpu_has_native_bf16() if native_bf16 is None else native_bf16)
        name = "bf16" if native else "fp32"
    return Precision(name, device_type)


def fp32_part(part: str, x: torch.Tensor) -> ContextManager:
    """Leave bf16 autocast for a part listed in `FP32_PARTS`, on `x`'s device; else nothing."""
    device_type = x.device.type
    if part in FP32_PARTS and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def block_dtype(fp16: bool, x: torch.Tensor | None = None) -> torch.dtype:
    """A block's working dtype: fp16 for NVIDIA's fp16 blocks, bf16 when `x` already is (autocast), else fp32."""
    if fp16:
        return torch.float16
    if x is not None and x.dtype == torch.bfloat16:
        return torch.bfloat16
    return torch.float32


def widen(x: torch.Tensor) -> torch.Tensor:
    """bf16 -> fp32 on entering an fp32 part; other dtypes (fp16 blocks, fp32) stay as they are."""
    return x.float() if x.dtype == torch.bfloat16 else x


def synthesis_in_precision(G: torch.nn.Module, ws: torch.Tensor, precision: Precision = FP32, **kwargs) -> torch.Tensor:
    """`G.synthesis(ws, **kwargs)` in `precision` (the image comes back in fp32)."""
    with precision.autocast():
        return G.synthesis(ws, force_fp32=precision.force_fp32, **kwargs).float()


def in_precision(fn, *args, precision: Precision = FP32, **kwargs):
    """`fn(*args, **kwargs)` in `precision`'s autocast, for networks without W+ (the classic families)."""
    with precision.autocast():
        return fn(*args, **kwargs)
