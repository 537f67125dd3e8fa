"""Time the StyleGAN2 ops and networks: CUDA kernels against the plain-PyTorch references.

    python benchmarks/ops.py                  # the GPU if there is one, else the CPU
    python benchmarks/ops.py --device cpu --quick
    python benchmarks/ops.py --res 512 --batch 32

Each case runs kernel and reference alternately, `--repeat` times, and reports medians.
On a GPU every case is timed with both paths; on the CPU (or where the kernels did not
build) only the reference runs. "GB/s" is the least memory traffic the op needs (each
input read once, each output written once) divided by the time: against the device's peak
it says how close an op comes to being limited by memory alone. The table is Markdown, to
paste into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from facegen_cli.models.stylegan2 import Discriminator, Generator
from facegen_cli.ops import build
from facegen_cli.ops.bias_act import bias_act
from facegen_cli.ops.upfirdn2d import downsample2d, setup_filter, upsample2d
from timing import calls_for, seconds_per_call


@dataclass
class Case:
    name: str
    shape: str
    dtype: str
    run: Callable[[], object]
    bytes_moved: int | None = None  # least memory traffic of one call, for GB/s
    images: int | None = None  # images per call, for img/s


def _time(case: Case, device: torch.device, repeat: int, with_kernel: bool,
          target_s: float) -> tuple[float | None, float]:
    """Median seconds per call: (kernel or None, reference)."""
    with build.reference_ops():
        calls = calls_for(case.run, device, target_s)
    if with_kernel:
        calls_for(case.run, device, target_s)  # warm the kernel path too
    kernel, reference = [], []
    for _ in range(repeat):
        if with_kernel:
            kernel.append(seconds_per_call(case.run, device, calls))
        with build.reference_ops():
            reference.append(seconds_per_call(case.run, device, calls))
    return (statistics.median(kernel) if kernel else None), statistics.median(reference)


def _elem(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def op_cases(device: torch.device, batch: int, channels: int, res: int, dtypes: list[torch.dtype]) -> list[Case]:
    cases = []
    f = setup_filter([1, 3, 3, 1], device=device)
    for dtype in dtypes:
        dn = str(dtype).removeprefix("torch.")
        x = torch.randn(batch, channels, res, res, device=device, dtype=dtype)
        b = torch.randn(channels, device=device, dtype=dtype)
        n, es = x.numel(), _elem(dtype)
        xg = x.clone().requires_grad_()
        bg = b.clone().requires_grad_()
        dy = torch.randn_like(x)

        def act_fwd(x=x, b=b):
            return bias_act(x, b, act="lrelu", clamp=256)

        def act_fwd_bwd(xg=xg, bg=bg, dy=dy):
            return torch.autograd.grad(bias_act(xg, bg, act="lrelu", clamp=256), [xg, bg], dy)

        shape = f"{batch}x{channels}x{res}x{res}"
        cases.append(Case("bias_act lrelu+clamp fwd", shape, dn, act_fwd, 2 * n * es))
        # backward reads dy and x, writes dx, and reads dx again for the bias gradient
        cases.append(Case("bias_act lrelu+clamp fwd+bwd", shape, dn, act_fwd_bwd, (2 + 4) * n * es))

        low = torch.randn(batch, channels, res // 2, res // 2, device=device, dtype=dtype)
        lowg = low.clone().requires_grad_()
        dup = torch.randn_like(x)

        def up_fwd(low=low):
            return upsample2d(low, f)

        def up_fwd_bwd(lowg=lowg, dup=dup):
            return torch.autograd.grad(upsample2d(lowg, f), lowg, dup)

        def down_fwd(x=x):
            return downsample2d(x, f)

        def down_fwd_bwd(xg=xg, dlow=torch.randn_like(low)):
            return torch.autograd.grad(downsample2d(xg, f), xg, dlow)

        small = low.numel()
        lo_shape = f"{batch}x{channels}x{res // 2}x{res // 2}"
        cases.append(Case("upsample2d 2x fwd", f"{lo_shape} -> {res}", dn, up_fwd, (small + n) * es))
        cases.append(Case("upsample2d 2x fwd+bwd", f"{lo_shape} -> {res}", dn, up_fwd_bwd, 2 * (small + n) * es))
        cases.append(Case("downsample2d 2x fwd", f"{shape} -> {res // 2}", dn, down_fwd, (small + n) * es))
        cases.append(Case("downsample2d 2x fwd+bwd", f"{shape} -> {res // 2}", dn, down_fwd_bwd,
                          2 * (small + n) * es))
    return cases


def network_cases(device: torch.device, args: argparse.Namespace) -> list[Case]:
    torch.manual_seed(0)
    net = dict(img_resolution=args.res, channel_base=args.channel_base, channel_max=args.channel_max,
               num_fp16_res=args.fp16_res, conv_clamp=256 if args.fp16_res else None)
    G = Generator(z_dim=512, w_dim=512, mapping_layers=args.mapping, **net).to(device)
    D = Discriminator(**net).to(device)
    z = torch.randn(args.batch, G.z_dim, device=device)
    reals = torch.randn(args.batch, 3, args.res, args.res, device=device)

    def generate():
        with torch.inference_mode():
            return G.eval()(z, noise_mode="const")

    def train_step():
        G.train(), D.train()
        G.zero_grad(set_to_none=True), D.zero_grad(set_to_none=True)
        fake = G(z)
        F.softplus(-D(fake)).mean().backward()
        (F.softplus(D(fake.detach())).mean() + F.softplus(-D(reals)).mean()).backward()

    def r1_step():
        D.train().zero_grad(set_to_none=True)
        img = reals.detach().requires_grad_()
        (grad,) = torch.autograd.grad(D(img).sum(), img, create_graph=True)
        grad.square().sum(dim=[1, 2, 3]).mean().backward()

    shape = f"{args.batch}x3x{args.res}x{args.res}"
    kind = f"fp16 top {args.fp16_res} res" if args.fp16_res else "float32"
    return [Case("G forward (inference)", shape, kind, generate, images=args.batch),
            Case("train step: G+D fwd+bwd", shape, kind, train_step, images=args.batch),
            Case("R1 step: D double backward", shape, kind, r1_step, images=args.batch)]


def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.3f}"


def _rate(case: Case, s: float | None) -> str:
    if s is None:
        return "-"
    if case.bytes_moved is not None:
        return f"{case.bytes_moved / s / 1e9:.3g} GB/s"
    return f"{case.images / s:.3g} img/s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller shapes")
    parser.add_argument("--repeat", type=int, default=None, help="measurements per case (median reported)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--res", type=int, default=None, help="network resolution (ops run at it too)")
    parser.add_argument("--channels", type=int, default=None, help="channels of the op benchmarks")
    parser.add_argument("--channel-base", type=int, default=None)
    parser.add_argument("--channel-max", type=int, default=None)
    parser.add_argument("--mapping", type=int, default=None, help="mapping layers")
    parser.add_argument("--fp16-res", type=int, default=None, help="resolutions run in fp16 (CUDA only)")
    parser.add_argument("--skip-networks", action="store_true")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    gpu = device.type == "cuda"
    # GPU: a config-F 256x256 StyleGAN2 at batch 16; CPU: the small 64x64 config of ENVIRONMENT.md.
    defaults = dict(batch=16 if gpu else 4, res=256 if gpu else 64, channels=512 if gpu else 128,
                    channel_base=32768 if gpu else 4096, channel_max=512 if gpu else 256,
                    mapping=8 if gpu else 2, fp16_res=4 if gpu else 0, repeat=3 if args.quick else (15 if gpu else 5))
    if args.quick:
        defaults.update(batch=4 if gpu else 2, res=128 if gpu else 32)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if gpu:
        torch.cuda.set_device(device)

    described = build.describe_ops() if gpu else {op: "reference (CPU tensors)" for op in build.OPS}
    with_kernel = gpu and all(reason.startswith("cuda kernel") for reason in described.values())
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"# facegen ops benchmark: {name}, torch {torch.__version__}", file=sys.stderr)
    for op, reason in described.items():
        print(f"#   {op}: {reason}", file=sys.stderr)

    dtypes = [torch.float32, torch.float16] if gpu else [torch.float32]
    cases = op_cases(device, args.batch, args.channels, args.res, dtypes)
    if not args.skip_networks:
        cases += network_cases(device, args)
    target_s = 0.02 if gpu else 0.1

    print("| case | shape | dtype | reference ms | kernel ms | speed-up | reference rate | kernel rate |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for case in cases:
        kernel, reference = _time(case, device, args.repeat, with_kernel, target_s)
        speedup = "-" if kernel is None else f"{reference / kernel:.2f}x"
        print(f"| {case.name} | {case.shape} | {case.dtype} | {_fmt_ms(reference)} | {_fmt_ms(kernel)} | "
              f"{speedup} | {_rate(case, reference)} | {_rate(case, kernel)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
