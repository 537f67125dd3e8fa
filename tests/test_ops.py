"""StyleGAN2 ops against independent computations: upfirdn2d, resampling convs, modulated conv, bias_act."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import signal

from facegen_cli.ops.bias_act import (ACTIVATIONS, POSITIVELY_HOMOGENEOUS, bias_act, bias_act_folded,
                                      bias_act_ref)
from facegen_cli.ops.conv2d_resample import (conv2d_resample, conv2d_resample_ref, demodulation_coefficients,
                                             demodulation_coefficients_ref, modulated_conv2d)
from facegen_cli.ops.upfirdn2d import downfir2d_strided, downsample2d, setup_filter, upfirdn2d, upfirdn2d_ref, upsample2d


def numpy_upfirdn2d(x: np.ndarray, f: np.ndarray, up: tuple[int, int], down: tuple[int, int],
                    pad: tuple[int, int, int, int], flip_filter: bool, gain: float) -> np.ndarray:
    """Zero-insert, pad/crop, FIR (true convolution unless flip_filter), decimate, in numpy/scipy."""
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = pad
    if f.ndim == 1:
        f2 = np.outer(f, f) * gain
    else:
        f2 = f * gain
    n, c, h, w = x.shape
    up_img = np.zeros((n, c, h * upy, w * upx), dtype=np.float64)
    up_img[:, :, ::upy, ::upx] = x
    padded = np.pad(up_img, ((0, 0), (0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))))
    padded = padded[:, :, max(-y0, 0): padded.shape[2] - max(-y1, 0), max(-x0, 0): padded.shape[3] - max(-x1, 0)]
    op = signal.correlate2d if flip_filter else signal.convolve2d
    out = np.stack([np.stack([op(padded[i, j], f2, mode="valid") for j in range(c)]) for i in range(n)])
    return out[:, :, ::downy, ::downx]


UPFIRDN_CASES = [
    # (up, down, padding (x0, x1, y0, y1), filter taps, separable, flip_filter, gain)
    ((1, 1), (1, 1), (0, 0, 0, 0), [1, 3, 3, 1], False, False, 1.0),
    ((2, 2), (1, 1), (2, 1, 2, 1), [1, 3, 3, 1], False, False, 4.0),
    ((1, 1), (2, 2), (1, 1, 1, 1), [1, 3, 3, 1], False, False, 1.0),
    ((2, 2), (2, 2), (1, 2, 0, 3), [1, 2, 3, 4], False, True, 2.5),
    ((3, 1), (1, 2), (-1, 2, 3, -2), [1, 2, 5, 1, 3], False, False, 1.0),
    ((1, 1), (1, 1), (-2, -1, -1, -3), [2, 1, 4], False, True, 1.0),
    ((2, 2), (1, 1), (4, 3, 4, 3), [1, 3, 2, 5, 5, 2, 3, 1], True, False, 4.0),
    ((1, 1), (3, 3), (3, 4, 3, 4), [1, 2, 3, 4, 5, 4, 3, 2, 1], True, True, 0.5),
    ((1, 1), (1, 1), (1, 1, 1, 1), [1, 3, 3, 1], False, False, 4.0),  # after a transposed conv: the conv pads
    ((1, 1), (1, 1), (3, 3, 2, 2), [1, 3, 2, 5, 5, 2, 3, 1], True, True, 1.0),
]


@pytest.mark.parametrize("up,down,pad,taps,separable,flip_filter,gain", UPFIRDN_CASES)
def test_upfirdn2d_ref_matches_numpy(up, down, pad, taps, separable, flip_filter, gain):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([2, 3, 9, 11], generator=gen, dtype=torch.float64)
    f = setup_filter(taps, separable=separable).to(torch.float64)
    assert f.ndim == (1 if separable else 2)
    got = upfirdn2d_ref(x, f, up=up, down=down, padding=list(pad), flip_filter=flip_filter, gain=gain)
    want = numpy_upfirdn2d(x.numpy(), f.numpy(), up, down, pad, flip_filter, gain)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_upfirdn2d_asymmetric_filter_orientation():
    """An impulse through an asymmetric filter draws the filter itself (true convolution), or its mirror."""
    x = torch.zeros([1, 1, 5, 5])
    x[0, 0, 2, 2] = 1
    f = torch.arange(1.0, 10.0).reshape(3, 3)
    conv = upfirdn2d_ref(x, f, padding=1)
    corr = upfirdn2d_ref(x, f, padding=1, flip_filter=True)
    assert torch.equal(conv[0, 0, 1:4, 1:4], f)
    assert torch.equal(corr[0, 0, 1:4, 1:4], f.flip([0, 1]))


@pytest.mark.parametrize("down,pad,taps,separable,flip_filter,gain", [
    ((2, 2), (1, 1, 1, 1), [1, 3, 3, 1], False, False, 1.0),  # downsample2d's case
    ((2, 2), (2, 1, 2, 1), [1, 3, 3, 1], False, True, 2.0),
    ((1, 2), (-1, 2, 3, -2), [1, 2, 5, 1, 3], False, False, 1.0),
    ((3, 3), (3, 4, 3, 4), [1, 2, 3, 4, 5, 4, 3, 2, 1], True, True, 0.5),
    ((2, 3), (0, 0, 1, 0), None, False, False, 1.0),
])
def test_strided_downsampling_equals_the_reference(down, pad, taps, separable, flip_filter, gain):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn([2, 3, 10, 11], generator=gen, dtype=torch.float64)
    f = setup_filter(taps, separable=separable).to(torch.float64) if taps else None
    want = upfirdn2d_ref(x, f, down=down, padding=list(pad), flip_filter=flip_filter, gain=gain)
    got = downfir2d_strided(x, f, down=down, padding=list(pad), flip_filter=flip_filter, gain=gain)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert torch.equal(upfirdn2d(x, f, down=down, padding=list(pad), flip_filter=flip_filter, gain=gain), got)


@pytest.mark.parametrize("taps,separable", [([1, 3, 3, 1], False), ([1, 3, 2, 5, 5, 2, 3, 1], True)])
def test_strided_downsampling_in_bf16_filters_in_fp32(taps, separable):
    # Under bf16 autocast (and on bf16 input) a CPU filters strided in fp32: the result is the fp32 one rounded
    # once to bf16 where the input is bf16, and the fp32 one itself where the input is fp32.
    gen = torch.Generator().manual_seed(2)
    x = torch.randn([2, 8, 16, 16], generator=gen).contiguous(memory_format=torch.channels_last)
    f = setup_filter(taps, separable=separable)
    pad = [1, 1, 1, 1] if not separable else [3, 3, 3, 3]
    want = upfirdn2d_ref(x.bfloat16().float(), f, down=2, padding=pad)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = downfir2d_strided(x.bfloat16(), f, down=2, padding=pad)
        got_fp32 = downfir2d_strided(x, f, down=2, padding=pad)
    assert got.dtype == torch.bfloat16 and got_fp32.dtype == torch.float32
    torch.testing.assert_close(got, want.bfloat16(), rtol=0, atol=0)
    torch.testing.assert_close(got_fp32, upfirdn2d_ref(x, f, down=2, padding=pad), rtol=1e-6, atol=1e-6)


def test_setup_filter_normalises_and_separates():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and math.isclose(f.sum().item(), 1.0, rel_tol=1e-6)
    assert torch.allclose(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    long = setup_filter([1] * 8)
    assert long.ndim == 1 and math.isclose(long.sum().item(), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("taps", [[1, 3, 3, 1], [1, 1], [1, 3, 5, 7, 7, 5, 3, 1]])
def test_upsample_downsample_shapes_and_constants(taps):
    f = setup_filter(taps)
    x = torch.full([2, 3, 12, 10], 0.7)
    up = upsample2d(x, f)
    assert up.shape == (2, 3, 24, 20)
    border = len(taps)
    assert torch.allclose(up[:, :, border:-border, border:-border], torch.tensor(0.7), atol=1e-6)
    down = downsample2d(torch.full([2, 3, 24, 20], 0.7), f)
    assert down.shape == (2, 3, 12, 10)
    b = (len(taps) + 1) // 2
    assert torch.allclose(down[:, :, b:-b, b:-b], torch.tensor(0.7), atol=1e-6)
    assert upsample2d(torch.randn(1, 1, 5, 7), f, up=(2, 3)).shape == (1, 1, 15, 14)
    assert downsample2d(torch.randn(1, 1, 12, 12), f, down=4).shape == (1, 1, 3, 3)


def test_upsample_keeps_image_centred():
    """Up then down with the same filter returns a smooth image unshifted (its centre of mass stays)."""
    f = setup_filter([1, 3, 3, 1])
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    blob = torch.exp(-((yy - 7.5) ** 2 + (xx - 7.5) ** 2) / 8)[None, None]
    round_trip = downsample2d(upsample2d(blob, f), f)
    assert round_trip.shape == blob.shape
    for img in (blob, round_trip):
        m = img[0, 0] / img[0, 0].sum()
        assert math.isclose((m * yy).sum().item(), 7.5, abs_tol=1e-3)
        assert math.isclose((m * xx).sum().item(), 7.5, abs_tol=1e-3)


def _conv_cases():
    cases = []
    for up, down, k, groups, flip_weight, padding in itertools.product(
            (1, 2), (1, 2), (1, 3), (1, 2), (True, False), (0, [1, 0, 2, 1])):
        cases.append((up, down, k, groups, flip_weight, padding, False, True))
    # Centred padding, no filter, and a flipped asymmetric filter.
    for up, down, k in itertools.product((1, 2), (1, 2), (1, 3)):
        cases.append((up, down, k, 1, True, k // 2, False, False))
        cases.append((up, down, k, 2, False, k // 2, True, True))
    return cases


@pytest.mark.parametrize("up,down,k,groups,flip_weight,padding,flip_filter,with_filter", _conv_cases())
def test_conv2d_resample_matches_reference(up, down, k, groups, flip_weight, padding, flip_filter, with_filter):
    gen = torch.Generator().manual_seed(1)
    f = setup_filter([1, 2, 3, 1]) if flip_filter else setup_filter([1, 3, 3, 1])
    f = f.to(torch.float64) if with_filter else None
    x = torch.randn([2, 4, 7, 8], generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn([6, 4 // groups, k, k], generator=gen, dtype=torch.float64, requires_grad=True)
    kwargs = dict(f=f, up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight,
                  flip_filter=flip_filter)
    fast = conv2d_resample(x, w, **kwargs)
    ref = conv2d_resample_ref(x, w, **kwargs)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, rtol=1e-9, atol=1e-9)
    r = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    gx_fast, gw_fast = torch.autograd.grad((fast * r).sum(), [x, w])
    gx_ref, gw_ref = torch.autograd.grad((ref * r).sum(), [x, w])
    torch.testing.assert_close(gx_fast, gx_ref, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gw_fast, gw_ref, rtol=1e-9, atol=1e-9)


def test_conv2d_resample_ref_is_a_plain_convolution_without_resampling():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn([1, 2, 6, 6], generator=gen)
    w = torch.randn([3, 2, 3, 3], generator=gen)
    ref = conv2d_resample_ref(x, w, padding=1)
    torch.testing.assert_close(ref, torch.nn.functional.conv2d(x, w, padding=1))
    true_conv = conv2d_resample_ref(x, w, padding=1, flip_weight=False)
    torch.testing.assert_close(true_conv, torch.nn.functional.conv2d(x, w.flip([2, 3]), padding=1))


def test_conv2d_resample_output_sizes():
    f = setup_filter([1, 3, 3, 1])
    x = torch.randn([1, 4, 8, 8])
    w3 = torch.randn([5, 4, 3, 3])
    assert conv2d_resample(x, w3, f, up=2, padding=1).shape == (1, 5, 16, 16)
    assert conv2d_resample(x, w3, f, down=2, padding=1).shape == (1, 5, 4, 4)
    assert conv2d_resample(x, torch.randn([5, 4, 1, 1]), f, down=2).shape == (1, 5, 4, 4)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("with_noise", [False, True])
def test_modulated_conv_fused_equals_non_fused(demodulate, up, with_noise):
    gen = torch.Generator().manual_seed(3)
    batch, in_ch, out_ch, res = 3, 5, 4, 6
    x = torch.randn([batch, in_ch, res, res], generator=gen, dtype=torch.float64)
    k = 3 if demodulate else 1
    weight = torch.randn([out_ch, in_ch, k, k], generator=gen, dtype=torch.float64)
    styles = torch.randn([batch, in_ch], generator=gen, dtype=torch.float64) + 1
    out_res = res * up
    noise = torch.randn([batch, 1, out_res, out_res], generator=gen, dtype=torch.float64) if with_noise else None
    kwargs = dict(noise=noise, up=up, padding=k // 2, resample_filter=setup_filter([1, 3, 3, 1]).double(),
                  demodulate=demodulate, flip_weight=(up == 1))
    fused = modulated_conv2d(x, weight, styles, fused_modconv=True, **kwargs)
    plain = modulated_conv2d(x, weight, styles, fused_modconv=False, **kwargs)
    assert fused.shape == (batch, out_ch, out_res, out_res)
    torch.testing.assert_close(fused, plain, rtol=1e-9, atol=1e-9)
    # Independent formula: per-sample weights w_ij * s_j, demodulated by the norm over (j, kh, kw).
    for i in range(batch):
        wi = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            wi = wi / wi.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        yi = conv2d_resample_ref(x[i:i + 1], wi, f=kwargs["resample_filter"], up=up, padding=k // 2,
                                 flip_weight=(up == 1))
        if noise is not None:
            yi = yi + noise[i:i + 1]
        torch.testing.assert_close(fused[i:i + 1], yi, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("k", [1, 3])
def test_demodulation_coefficients_equal_the_per_sample_weight_norms(k):
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn([6, 7, k, k], generator=gen, dtype=torch.float64, requires_grad=True)
    styles = (torch.randn([4, 7], generator=gen, dtype=torch.float64) * 3).requires_grad_()
    fast = demodulation_coefficients(weight, styles)
    ref = demodulation_coefficients_ref(weight, styles)
    assert fast.shape == (4, 6)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=0)
    # Same gradients, to second order (path-length and R1 differentiate through G twice).
    probe = torch.randn([4, 6], generator=gen, dtype=torch.float64)
    grads = [torch.autograd.grad((d * probe).sum(), [weight, styles], create_graph=True) for d in (fast, ref)]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    second = [torch.autograd.grad(g[1].square().sum(), weight)[0] for g in grads]
    torch.testing.assert_close(second[0], second[1], rtol=1e-10, atol=1e-12)
    # Demodulated filters have unit norm.
    w = weight * styles[0].reshape(1, -1, 1, 1) * fast[0].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(w.square().sum(dim=[1, 2, 3]), torch.ones(6, dtype=torch.float64), rtol=1e-6, atol=0)


def test_modulated_conv_demodulation_gives_unit_variance():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn([2, 64, 16, 16], generator=gen)
    weight = torch.randn([32, 64, 3, 3], generator=gen)
    styles = torch.rand([2, 64], generator=gen) * 10 + 0.1
    y = modulated_conv2d(x, weight, styles, padding=1)
    inner = y[:, :, 1:-1, 1:-1]
    assert 0.85 < inner.std().item() < 1.15


ACT_FORMULAS = {
    "linear": lambda x: x,
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "lrelu": lambda x: torch.where(x > 0, x, 0.2 * x),
    "tanh": lambda x: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1),
    "sigmoid": lambda x: 1 / (1 + torch.exp(-x)),
    "elu": lambda x: torch.where(x > 0, x, torch.exp(x) - 1),
    "selu": lambda x: 1.0507009873554805 * torch.where(x > 0, x, 1.6732632423543772 * (torch.exp(x) - 1)),
    "softplus": lambda x: torch.log(1 + torch.exp(x)),
    "swish": lambda x: x / (1 + torch.exp(-x)),
}
DEFAULT_GAINS = {"relu": math.sqrt(2), "lrelu": math.sqrt(2), "swish": math.sqrt(2)}


def test_every_activation_has_a_formula():
    assert set(ACT_FORMULAS) == set(ACTIVATIONS)


def _act_input(seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn([3, 4, 5, 2], generator=gen, dtype=torch.float64) * 2
    x = torch.where(x.abs() < 1e-3, torch.full_like(x, 0.5), x)  # keep away from the kinks
    b = torch.randn([4], generator=gen, dtype=torch.float64)
    return x, b


@pytest.mark.parametrize("act", sorted(ACT_FORMULAS))
@pytest.mark.parametrize("gain,clamp", [(None, None), (0.7, None), (None, 0.9), (2.5, 1.3)])
def test_bias_act_matches_formula(act, gain, clamp):
    x, b = _act_input()
    got = bias_act(x, b, dim=1, act=act, gain=gain, clamp=clamp)
    g = DEFAULT_GAINS.get(act, 1.0) if gain is None else gain
    want = ACT_FORMULAS[act](x + b.reshape(1, -1, 1, 1)) * g
    if clamp is not None:
        want = want.clamp(-clamp, clamp)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_bias_act_dim_alpha_and_no_bias():
    x, b = _act_input()
    got = bias_act(x, b[:2], dim=3, act="lrelu", alpha=0.1, gain=1)
    y = x + b[:2].reshape(1, 1, 1, -1)
    torch.testing.assert_close(got, torch.where(y > 0, y, 0.1 * y))
    torch.testing.assert_close(bias_act(x, None, act="tanh"), torch.tanh(x))
    assert torch.equal(bias_act_ref(x), x)


@pytest.mark.parametrize("act", sorted(ACT_FORMULAS))
def test_bias_act_double_backward(act):
    x, b = _act_input(6)
    gain, clamp = 1.7, 2.0
    results = []
    for fn in (lambda xx, bb: bias_act(xx, bb, act=act, gain=gain, clamp=clamp),
               lambda xx, bb: (ACT_FORMULAS[act](xx + bb.reshape(1, -1, 1, 1)) * gain).clamp(-clamp, clamp)):
        xx = x.clone().requires_grad_(True)
        bb = b.clone().requires_grad_(True)
        y = fn(xx, bb)
        gx, gb = torch.autograd.grad(y.square().sum(), [xx, bb], create_graph=True)
        ggx, ggb = torch.autograd.grad(gx.sum() + gb.square().sum(), [xx, bb])
        results.append((y, gx, gb, ggx, ggb))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-8)
    assert torch.autograd.gradgradcheck(
        lambda xx, bb: bias_act(xx, bb, act=act, gain=gain), (x[:1, :, :2, :1].clone().requires_grad_(True),
                                                                b.clone().requires_grad_(True)))


@pytest.mark.parametrize("act", sorted(POSITIVELY_HOMOGENEOUS))
@pytest.mark.parametrize("gain,clamp,with_bias", [(None, None, True), (0.7, None, True), (2.5, 1.3, True),
                                                  (1.0, None, False), (0.5, 0.4, False)])
def test_bias_act_folded_equals_the_reference_with_derivatives(act, gain, clamp, with_bias):
    x, b = _act_input(7)
    b = b if with_bias else None
    results = []
    for fn in (bias_act_folded, bias_act_ref):
        xx = x.clone().requires_grad_(True)
        bb = b.clone().requires_grad_(True) if b is not None else None
        y = fn(xx, bb, act=act, alpha=0.1, gain=gain, clamp=clamp)
        inputs = [xx] + ([bb] if bb is not None else [])
        grads = torch.autograd.grad(y.square().sum(), inputs, create_graph=True)
        second = torch.autograd.grad(sum(g.sum() for g in grads), inputs, allow_unused=True)
        results.append((y, *grads, *[g if g is not None else torch.zeros(()) for g in second]))
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # The dispatcher folds on a CPU where the activation allows it, and falls back to the reference where not.
    assert torch.equal(bias_act(x, b, act=act, gain=gain, clamp=clamp), bias_act_folded(x, b, act=act, gain=gain,
                                                                                        clamp=clamp))
    assert torch.equal(bias_act(x, b, act=act, gain=-1.5), bias_act_ref(x, b, act=act, gain=-1.5))


def test_bias_act_clamp_stops_gradient():
    x = torch.tensor([[-5.0, -0.5, 0.5, 5.0]], requires_grad=True)
    y = bias_act(x, act="linear", clamp=1.0)
    assert torch.equal(y.detach(), torch.tensor([[-1.0, -0.5, 0.5, 1.0]]))
    (g,) = torch.autograd.grad(y.sum(), [x])
    assert torch.equal(g, torch.tensor([[0.0, 1.0, 1.0, 0.0]]))


def test_kernel_builds_live_in_facegens_cache(monkeypatch, tmp_path):
    """FACEGEN_CACHE moves the compiled kernels too (only the folder is asked for: nothing is compiled)."""
    from facegen_cli.ops import build

    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = build.build_dir("bias_act", "9.0")
    assert folder.is_relative_to(tmp_path / "cache" / "torch_extensions") and folder.name == "bias_act"
    assert not (tmp_path / "xdg").exists()
