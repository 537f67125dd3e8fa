"""How close one training step of the shipped model's config comes to this CPU's limit: achieved GFLOP/s of
the step against a large matmul and a large convolution, fp32 and bf16, on the same cores.

The step is the engine's own (`Trainer.train_step`) on the default run's config (`small`, 64 px, batch 64,
cbase 2048, cmax 128, 2 mapping layers, z = w = 256, ADA, channels_last), timed on a plain step: G's main
phase and D's main phase, no lazy regulariser due. Its FLOPs are counted from the network's shapes: forward
hooks on every dense layer, convolution and modulated convolution give each network's forward multiply-adds
(x2), and a phase's backward is counted as twice its forward where weights and inputs both need gradients,
once where only one does:

    Gmain = G forward + G backward (2x) + D forward + D backward to its input (1x)  = 3 G + 2 D
    Dmain = G forward (no grad) + D on fakes (3x) + D on reals (3x)                 = 1 G + 6 D

In fp32, `torch.utils.flop_counter.FlopCounterMode` counts the same step's matmuls and convolutions as aten
runs them (the resampling filters included); its formulas, without its module tracker (which fails inside
the regularisers' double backward), count the lazy regularisers' steps too (path length every 4th, R1
every 16th), from which the amortised FLOPs per step over one 16-step period follow. The references: an
N x N x N matmul and a 3x3 convolution of the network's largest block (batch 64, 128 -> 128 channels,
32 x 32), both layouts.

    python -m benchmarks.train_flops --threads 2 [--rounds 5]      # every case, two cores
    python -m benchmarks.train_flops --ops step --precision fp32 --step-threads 1 2   # the step on 1 and 2 threads
    python -m benchmarks.train_flops --quick                       # a tiny config, one round

Where one plain step's time goes: `benchmarks.train_profile`.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from benchmarks import harness
from benchmarks.train import noise_dataset
from facegen_cli.models.layers import Conv2dLayer, FullyConnectedLayer
from facegen_cli.models.stylegan2 import SynthesisLayer, ToRGBLayer

DEFAULT_RUN = dict(cfg="small", resolution=64, batch=64, cbase=2048, cmax=128, map=2, z_dim=256, w_dim=256,
                   gamma=0.0128)
QUICK_RUN = dict(DEFAULT_RUN, resolution=32, batch=4, cbase=512, cmax=32)
PLAIN_STEP = 1  # a step index at which no lazy regulariser is due (path length: step % 4, R1: step % 16)
PERIOD = 16  # one lazy-regularisation period


def layer_flops(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-adds x2 of one layer's forward, from its weight and its input and output shapes."""
    if isinstance(module, FullyConnectedLayer):
        return 2 * out.numel() * module.weight.shape[1]
    cout, cin, kh, kw = module.weight.shape
    if isinstance(module, SynthesisLayer):
        n = x.shape[0]
        # a transposed 2x conv multiplies each input pixel by the whole kernel; demodulation: 3 per weight
        conv = x.numel() * cout * kh * kw if module.up > 1 else out.numel() * cin * kh * kw
        return 2 * conv + 3 * n * cout * cin * kh * kw
    if isinstance(module, (ToRGBLayer, Conv2dLayer)):
        return 2 * out.numel() * cin * kh * kw
    return 0


def forward_flops(net: nn.Module, *inputs: torch.Tensor) -> int:
    """FLOPs of one forward of `net` on `inputs`, counted layer by layer by forward hooks."""
    total = [0]
    kinds = (FullyConnectedLayer, Conv2dLayer, SynthesisLayer, ToRGBLayer)

    def hook(module, args, out):
        total[0] += layer_flops(module, args[0], out)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def trainer(run: dict, precision: str, folder: Path):
    """The engine's Trainer on the run's config, over noise images (speed does not depend on content)."""
    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.options import TrainOptions

    opts = TrainOptions(data=str(noise_dataset(folder / "noise", run["resolution"])), out=str(folder / "runs"),
                        cfg=run["cfg"], batch=run["batch"], cbase=run["cbase"], cmax=run["cmax"], map=run["map"],
                        z_dim=run["z_dim"], w_dim=run["w_dim"], gamma=run["gamma"], aug="ada", mirror=True,
                        channels_last=True, device="cpu", workers=0, precision=precision, kimg=1e6, snap=1e6)
    return Trainer(opts, log=lambda msg: None)


