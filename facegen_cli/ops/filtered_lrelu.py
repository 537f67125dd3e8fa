"""Filtered leaky ReLU of StyleGAN3: upsample, bias + leaky ReLU + gain + clamp, low-pass, downsample.

The non-linearity runs at `up` times the input sampling rate between two FIR low-pass
filters, so the harmonics it creates are removed before the signal is decimated again
(the alias-free layer of "Alias-Free Generative Adversarial Networks").

`filtered_lrelu_ref` composes the plain-PyTorch references of `upfirdn2d` and `bias_act`;
`filtered_lrelu` composes their dispatching versions, so on CUDA tensors each step runs the
compiled kernel where one has built. Both support derivatives of any order.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from facegen_cli.ops.bias_act import bias_act, bias_act_ref
from facegen_cli.ops.upfirdn2d import Pair, _pad4, filter_size, upfirdn2d, upfirdn2d_ref


def output_size(in_size: tuple[int, int], fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
                padding: Pair) -> tuple[int, int]:
    """(height, width) that `filtered_lrelu` returns for an input of (height, width) `in_size`."""
    px0, px1, py0, py1 = _pad4(padding)
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    h = (in_size[0] * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down
    w = (in_size[1] * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down
    return h, w


def _filtered_lrelu(resample: Callable[..., torch.Tensor], activate: Callable[..., torch.Tensor], x: torch.Tensor,
                    fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None, up: int, down: int,
                    padding: Pair, gain: float, slope: float, clamp: float | None,
                    flip_filter: bool) -> torch.Tensor:
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu takes NCHW input, got shape {tuple(x.shape)}")
    if up < 1 or down < 1 or gain <= 0 or slope < 0 or (clamp is not None and clamp < 0):
        raise ValueError(f"filtered_lrelu: bad settings up={up} down={down} gain={gain} slope={slope} clamp={clamp}")
    x = activate(x, b)
    x = resample(x, fu, up=up, padding=_pad4(padding), gain=up * up, flip_filter=flip_filter)
    x = activate(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return resample(x, fd, down=down, flip_filter=flip_filter)


def filtered_lrelu_ref(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                       b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Pair = 0,
                       gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                       flip_filter: bool = False) -> torch.Tensor:
    """Add bias `b`; zero-insert by `up`, pad by `padding` (on the upsampled grid; negative crops) and
    convolve with `fu` (gain up**2); leaky ReLU with `slope`, times `gain`, clamped to +-`clamp`;
    convolve with `fd` and keep every `down`-th pixel. Filters are 1-D (separable) or 2-D, None = identity."""
    return _filtered_lrelu(upfirdn2d_ref, bias_act_ref, x, fu, fd, b, up, down, padding, gain, slope, clamp,
                           flip_filter)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Pair = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """`filtered_lrelu_ref` built on the dispatching `upfirdn2d` and `bias_act` (CUDA kernels where built)."""
    return _filtered_lrelu(upfirdn2d, bias_act, x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
