"""bias_act on the CUDA kernel: autograd Functions for the value and its first two derivatives.

Only x and b are saved for backward (the reference keeps two tensors per call); every
derivative is recomputed from x + b in one pass. Second derivatives are exact, which R1 and
path-length regularisation need; a third derivative raises an error instead of being wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch
from torch.autograd.function import once_differentiable

from facegen_cli.ops.build import cuda_op

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# act'' = 0 everywhere for these: their second derivative needs no kernel.
_PIECEWISE_LINEAR = frozenset({"linear", "relu", "lrelu"})


@dataclass(frozen=True)
class _Config:
    ext: ModuleType
    dim: int
    act: str
    alpha: float
    gain: float
    clamp: float  # < 0: no clamp

    def run(self, x: torch.Tensor, b: torch.Tensor | None, go: torch.Tensor | None, order: int) -> torch.Tensor:
        return self.ext.bias_act(x, b, go, self.dim, self.act, order, self.alpha, self.gain, self.clamp)


def _sum_to_bias(g: torch.Tensor, dim: int) -> torch.Tensor:
    return g.sum(dim=[d for d in range(g.ndim) if d != dim])


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, b: torch.Tensor | None, cfg: _Config) -> torch.Tensor:
        ctx.save_for_backward(x, b)
        ctx.cfg = cfg
        return cfg.run(x, b, None, 0)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, b = ctx.saved_tensors
        cfg = ctx.cfg
        dx = _BiasActGrad.apply(dy, x, b, cfg)
        db = _sum_to_bias(dx, cfg.dim) if b is not None and ctx.needs_input_grad[1] else None
        return dx if ctx.needs_input_grad[0] else None, db, None


class _BiasActGrad(torch.autograd.Function):
    """dx = dy * gain * act'(x + b) (masked by the clamp), differentiable once more."""

    @staticmethod
    def forward(ctx, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor | None, cfg: _Config) -> torch.Tensor:
        ctx.save_for_backward(dy, x, b)
        ctx.cfg = cfg
        return cfg.run(x, b, dy, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx, ddx: torch.Tensor):
        dy, x, b = ctx.saved_tensors
        cfg = ctx.cfg
        d_dy = cfg.run(x, b, ddx, 1) if ctx.needs_input_grad[0] else None
        d_x = d_b = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            if cfg.act in _PIECEWISE_LINEAR:
                d_x = torch.zeros_like(x)
            else:
                d_x = cfg.run(x, b, ddx * dy, 2)
            if b is not None and ctx.needs_input_grad[2]:
                d_b = _sum_to_bias(d_x, cfg.dim)
        return d_dy, d_x if ctx.needs_input_grad[1] else None, d_b, None


def kernel_for(x: torch.Tensor, b: torch.Tensor | None, dim: int) -> ModuleType | None:
    """The compiled extension if it handles these inputs exactly as the reference, else None."""
    if x.dtype not in KERNEL_DTYPES or x.ndim == 0:
        return None
    if b is not None and (b.device != x.device or b.dtype != x.dtype or b.ndim != 1
                          or b.numel() != x.shape[dim]):
        return None  # type promotion, broadcasting and errors stay with the reference
    return cuda_op("bias_act")


def bias_act_cuda(ext: ModuleType, x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float,
                  gain: float, clamp: float | None) -> torch.Tensor:
    """clamp(gain * act(x + b)) on the kernel; alpha and gain already resolved to numbers."""
    cfg = _Config(ext, dim % x.ndim, act, alpha, gain, -1.0 if clamp is None or clamp < 0 else float(clamp))
    return _BiasAct.apply(x, b, cfg)
