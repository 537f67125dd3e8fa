"""Filtered leaky ReLU of StyleGAN3: upsample, bias + leaky ReLU + gain + clamp, low-pass, downsample.

The non-linearity runs at `up` times the input sampling rate between two FIR low-pass
filters, so the harmonics it creates are removed before the signal is decimated again
(the alias-free layer of "Alias-Free Generative Adversarial Networks").

`filtered_lrelu_ref` composes the plain-PyTorch references of `upfirdn2d` and `bias_act`.
`filtered_lrelu` computes the same: on CUDA tensors with the dispatching `upfirdn2d` and
`bias_act` (compiled kernels where built); elsewhere with polyphase resampling, which never
multiplies the inserted zeros nor computes the samples decimation drops. All paths support
derivatives of any order.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from facegen_cli.ops.bias_act import bias_act, bias_act_ref
from facegen_cli.ops.upfirdn2d import Pair, _pad4, downfir2d_strided, filter_size, upfirdn2d, upfirdn2d_ref


def output_size(in_size: tuple[int, int], fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
                padding: Pair) -> tuple[int, int]:
    """(height, width) that `filtered_lrelu` returns for an input of (height, width) `in_size`."""
    px0, px1, py0, py1 = _pad4(padding)
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    h = (in_size[0] * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down
    w = (in_size[1] * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down
    return h, w


def _check(x: torch.Tensor, up: int, down: int, gain: float, slope: float, clamp: float | None) -> None:
    if x.ndim != 4:
        raise ValueError(f"filtered_lrelu takes NCHW input, got shape {tuple(x.shape)}")
    if up < 1 or down < 1 or gain <= 0 or slope < 0 or (clamp is not None and clamp < 0):
        raise ValueError(f"filtered_lrelu: bad settings up={up} down={down} gain={gain} slope={slope} clamp={clamp}")


def _filtered_lrelu(resample: Callable[..., torch.Tensor], activate: Callable[..., torch.Tensor], x: torch.Tensor,
                    fu: torch.Tensor | None, fd: torch.Tensor | None, b: torch.Tensor | None, up: int, down: int,
                    padding: Pair, gain: float, slope: float, clamp: float | None,
                    flip_filter: bool) -> torch.Tensor:
    _check(x, up, down, gain, slope, clamp)
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


def _upsample_axis(x: torch.Tensor, f: torch.Tensor, up: int, pad0: int, pad1: int, dim: int) -> torch.Tensor:
    """Zero-insert by `up` along `dim` (2 or 3), pad, true-convolve with the 1-D `f` times `up`: polyphase.

    Output sample m*up + r of the full convolution is input x convolved with the taps f[r::up];
    one grouped convolution computes all `up` phases, which are then interleaved."""
    n, c = x.shape[:2]
    length, taps = x.shape[dim], f.numel()
    phase_taps = -(-taps // up)
    phases = F.pad(f.to(x.dtype) * up, [0, phase_taps * up - taps]).reshape(phase_taps, up).t().flip(1)
    kernel = [1, phase_taps] if dim == 3 else [phase_taps, 1]
    pad = [phase_taps - 1, phase_taps - 1, 0, 0] if dim == 3 else [0, 0, phase_taps - 1, phase_taps - 1]
    y = F.conv2d(F.pad(x, pad), phases.reshape(up, 1, *kernel).repeat(c, 1, 1, 1), groups=c)
    y = y.reshape(n, c, up, *y.shape[2:]).movedim(2, dim + 1).flatten(dim, dim + 1)  # interleave the phases
    out_len = length * up + pad0 + pad1 - taps + 1
    start = taps - 1 - pad0  # where the requested window starts in the full convolution
    lo, hi = max(start, 0), min(start + out_len, y.shape[dim])
    if hi <= lo:  # the window misses the signal entirely
        return y.new_zeros([*y.shape[:dim], max(out_len, 0), *y.shape[dim + 1:]])
    y = y.narrow(dim, lo, hi - lo)
    before, after = lo - start, start + out_len - hi
    return F.pad(y, [before, after, 0, 0] if dim == 3 else [0, 0, before, after])


def _filtered_lrelu_polyphase(x: torch.Tensor, fu: torch.Tensor | None, fd: torch.Tensor | None,
                              b: torch.Tensor | None, up: int, down: int, padding: Pair, gain: float, slope: float,
                              clamp: float | None, flip_filter: bool) -> torch.Tensor:
    if flip_filter:  # correlation = convolution with the mirrored filter
        fu = fu.flip(list(range(fu.ndim))) if fu is not None else None
        fd = fd.flip(list(range(fd.ndim))) if fd is not None else None
    x = bias_act_ref(x, b)
    px0, px1, py0, py1 = _pad4(padding)
    if fu is not None and fu.ndim == 1:
        x = _upsample_axis(_upsample_axis(x, fu, up, px0, px1, dim=3), fu, up, py0, py1, dim=2)
    else:
        x = upfirdn2d_ref(x, fu, up=up, padding=(px0, px1, py0, py1), gain=up * up)
    x = bias_act_ref(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp)
    return downfir2d_strided(x, fd, down=down)


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Pair = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False) -> torch.Tensor:
    """`filtered_lrelu_ref`, computed by the fastest path for `x`'s device."""
    if x.is_cuda:
        return _filtered_lrelu(upfirdn2d, bias_act, x, fu, fd, b, up, down, padding, gain, slope, clamp,
                               flip_filter)
    _check(x, up, down, gain, slope, clamp)
    return _filtered_lrelu_polyphase(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
