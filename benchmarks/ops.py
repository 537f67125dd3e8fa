"""Time the StyleGAN2 ops and networks: CUDA kernels against the plain-PyTorch references.

    python -m benchmarks.ops                  # the GPU if there is one, else the CPU
    python -m benchmarks.ops --device cpu --quick
    python -m benchmarks.ops --res 512 --batch 32

Each op or network step is a group: on a GPU whose kernels built, a kernel case and a reference
case (each its own process) alternate round by round; on the CPU only the reference runs. A round
is as many calls as last about 0.02 s (GPU) or 0.1 s (CPU). `bytes_per_s` is the least memory
traffic the op needs (each input read once, each output written once) over the time: against the
device's peak it says how close an op comes to being limited by memory alone.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from facegen_cli.models.stylegan2 import Discriminator, Generator
from facegen_cli.ops import build as op_build
from facegen_cli.ops.bias_act import bias_act
from facegen_cli.ops.upfirdn2d import downsample2d, setup_filter, upsample2d
from benchmarks import harness


@dataclass
class Case:
    name: str
    shape: str
    dtype: str
    run: Callable[[], object]
    bytes_moved: int | None = None  # least memory traffic of one call, for GB/s
    images: int | None = None  # images per call, for img/s


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


def network_cases(device: torch.device, args: dict) -> list[Case]:
    torch.manual_seed(0)
    net = dict(img_resolution=args["res"], channel_base=args["channel_base"], channel_max=args["channel_max"],
               num_fp16_res=args["fp16_res"], conv_clamp=256 if args["fp16_res"] else None)
    G = Generator(z_dim=512, w_dim=512, mapping_layers=args["mapping"], **net).to(device)
    D = Discriminator(**net).to(device)
    z = torch.randn(args["batch"], G.z_dim, device=device)
    reals = torch.randn(args["batch"], 3, args["res"], args["res"], device=device)

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

    shape = "{batch}x3x{res}x{res}".format(**args)
    kind = "fp16 top {fp16_res} res".format(**args) if args["fp16_res"] else "float32"
    return [Case("G forward (inference)", shape, kind, generate, images=args["batch"]),
            Case("train step: G+D fwd+bwd", shape, kind, train_step, images=args["batch"]),
            Case("R1 step: D double backward", shape, kind, r1_step, images=args["batch"])]


def sizes(device: str, quick: bool) -> dict:
    """The shapes: on a GPU a config-F 256x256 StyleGAN2 at batch 16, on the CPU the small 64x64 config."""
    gpu = device.startswith("cuda")
    found = dict(batch=16 if gpu else 4, res=256 if gpu else 64, channels=512 if gpu else 128,
                 channel_base=32768 if gpu else 4096, channel_max=512 if gpu else 256, mapping=8 if gpu else 2,
                 fp16_res=4 if gpu else 0)
    if quick:
        found.update(batch=4 if gpu else 2, res=128 if gpu else 32, channels=32, channel_base=1024, channel_max=64)
    return found


def build(params: dict) -> harness.Work:
    """The named case on the device; a round is `calls` calls, through the kernel or the reference."""
    device = torch.device(params["device"])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    shape = params["shape"]
    cases = network_cases(device, shape) if params["network"] else \
        op_cases(device, shape["batch"], shape["channels"], shape["res"], [getattr(torch, params["dtype"])])
    case = next(c for c in cases if c.name == params["case"])
    reference = params["path"] == "reference"

    def call() -> object:
        if reference:
            with op_build.reference_ops():
                return case.run()
        return case.run()

    target = 0.02 if device.type == "cuda" else 0.1
    calls = harness.calls_for(call, params["device"], target)
    units = {"bytes": case.bytes_moved * calls} if case.bytes_moved is not None else {"images": case.images * calls}
    return harness.Work(lambda: {"seconds_per_call": harness.seconds_per_call(call, params["device"], calls)},
                        info={"shape": case.shape, "calls": calls}, units=units)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--skip-networks", action="store_true")
    for name, text in (("batch", "batch"), ("res", "resolution of the network and the ops"),
                       ("channels", "channels of the ops"), ("channel-base", "network channel base"),
                       ("channel-max", "network channel maximum"), ("mapping", "mapping layers"),
                       ("fp16-res", "resolutions run in fp16 (CUDA only)")):
        parser.add_argument(f"--{name}", type=int, default=None, help=text)


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else \
        "cpu" if args.device == "auto" else args.device
    shape = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in sizes(device, args.quick).items()}
    gpu = device.startswith("cuda")
    described = op_build.describe_ops() if gpu else {op: "reference (CPU tensors)" for op in op_build.OPS}
    paths = ["kernel", "reference"] if all(r.startswith("cuda kernel") for r in described.values()) and gpu \
        else ["reference"]
    dtypes = ["float32", "float16"] if gpu else ["float32"]
    named = [(c.name, dtype, False) for dtype in dtypes for c in op_cases(torch.device("cpu"), 1, 1, 4, [torch.float32])]
    if not args.skip_networks:
        kind = f"fp16 top {shape['fp16_res']} res" if shape["fp16_res"] else "float32"
        named += [(name, kind, True) for name in ("G forward (inference)", "train step: G+D fwd+bwd",
                                            "R1 step: D double backward")]
    if args.quick:  # one op and one network
        named = [named[0], named[-1]]
    rounds = 15 if gpu else 5
    return [harness.Case(f"{name} {dtype} {path}", dict(case=name, dtype=dtype, network=network, path=path,
                                                        device=device, shape=shape), group=f"{name} {dtype}",
                         rounds=rounds) for name, dtype, network in named for path in paths]


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options))
