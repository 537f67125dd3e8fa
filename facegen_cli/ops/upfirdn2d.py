"""Upsample, FIR-filter, downsample (`upfirdn2d`) and the resampling helpers built on it."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

Pair = int | Sequence[int]


def _pair(v: Pair) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    a, b = v
    return int(a), int(b)


def _pad4(padding: Pair) -> tuple[int, int, int, int]:
    """Normalise padding to (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    x0, x1, y0, y1 = padding
    return int(x0), int(x1), int(y0), int(y1)


def setup_filter(
    f: Sequence[float] | torch.Tensor,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Turn a 1-D tap list into the filter tensor the resampling ops take (2-D unless separable)."""
    f = torch.as_tensor(f, dtype=torch.float32, device=device)
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    return f * (gain ** (f.ndim / 2))


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 1-D or 2-D filter; (1, 1) for no filter."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def _filter(x: torch.Tensor, f: torch.Tensor | None, padding: Pair, flip_filter: bool, gain: float,
            stride: tuple[int, int] = (1, 1)) -> torch.Tensor:
    """Pad (negative pads crop), then convolve each channel with `f`, stepping by `stride` (x, y)."""
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    px0, px1, py0, py1 = _pad4(padding)
    c = x.shape[1]
    pad = (0, 0)
    if px0 == px1 >= 0 and py0 == py1 >= 0:
        pad = (py0, px0)  # the convolution pads: no padded copy of x
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    sx, sy = stride
    if f.ndim == 2:
        return F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c, stride=(sy, sx), padding=pad)
    x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, f.shape[0]), groups=c, stride=(1, sx),
                 padding=(0, pad[1]))
    return F.conv2d(x, f[None, None, :, None].expand(c, 1, f.shape[0], 1), groups=c, stride=(sy, 1),
                    padding=(pad[0], 0))


def upfirdn2d_ref(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: Pair = 1,
    down: Pair = 1,
    padding: Pair = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-insert by `up`, pad (negative pads crop), convolve with `f`, keep every `down`-th pixel."""
    upx, upy = _pair(up)
    downx, downy = _pair(down)
    n, c, h, w = x.shape

    if (upx, upy) != (1, 1):
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)
    return _filter(x, f, padding, flip_filter, gain)[:, :, ::downy, ::downx]


def downfir2d_strided(x: torch.Tensor, f: torch.Tensor | None, down: Pair = 1, padding: Pair = 0,
                      flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """`upfirdn2d_ref` without upsampling, filtering only the pixels it keeps (a strided convolution)
    instead of filtering every pixel and dropping all but one in `down` x `down`.

    On a CPU a bf16 input (or one under bf16 autocast) is filtered in fp32: oneDNN's strided depthwise
    convolution in bf16 runs 4-10x slower than in fp32 (benchmarks/RESULTS.md, "strided FIR in bf16")."""
    if x.device.type == "cpu" and (x.dtype == torch.bfloat16 or torch.is_autocast_enabled("cpu")):
        with torch.autocast("cpu", enabled=False):
            return _filter(x.float(), f, padding, flip_filter, gain, stride=_pair(down)).to(x.dtype)
    return _filter(x, f, padding, flip_filter, gain, stride=_pair(down))


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    up: Pair = 1,
    down: Pair = 1,
    padding: Pair = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """upfirdn2d, dispatched to the fastest implementation available for `x`.

    CUDA tensors run the compiled kernel once it has built (see `facegen_cli.ops.build`);
    everything else, and every input the kernel does not cover, runs `upfirdn2d_ref`, or
    `downfir2d_strided` where it only downsamples.
    """
    if x.is_cuda:
        from facegen_cli.ops.upfirdn2d_cuda import kernel_for, upfirdn2d_cuda

        ext = kernel_for(x, f)
        if ext is not None:
            return upfirdn2d_cuda(ext, x, f, _pair(up), _pair(down), _pad4(padding), flip_filter, gain)
    if _pair(up) == (1, 1) and _pair(down) != (1, 1):
        return downfir2d_strided(x, f, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    return upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: Pair = 2, padding: Pair = 0,
               flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Upsample by `up` with filter `f`, keeping the image centred."""
    upx, upy = _pair(up)
    px0, px1, py0, py1 = _pad4(padding)
    fw, fh = filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: Pair = 2, padding: Pair = 0,
                 flip_filter: bool = False, gain: float = 1.0) -> torch.Tensor:
    """Downsample by `down` with filter `f`, keeping the image centred."""
    downx, downy = _pair(down)
    px0, px1, py0, py1 = _pad4(padding)
    fw, fh = filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain)
