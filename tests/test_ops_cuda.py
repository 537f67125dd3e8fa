"""The CUDA kernels of bias_act and upfirdn2d against their references, and the fallback.

Tests marked `cuda` need a GPU (`pytest -m cuda`); they draw fresh random inputs on every
run and print the seed, so a failure can be replayed. The others check, on any machine, that
CPU tensors never touch the kernels, that a missing toolkit or a broken build falls back to
the reference with exactly one warning, and that the adjoint geometry the kernel's backward
uses is the reference's gradient.
"""
from __future__ import annotations

import random
import shutil
import warnings

import pytest
import torch

from facegen_cli.ops import build
from facegen_cli.ops.bias_act import ACTIVATIONS, bias_act, bias_act_folded, bias_act_ref
from facegen_cli.ops.upfirdn2d import setup_filter, upfirdn2d, upfirdn2d_ref
from facegen_cli.ops.upfirdn2d_cuda import Geometry
from tiny_nets import tiny_D, tiny_G

ACTS = list(ACTIVATIONS)
TOL = {torch.float32: 1e-5, torch.float16: 1e-2}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str = "") -> None:
    """Close within `tol` relative to the largest magnitude of `expected` (at least 1)."""
    actual, expected = actual.detach().float(), expected.detach().float()
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol * scale, msg=lambda m: f"{what}: {m}")


# ---------------------------------------------------------------- fallback (any machine)

class _Untouchable:
    def status(self):
        raise AssertionError("the kernel loader must not run for CPU tensors")


