"""2-D convolution with FIR up/down-sampling, and the modulated convolution of StyleGAN2.

`conv2d_resample_ref` spells the maths out (zero-insert, filter, convolve, decimate);
`conv2d_resample` computes the same with transposed / strided convolutions, which is what
the networks call. A test holds the two equal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from facegen_cli.ops.upfirdn2d import Pair, _pad4, filter_size, upfirdn2d
from facegen_cli.precision import fp32_part, widen


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: Pair = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """conv2d / conv_transpose2d; `flip_weight=False` makes it a true convolution."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _resample_padding(f: torch.Tensor | None, up: int, down: int, padding: Pair) -> list[int]:
    """Padding that keeps the image centred through the FIR up/down-sampling."""
    px0, px1, py0, py1 = _pad4(padding)
    fw, fh = filter_size(f)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return [px0, px1, py0, py1]


def conv2d_resample_ref(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                        down: int = 1, padding: Pair = 0, groups: int = 1, flip_weight: bool = True,
                        flip_filter: bool = False) -> torch.Tensor:
    """Reference: upsample with `f`, convolve with `w`, downsample with `f`, step by step."""
    pad = _resample_padding(f, up, down, padding)
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=pad, gain=up * up, flip_filter=flip_filter)
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                    down: int = 1, padding: Pair = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """Same result as `conv2d_resample_ref`, computed with strided / transposed convolutions."""
    out_ch, in_per_group, kh, kw = w.shape
    px0, px1, py0, py1 = _resample_padding(f, up, down, padding)

    if kh == 1 and kw == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kh == 1 and kw == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up, flip_filter=flip_filter)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:
        # A transposed convolution does the zero-insertion and the convolution in one step.
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    return conv2d_resample_ref(x, w, f, up=up, down=down, padding=padding, groups=groups,
                               flip_weight=flip_weight, flip_filter=flip_filter)


def demodulation_coefficients_ref(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """1 / |weight * style| per sample and output channel, [batch, out_ch], from the per-sample weights."""
    w = weight.unsqueeze(0) * styles.reshape(styles.shape[0], 1, -1, 1, 1)
    return (w.square().sum(dim=[2, 3, 4]) + eps).rsqrt()


def demodulation_coefficients(weight: torch.Tensor, styles: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`demodulation_coefficients_ref` without the [batch, out, in, kh, kw] per-sample weights.

    The squared norm of a modulated filter is sum_j s_j^2 * |w_ij|^2: one small matrix product.
    """
    return (styles.square() @ weight.square().sum(dim=[2, 3]).t() + eps).rsqrt()


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """StyleGAN2's convolution whose weights are scaled per sample by `styles` and demodulated.

    `fused_modconv=True` folds the styles into per-sample weights and runs one grouped
    convolution; `False` scales the activations instead and shares one weight across the
    batch. Both give the same result; which is faster depends on batch size and device.
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape

    if x.dtype == torch.float16 and demodulate:
        # Keep fp16 in range: demodulation removes the scale again.
        weight = weight * (1 / (in_ch * kh * kw) ** 0.5 / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    dcoefs = None
    if demodulate:
        with fp32_part("demod", styles):
            dcoefs = demodulation_coefficients(widen(weight), widen(styles))

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    scale = styles.reshape(batch, 1, -1)
    if dcoefs is not None:
        scale = scale * dcoefs.reshape(batch, -1, 1)
    w = (weight.unsqueeze(0) * scale.unsqueeze(-1).unsqueeze(-1)).reshape(-1, in_ch, kh, kw)
    x = x.reshape(1, -1, *x.shape[2:])
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                        groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
