"""filtered_lrelu against the slow direct formula, and its first and second derivatives."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch

from facegen_cli.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_ref, output_size


def _crop_pad(img: np.ndarray, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    img = np.pad(img, [(0, 0), (0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))])
    return img[:, :, max(-y0, 0): img.shape[2] - max(-y1, 0), max(-x0, 0): img.shape[3] - max(-x1, 0)]


def _convolve_valid(img: np.ndarray, f: np.ndarray | None, flip: bool) -> np.ndarray:
    if f is None:
        return img
    k = np.outer(f, f) if f.ndim == 1 else f
    if flip:
        k = k[::-1, ::-1]
    return np.stack([np.stack([scipy.signal.convolve2d(ch, k, mode="valid") for ch in item]) for item in img])


def direct(x: np.ndarray, fu, fd, b, up, down, padding, gain, slope, clamp, flip=False) -> np.ndarray:
    """Zero insertion, padding, full 2-D convolution, activation, convolution, decimation, in float64."""
    n, c, h, w = x.shape
    x = x + b[None, :, None, None]
    z = np.zeros([n, c, h * up, w * up])
    z[:, :, ::up, ::up] = x
    z = _crop_pad(z, *padding)
    y = _convolve_valid(z, fu, flip) * up * up
    y = np.where(y >= 0, y, y * slope) * gain
    if clamp is not None:
        y = np.clip(y, -clamp, clamp)
    return _convolve_valid(y, fd, flip)[:, :, ::down, ::down]


def _kaiser_lowpass(taps: int, cutoff: float, fs: float) -> np.ndarray:
    return scipy.signal.firwin(taps, cutoff=cutoff, width=cutoff, fs=fs)


CASES = [
    # fu, fd, up, down, padding, clamp
    ("kaiser", "kaiser", 2, 2, (11, 10, 11, 10), None),
    ("kaiser", "kaiser", 2, 2, (5, 3, -2, 6), 0.7),
    ("random", "random", 2, 1, (3, 2, 1, 4), None),
    ("none", "random", 1, 2, (2, 2, 3, 1), None),
    ("random2d", "random2d", 4, 2, (6, 5, 4, 7), 1.5),
    ("none", "none", 1, 1, (-1, 0, 1, -2), None),
    ("random7", "random7", 3, 3, (4, -1, 0, 6), None),
    ("random", "none", 1, 1, (-3, 5, 2, -1), None),
]


def _filter(kind: str, taps: int, rng: np.random.Generator) -> np.ndarray | None:
    if kind == "none":
        return None
    if kind == "kaiser":
        return _kaiser_lowpass(taps, cutoff=4, fs=16)
    if kind.startswith("random") and kind != "random2d":
        return rng.standard_normal(int(kind[6:] or taps))
    return rng.standard_normal([taps, taps - 1])


@pytest.mark.parametrize("fu_kind,fd_kind,up,down,padding,clamp", CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_matches_direct_formula(fu_kind, fd_kind, up, down, padding, clamp, flip):
    rng = np.random.default_rng(1)
    x = rng.standard_normal([2, 3, 9, 8])
    b = rng.standard_normal(3)
    fu = _filter(fu_kind, 4 * up if up > 1 else 5, rng)
    fd = _filter(fd_kind, 4 * down if down > 1 else 5, rng)
    expect = direct(x, fu, fd, b, up, down, padding, gain=math.sqrt(2), slope=0.2, clamp=clamp, flip=flip)
    t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    for fn in (filtered_lrelu_ref, filtered_lrelu):
        got = fn(t(x), t(fu), t(fd), t(b), up=up, down=down, padding=padding, clamp=clamp, flip_filter=flip)
        assert tuple(got.shape[2:]) == expect.shape[2:] == output_size((9, 8), t(fu), t(fd), up, down, padding)
        np.testing.assert_allclose(got.numpy(), expect, atol=1e-10, rtol=1e-10)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="up=0"):
        filtered_lrelu(torch.zeros([1, 1, 4, 4]), up=0)
    with pytest.raises(ValueError, match="NCHW"):
        filtered_lrelu_ref(torch.zeros([4, 4]))


def test_gain_and_slope():
    x = torch.tensor([[[[-2.0, 3.0]]]], dtype=torch.float64)
    y = filtered_lrelu_ref(x, gain=0.5, slope=0.1)
    assert torch.allclose(y, torch.tensor([[[[-0.1, 1.5]]]], dtype=torch.float64))


def _grad_inputs(clamp: float | None):
    g = torch.Generator().manual_seed(3)
    x = torch.randn([1, 2, 3, 3], dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn([2], dtype=torch.float64, generator=g, requires_grad=True)
    fu = torch.randn([4], dtype=torch.float64, generator=g)
    fd = torch.randn([3, 4], dtype=torch.float64, generator=g)
    kw = dict(fu=fu, fd=fd, up=2, down=2, padding=(3, 2, 2, 3), clamp=clamp)
    return x, b, kw


@pytest.mark.parametrize("clamp", [None, 2.0])
def test_first_and_second_derivatives(clamp):
    x, b, kw = _grad_inputs(clamp)
    # No pre-activation value sits on a kink (0, +-clamp), where finite differences are undefined.
    with torch.no_grad():
        pre = filtered_lrelu_ref(x, b=b, slope=1.0, gain=1.0, **{**kw, "fd": None, "clamp": None})
    kinks = [0.0] + ([clamp / math.sqrt(2), -clamp / (math.sqrt(2) * 0.2)] if clamp else [])
    assert min((pre - k).abs().min().item() for k in kinks) > 1e-4
    if clamp:
        assert (pre * math.sqrt(2) > clamp).any()  # the clamp is active somewhere
    for op in (filtered_lrelu_ref, filtered_lrelu):
        fn = lambda x, b: op(x, b=b, **kw)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))
