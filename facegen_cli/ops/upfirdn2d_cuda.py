"""upfirdn2d on the CUDA kernel, as an autograd Function differentiable to any order.

upfirdn2d is linear in x, and its adjoint is again an upfirdn2d: up and down swap, the
filter is applied flipped, and the padding is chosen so the result has the input's shape.
So the backward is the same Function with the adjoint geometry, and double-backward
(R1, path length) comes for free. The filter gets no gradient: inputs whose filter requires
one stay with the reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import torch

from facegen_cli.ops.build import cuda_op

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Taps and one staged input tile of that many float64 values must fit 48 KiB of shared memory.
MAX_FILTER_TAPS = 48 * 48


@dataclass(frozen=True)
class Geometry:
    """up, down as (x, y); pad as (x0, x1, y0, y1); flip and gain as in upfirdn2d_ref."""

    up: tuple[int, int]
    down: tuple[int, int]
    pad: tuple[int, int, int, int]
    flip: bool
    gain: float

    def adjoint(self, in_hw: tuple[int, int], out_hw: tuple[int, int], f_hw: tuple[int, int]) -> Geometry:
        """The geometry whose upfirdn2d is the transpose of this one (maps dy to dx)."""
        (in_h, in_w), (out_h, out_w), (fh, fw) = in_hw, out_hw, f_hw
        (upx, upy), (downx, downy) = self.up, self.down
        px0, _, py0, _ = self.pad
        pad = (fw - px0 - 1, in_w * upx - out_w * downx + px0 - upx + 1,
               fh - py0 - 1, in_h * upy - out_h * downy + py0 - upy + 1)
        return Geometry(self.down, self.up, pad, not self.flip, self.gain)


def _filter_hw(f: torch.Tensor) -> tuple[int, int]:
    return (int(f.shape[0]), int(f.shape[1])) if f.ndim == 2 else (int(f.shape[0]), int(f.shape[0]))


def _run(ext: ModuleType, x: torch.Tensor, f: torch.Tensor, g: Geometry) -> torch.Tensor:
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = g.up, g.down, g.pad
    if f.ndim == 2:
        return ext.upfirdn2d(x, f, upx, upy, downx, downy, px0, px1, py0, py1, g.flip, g.gain)
    # A separable filter: the horizontal pass, then the vertical one (gain applied once).
    x = ext.upfirdn2d(x, f.reshape(1, -1), upx, 1, downx, 1, px0, px1, 0, 0, g.flip, g.gain)
    return ext.upfirdn2d(x, f.reshape(-1, 1), 1, upy, 1, downy, 0, 0, py0, py1, g.flip, 1.0)


class _Upfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, f: torch.Tensor, ext: ModuleType, geometry: Geometry) -> torch.Tensor:
        y = _run(ext, x, f, geometry)
        ctx.save_for_backward(f)
        ctx.ext = ext
        ctx.geometry = geometry
        ctx.in_hw = (int(x.shape[2]), int(x.shape[3]))
        ctx.out_hw = (int(y.shape[2]), int(y.shape[3]))
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (f,) = ctx.saved_tensors
        adjoint = ctx.geometry.adjoint(ctx.in_hw, ctx.out_hw, _filter_hw(f))
        return _Upfirdn2d.apply(dy, f, ctx.ext, adjoint), None, None, None


def kernel_for(x: torch.Tensor, f: torch.Tensor | None) -> ModuleType | None:
    """The compiled extension if it handles these inputs exactly as the reference, else None."""
    if x.ndim != 4 or x.dtype not in KERNEL_DTYPES:
        return None
    if f is not None and (f.device != x.device or f.ndim not in (1, 2) or f.requires_grad
                          or f.numel() > MAX_FILTER_TAPS or not f.is_floating_point()):
        return None
    return cuda_op("upfirdn2d")


def upfirdn2d_cuda(ext: ModuleType, x: torch.Tensor, f: torch.Tensor | None, up: tuple[int, int],
                   down: tuple[int, int], pad: tuple[int, int, int, int], flip_filter: bool,
                   gain: float) -> torch.Tensor:
    """upfirdn2d on the kernel; `up`, `down` and `pad` already normalised to tuples."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    geometry = Geometry(up, down, pad, bool(flip_filter), float(gain))
    return _Upfirdn2d.apply(x, f.to(torch.float32).contiguous(), ext, geometry)