class RegistryFlops(TorchDispatchMode):
    """FlopCounterMode's own per-op formulas without its module tracker, which fails inside autograd.grad (the
    regularisers' double backward) on this torch."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def analytic(t) -> dict:
    """The plain step's FLOPs from the networks' shapes: 4 G forwards + 8 D forwards (see above)."""
    n, res = t.opts.batch, t.G.img_resolution
    z, c = torch.randn([n, t.G.z_dim]), torch.zeros([n, t.G.c_dim])
    mapping = forward_flops(t.G.mapping, z, c)
    G = forward_flops(t.G, z, c) + mapping  # style mixing runs the mapping twice
    D = forward_flops(t.D, torch.randn([n, t.G.img_channels, res, res]), c)
    return {"G_forward_gflop": G / 1e9, "D_forward_gflop": D / 1e9, "mapping_forward_gflop": mapping / 1e9,
            "analytic_plain_step_gflop": (4 * G + 8 * D) / 1e9}


def counted(t, batch: tuple[torch.Tensor, torch.Tensor]) -> dict:
    """FlopCounterMode's count of the plain step, and the registry's of the plain, path-length and R1 steps,
    amortised over one period."""
    t.step = PLAIN_STEP
    with FlopCounterMode(display=False) as mode:
        t.train_step(batch, {})
    steps = {}
    for name, step in (("plain", PLAIN_STEP), ("path_length", 4), ("r1", 0)):
        t.step = step
        with RegistryFlops() as registry:
            t.train_step(batch, {})
        steps[name] = registry.total
    amortised = (steps["plain"] * (PERIOD - PERIOD // 4 - 1) + steps["path_length"] * (PERIOD // 4 - 1)
                 + steps["r1"]) / PERIOD  # step 0 runs both regularisers: counted as the r1 step
    return {"flop_counter_plain_step_gflop": mode.get_total_flops() / 1e9,
            **{f"registry_{k}_step_gflop": v / 1e9 for k, v in steps.items()},
            "registry_amortised_step_gflop": amortised / 1e9}


def real_batch(n: int, res: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, [n, 3, res, res], dtype=torch.uint8, generator=generator), torch.zeros([n, 0])


def plain_step(run: dict, precision: str, folder: Path):
    """The Trainer and one plain step of it, as a function."""
    t = trainer(run, precision, folder)
    batch = real_batch(run["batch"], run["resolution"])

    def step() -> None:
        t.step = PLAIN_STEP
        t.train_step(batch, {})

    return t, batch, step


def build_step(params: dict) -> harness.Work:
    if params.get("threads"):
        torch.set_num_threads(params["threads"])
    folder = Path(tempfile.mkdtemp(prefix="facegen-train-flops-"))
    t, batch, step = plain_step(params["run"], params["precision"], folder)
    info = analytic(t)
    if params["count"]:  # the same for every precision: once, where steps are cheap
        info.update(counted(t, batch))
    step()  # the first step after counting allocates anew
    return harness.Work(step, info=info, units={"gflop": info["analytic_plain_step_gflop"]},
                        finish=lambda: shutil.rmtree(folder) or {})


def build_op(params: dict) -> harness.Work:
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[params["precision"]]
    generator = torch.Generator().manual_seed(0)
    if params["op"] == "matmul":
        n = params["n"]
        a, b = (torch.randn([n, n], generator=generator).to(dtype) for _ in range(2))
        fn, flops = (lambda: a @ b), 2 * n ** 3
    else:
        n, ch, side = params["batch"], params["channels"], params["side"]
        layout = torch.channels_last if params["layout"] == "channels_last" else torch.contiguous_format
        x = torch.randn([n, ch, side, side], generator=generator).to(dtype).contiguous(memory_format=layout)
        w = torch.randn([ch, ch, 3, 3], generator=generator).to(dtype).contiguous(memory_format=layout)
        fn, flops = (lambda: torch.nn.functional.conv2d(x, w, padding=1)), 2 * n * ch * ch * 9 * side * side
    calls = harness.calls_for(fn, "cpu", params["seconds"])

    def one_round() -> None:
        for _ in range(calls):
            fn()

    return harness.Work(one_round, info={"calls": calls, "gflop_per_call": flops / 1e9},
                        units={"gflop": calls * flops / 1e9})


def build(params: dict) -> harness.Work:
    """A plain training step, a matmul or a convolution."""
    return build_step(params) if params["op"] == "step" else build_op(params)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--matmul", type=int, default=2048, help="N of the N x N x N matmul")
    parser.add_argument("--conv-batch", type=int, default=64, help="batch of the reference convolution")
    parser.add_argument("--step-threads", type=int, nargs="+", default=[0],
                        help="a step case per torch thread count (0: --threads, or torch's own)")
    parser.add_argument("--ops", nargs="+", default=["step", "matmul", "conv"], choices=["step", "matmul", "conv"])


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    """Per precision, one group: the step, the matmul and the convolution in both layouts (those of --ops)."""
    run = QUICK_RUN if args.quick else DEFAULT_RUN
    conv = dict(batch=4, channels=16, side=16) if args.quick else dict(batch=args.conv_batch, channels=128, side=32)
    timing = dict(n=128 if args.quick else args.matmul, seconds=0.2 if args.quick else 2.0)
    found = []
    for p in args.precision:
        if "step" in args.ops:
            found += [harness.Case(f"step {p}" + (f" {n} threads" if n else ""),
                                   dict(op="step", run=run, precision=p, count=p == "fp32", threads=n), p)
                      for n in args.step_threads]
        if "matmul" in args.ops:
            found.append(harness.Case(f"matmul {p}", dict(op="matmul", precision=p, **timing), p))
        if "conv" in args.ops:
            found += [harness.Case(f"conv {layout} {p}", dict(op="conv", layout=layout, precision=p, **conv, **timing),
                                   p) for layout in ("channels_last", "contiguous")]
    return found

if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options, warmup=1))