def test_cpu_tensors_take_the_cpu_paths_silently(monkeypatch):
    monkeypatch.setattr(build, "_LOADER", _Untouchable())
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    f = setup_filter([1, 3, 3, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = bias_act(x, b, act="lrelu", clamp=0.5)
        z = upfirdn2d(y, f, up=2, padding=[2, 1, 2, 1], gain=4)
        z.square().sum().backward()
    assert torch.equal(y, bias_act_folded(x, b, act="lrelu", clamp=0.5))  # the reference, the gain folded in
    torch.testing.assert_close(y, bias_act_ref(x, b, act="lrelu", clamp=0.5))
    assert torch.equal(z, upfirdn2d_ref(y, f, up=2, padding=[2, 1, 2, 1], gain=4))
    assert x.grad is not None and b.grad is not None


def _pretend_gpu(monkeypatch) -> None:
    """Make the loader believe an sm_90 GPU is present."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))


def _fallback_warnings(record) -> list[warnings.WarningMessage]:
    return [w for w in record if issubclass(w.category, build.CudaOpsWarning)]


def test_missing_toolkit_warns_once_and_falls_back(monkeypatch, tmp_path):
    _pretend_gpu(monkeypatch)
    monkeypatch.setattr(build, "_LOADER", build.OpsLoader(cache=tmp_path))

    def no_toolkit() -> str:
        raise build.ToolkitNotFound("no CUDA toolkit found: set CUDA_HOME")

    monkeypatch.setattr(build, "find_cuda_home", no_toolkit)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert build.cuda_op("bias_act") is None
        assert build.cuda_op("upfirdn2d") is None
        described = build.describe_ops()
    assert len(_fallback_warnings(record)) == 1
    assert "bias_act, upfirdn2d" in str(_fallback_warnings(record)[0].message)
    assert all(reason.startswith("reference:") and "CUDA_HOME" in reason for reason in described.values())


@pytest.mark.skipif(shutil.which("ninja") is None, reason="needs ninja to attempt a build")
def test_broken_build_warns_once_and_falls_back(monkeypatch, tmp_path):
    try:
        build.find_cuda_home()
    except build.ToolkitNotFound as exc:
        pytest.skip(f"needs a CUDA toolkit to attempt a build: {exc}")
    csrc = tmp_path / "csrc"
    csrc.mkdir()
    for op in build.OPS:
        for ext in ("cpp", "cu"):
            (csrc / f"{op}.{ext}").write_text("#error deliberately broken\n")
    _pretend_gpu(monkeypatch)
    monkeypatch.setattr(build, "_LOADER", build.OpsLoader(csrc_dir=csrc, cache=tmp_path / "cache"))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert build.cuda_op("bias_act") is None
        assert build.cuda_op("upfirdn2d") is None
        assert build.cuda_op("bias_act") is None
        described = build.describe_ops()
    assert len(_fallback_warnings(record)) == 1
    for reason in described.values():
        assert reason.startswith("reference: build failed") and "deliberately broken" in reason


def test_describe_ops_without_a_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(build, "_LOADER", build.OpsLoader())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        described = build.describe_ops()
    assert set(described) == set(build.OPS)
    assert all(reason.startswith("reference: no CUDA") for reason in described.values())
    with build.reference_ops():
        assert all("forced" in reason for reason in build.describe_ops().values())
        assert build.cuda_op("bias_act") is None


def test_cache_dir_and_arch_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.cache_root() == tmp_path / "facegen" / "torch_extensions"
    assert build.build_dir("bias_act", "8.0;9.0").parts[-2:] == ("sm_80_90", "bias_act")
    assert build.gencode_flags("9.0") == ["-gencode=arch=compute_90,code=sm_90"]
    assert build.gencode_flags("8.6 9.0a+PTX") == ["-gencode=arch=compute_86,code=sm_86",
                                                   "-gencode=arch=compute_90a,code=sm_90a",
                                                   "-gencode=arch=compute_90a,code=compute_90a"]
    with pytest.raises(ValueError):
        build.gencode_flags("Hopper")


def test_cuda_home_is_checked(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_PATH", raising=False)
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    with pytest.raises(build.ToolkitNotFound, match="CUDA_HOME"):
        build.find_cuda_home()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "nvcc").write_text("")
    (tmp_path / "lib64").mkdir()
    (tmp_path / "lib64" / "libcudart.so").write_text("")
    assert build.find_cuda_home() == str(tmp_path)


def _random_cases(rng: random.Random, count: int, max_side: int):
    """`count` random (input height-width, filter, filter height-width, geometry) that fit:
    1-D separable or 2-D filters, up and down 1-3 per axis, pads -2..4, flip, gains."""
    made = 0
    while made < count:
        in_hw = (rng.randint(1, max_side), rng.randint(1, max_side))
        separable = rng.random() < 0.25
        f = torch.rand(rng.randint(2, 9)) if separable else torch.rand(rng.randint(1, 5), rng.randint(1, 5))
        f_hw = (f.shape[0], f.shape[-1])
        g = Geometry((rng.randint(1, 3), rng.randint(1, 3)), (rng.randint(1, 3), rng.randint(1, 3)),
                     tuple(rng.randint(-2, 4) for _ in range(4)), rng.random() < 0.5,
                     rng.choice([1.0, 2.0, 0.5, 4.0]))
        (upx, upy), (px0, px1, py0, py1) = g.up, g.pad
        if in_hw[0] * upy + py0 + py1 >= f_hw[0] and in_hw[1] * upx + px0 + px1 >= f_hw[1]:
            made += 1
            yield in_hw, f, f_hw, g


def _ref(x: torch.Tensor, f: torch.Tensor, g: Geometry) -> torch.Tensor:
    return upfirdn2d_ref(x, f, up=g.up, down=g.down, padding=list(g.pad), flip_filter=g.flip, gain=g.gain)


def test_adjoint_geometry_is_the_gradient():
    """The kernel's backward runs upfirdn2d with Geometry.adjoint; on the reference that must
    give exactly autograd's gradient, for every up/down/pad/flip/filter shape."""
    seed = random.randrange(2 ** 31)
    for in_hw, f, f_hw, g in _random_cases(random.Random(seed), 60, 9):
        x = torch.randn(2, 3, *in_hw, dtype=torch.float64, requires_grad=True)
        y = _ref(x, f.double(), g)
        dy = torch.randn_like(y)
        (want,) = torch.autograd.grad(y, x, dy)
        got = _ref(dy, f.double(), g.adjoint(in_hw, tuple(y.shape[2:]), f_hw))
        assert got.shape == want.shape, f"seed {seed}: {g}"
        torch.testing.assert_close(got, want, msg=lambda m: f"seed {seed}, {g}: {m}")


# ---------------------------------------------------------------- kernels (GPU)

def gpu_test(fn):
    """Marked `cuda`, skipped without a device, and run only once the kernels have built."""
    fn = pytest.mark.usefixtures("kernels")(fn)
    fn = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")(fn)
    return pytest.mark.cuda(fn)


@pytest.fixture
def kernels():
    """The compiled kernels must be what runs: a test of reference against reference proves nothing."""
    described = build.describe_ops()
    for op, reason in described.items():
        assert reason.startswith("cuda kernel"), f"{op}: {reason}"
    return described


@pytest.fixture
def seed() -> int:
    seed = random.randrange(2 ** 31)
    print(f"seed {seed}")
    torch.manual_seed(seed)
    return seed


BIAS_ACT_CASES = [
    # (shape, dim, with bias, gain, alpha, clamp, channels_last)
    ((8, 33), 1, True, None, None, None, False),
    ((2, 7, 9, 11), 1, True, None, None, 0.9, False),
    ((3, 5, 6), 2, True, 0.7, 0.3, None, False),
    ((4, 6, 5, 5), 1, True, 1.5, None, 2.0, True),
    ((5, 129), 1, False, None, None, 0.5, False),
    ((2, 64, 16, 16), 1, True, None, None, None, False),
]


def _bias_act_inputs(shape, dim, with_bias, dtype, channels_last):
    x = torch.randn(shape, device="cuda") * 3
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x = x.to(dtype).requires_grad_()
    b = torch.randn(shape[dim], device="cuda").to(dtype).requires_grad_() if with_bias else None
    return x, b


def _grad_or_none(out: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor | None]:
    """Gradients of `out`; None for inputs it does not depend on (or all, if it is constant)."""
    if not out.requires_grad:
        return [None] * len(inputs)
    return list(torch.autograd.grad(out, inputs, allow_unused=True))


@pytest.mark.parametrize("case", BIAS_ACT_CASES, ids=lambda c: "x".join(map(str, c[0])))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("act", ACTS)
@gpu_test
def test_bias_act_kernel_matches_reference(act, dtype, case, seed):
    shape, dim, with_bias, gain, alpha, clamp, channels_last = case
    x, b = _bias_act_inputs(shape, dim, with_bias, dtype, channels_last)
    kwargs = dict(dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    # The kernel computes in float32 whatever the storage; so does the reference on upcast inputs.
    xr = x.detach().float().requires_grad_()
    br = b.detach().float().requires_grad_() if b is not None else None
    y = bias_act(x, b, **kwargs)
    yr = bias_act_ref(xr, br, **kwargs)
    assert y.dtype == dtype and y.shape == yr.shape
    assert_close(y, yr, TOL[dtype], "output")

    dy = torch.randn_like(yr)
    if clamp is not None:
        # Whether an element within rounding of the clamp passes its gradient is decided by
        # the last bit of act(); keep such elements out of the comparison.
        free = bias_act_ref(xr.detach(), None if br is None else br.detach(), dim=dim, act=act, alpha=alpha, gain=gain)
        dy[(free.abs() - clamp).abs() < 1e-3 * clamp] = 0
    inputs, inputs_r = [x] + ([b] if b is not None else []), [xr] + ([br] if br is not None else [])
    grads = torch.autograd.grad(y, inputs, dy.to(dtype), create_graph=True)
    grads_r = torch.autograd.grad(yr, inputs_r, dy, create_graph=True)
    for name, g, gr in zip(["dx", "db"], grads, grads_r):
        assert_close(g, gr, TOL[dtype] * 4, name)

    # Double backward (R1, path length): d/d(x, b) of <dx, w>.
    w = torch.randn_like(xr)
    second = _grad_or_none((grads[0].float() * w).sum(), inputs)
    second_r = _grad_or_none((grads_r[0] * w).sum(), inputs_r)
    for name, g, gr in zip(["ddx", "ddb"], second, second_r):
        gr = torch.zeros_like(xr if name == "ddx" else br) if gr is None else gr
        g = torch.zeros_like(gr) if g is None else g
        assert_close(g, gr, TOL[dtype] * 8, name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("act", ACTS)
@gpu_test
def test_bias_act_kernel_takes_torchs_side_of_the_kink(act, dtype, seed):
    """x + b exactly 0 (common in fp16: one element in ~4,000 of the random test lands there):
    act' and act'' there are torch's (elu: exp(0) and 0), not the other side's."""
    b = torch.randn(8, device="cuda").to(dtype)
    x = (-b).repeat(4, 1).requires_grad_()
    xr = x.detach().float().requires_grad_()
    kwargs = dict(dim=1, act=act, alpha=0.2, gain=1.3)
    (g,) = torch.autograd.grad(bias_act(x, b, **kwargs).sum(), x, create_graph=True)
    (gr,) = torch.autograd.grad(bias_act_ref(xr, b.float(), **kwargs).sum(), xr, create_graph=True)
    assert_close(g, gr, TOL[dtype], "dx")
    second = _grad_or_none(g.float().sum(), [x])[0]
    second_r = _grad_or_none(gr.sum(), [xr])[0]
    second = torch.zeros_like(xr) if second is None else second
    second_r = torch.zeros_like(xr) if second_r is None else second_r
    assert_close(second, second_r, TOL[dtype], "ddx")


@pytest.mark.parametrize("clamp", [None, 0.8])
@pytest.mark.parametrize("act", ACTS)
@gpu_test
def test_bias_act_kernel_gradcheck_float64(act, clamp, seed):
    x = (torch.randn(3, 4, 5, device="cuda", dtype=torch.float64) * 2).requires_grad_()
    b = torch.randn(4, device="cuda", dtype=torch.float64).requires_grad_()

    def fn(x, b):
        return bias_act(x, b, act=act, gain=1.3, clamp=clamp)

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


@gpu_test
def test_bias_act_third_derivative_is_an_error_not_a_wrong_answer(seed):
    x = torch.randn(4, 3, device="cuda", requires_grad=True)
    (g,) = torch.autograd.grad(bias_act(x, act="tanh").sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(gg.sum(), x)


UPFIRDN_FIXED = [
    # (shape, taps, separable, up, down, pad, flip, gain): what the networks run, and edges
    ((4, 32, 8, 8), [1, 3, 3, 1], False, 2, 1, (2, 1, 2, 1), False, 4.0),      # upsample2d
    ((4, 32, 16, 16), [1, 3, 3, 1], False, 1, 2, (1, 1, 1, 1), False, 1.0),    # downsample2d
    ((2, 16, 33, 17), [1, 3, 3, 1], False, 1, 1, (-1, 2, 0, 1), True, 1.0),    # crop + pad
    ((2, 3, 20, 24), [1, 2, 3, 4, 4, 3, 2, 1], True, 2, 1, (4, 3, 4, 3), False, 4.0),  # separable
    ((1, 5, 9, 9), None, None, 1, 1, (1, 1, 1, 1), False, 1.0),               # no filter: pad only
    ((3, 4, 1, 1), [1, 3, 3, 1], False, 2, 1, (2, 1, 2, 1), False, 4.0),       # 1x1 planes
    ((1, 2, 130, 70), [1, 3, 3, 1], False, (2, 1), (1, 2), (2, 1, 0, 3), False, 2.0),  # anisotropic
]


def _upfirdn_filter(taps, separable):
    return None if taps is None else setup_filter(taps, separable=separable, device="cuda")


def _check_upfirdn(x, f, up, down, pad, flip, gain, dtype, what):
    kwargs = dict(up=up, down=down, padding=list(pad), flip_filter=flip, gain=gain)
    xr = x.detach().float().requires_grad_()
    y = upfirdn2d(x, f, **kwargs)
    yr = upfirdn2d_ref(xr, f, **kwargs)
    assert y.dtype == x.dtype and y.shape == yr.shape, what
    assert_close(y, yr, TOL[dtype], f"{what} output")
    dy = torch.randn_like(yr)
    (dx,) = torch.autograd.grad(y, x, dy.to(dtype))
    (dxr,) = torch.autograd.grad(yr, xr, dy)
    assert_close(dx, dxr, TOL[dtype] * 4, f"{what} gradient")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("case", UPFIRDN_FIXED, ids=lambda c: "x".join(map(str, c[0])))
@gpu_test
def test_upfirdn2d_kernel_matches_reference(case, dtype, seed):
    shape, taps, separable, up, down, pad, flip, gain = case
    x = torch.randn(shape, device="cuda", dtype=dtype, requires_grad=True)
    _check_upfirdn(x, _upfirdn_filter(taps, separable), up, down, pad, flip, gain, dtype, str(case))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@gpu_test
def test_upfirdn2d_kernel_random_geometries(dtype, seed):
    rng = random.Random(seed)
    for in_hw, f, _, g in _random_cases(rng, 40, 40):
        x = torch.randn(rng.randint(1, 3), rng.randint(1, 6), *in_hw, device="cuda", dtype=dtype)
        if rng.random() < 0.3:
            x = x.to(memory_format=torch.channels_last)
        _check_upfirdn(x.requires_grad_(), f.cuda(), g.up, g.down, g.pad, g.flip, g.gain, dtype, str(g))


@gpu_test
def test_upfirdn2d_kernel_strided_input_and_many_planes(seed):
    wide = torch.randn(2, 6, 20, 40, device="cuda")
    sliced = wide[:, ::2, :, 5:37].requires_grad_()  # a view with gaps
    f = setup_filter([1, 3, 3, 1], device="cuda")
    _check_upfirdn(sliced, f, 1, 2, (1, 1, 1, 1), False, 1.0, torch.float32, "strided view")
    # More planes than one grid row of blocks covers (65535 x 1 plane per 32x32 tile).
    many = torch.randn(1, 70000, 32, 32, device="cuda", dtype=torch.float16)
    got = upfirdn2d(many, f, padding=[1, 2, 1, 2])
    want = upfirdn2d_ref(many.float(), f, padding=[1, 2, 1, 2])
    assert_close(got, want, TOL[torch.float16], "70000 planes")


@pytest.mark.parametrize("case", UPFIRDN_FIXED[:4], ids=lambda c: "x".join(map(str, c[0])))
@gpu_test
def test_upfirdn2d_kernel_gradcheck_float64(case, seed):
    shape, taps, separable, up, down, pad, flip, gain = case
    x = torch.randn(1, 2, *shape[2:], device="cuda", dtype=torch.float64, requires_grad=True)
    f = _upfirdn_filter(taps, separable)

    def fn(x):
        return upfirdn2d(x, f, up=up, down=down, padding=list(pad), flip_filter=flip, gain=gain)

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@gpu_test
def test_networks_match_the_reference_ops(seed):
    """G forward, D forward + backward and R1's double backward: kernels vs references."""
    G = tiny_G(seed % 1000).cuda()
    D = tiny_D(seed % 1000).cuda().requires_grad_(True)
    z = torch.randn(4, G.z_dim, device="cuda")

    def run():
        img = G(z, noise_mode="const").detach().requires_grad_()
        logits = D(img)
        (r1_grad,) = torch.autograd.grad(logits.sum(), img, create_graph=True)
        D.zero_grad(set_to_none=True)
        (logits.sum() + r1_grad.square().sum()).backward()
        return img, logits, [p.grad.clone() for p in D.parameters()]

    img, logits, grads = run()
    with build.reference_ops():
        img_r, logits_r, grads_r = run()
    assert_close(img, img_r, 1e-4, "G image")
    assert_close(logits, logits_r, 1e-4, "D logits")
    for (name, _), g, gr in zip(D.named_parameters(), grads, grads_r):
        assert_close(g, gr, 1e-3, f"D grad {name}")

