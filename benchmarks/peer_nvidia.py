"""facegen against NVIDIA's stylegan2-ada-pytorch on this CPU, side by side: generation and training speed.

NVIDIA's code is never part of facegen: export it once, outside the project, and name it here;
its case processes import it (its `training.networks` and `training.loss`) from that folder, given
to them on PYTHONPATH:

    git --git-dir=/work/.mirror/NVlabs+stylegan2-ada-pytorch/repo archive HEAD | tar -x -C /work/scratch/nvidia-sg2ada
    python -m benchmarks.peer_nvidia --nvidia-repo /work/scratch/nvidia-sg2ada --threads 2   # every case
    python -m benchmarks.peer_nvidia --cases train-64-small-b16 --threads 1
    python -m benchmarks.peer_nvidia --quick                                       # a minute-scale check

Each case is a group of processes, one per tool (NVIDIA fp32, then facegen in each `--precision`),
each building its networks once; round after round every process does the same work in turn (one
leading each round). A round is `calls` generator passes on a fixed batch of latents
(`torch.inference_mode()`, noise_mode const, each tool's default modconv rule), or `steps` whole
training steps: every phase due (Gmain, Greg every 4th step, Dmain, Dreg every 16th), the optimizer
steps and the G_ema update, on one fixed batch of noise reals (data loading left out on both sides).
NVIDIA's side drives `StyleGAN2Loss.accumulate_gradients` the way its training_loop.py does (its
lazy-regularisation Adam settings, gain = interval, NaN scrubbing of gradients, EMA); facegen's side
is `Trainer.train_step` for `facegen train DATA --cfg paper256 --map 2 --cbase 4096 --cmax 256
--batch 16 --gamma 0.0512 --aug noaug`, whose resolved networks and settings NVIDIA's side is built
from. NVIDIA runs fp32 (no fp16 layers, no clamp), as facegen's fp32.

`vs_first` is the median over rounds of NVIDIA's round time over the tool's; `info.params` shows
both tools built the same networks.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable

from benchmarks import harness
from benchmarks.generate import CONFIGS, config_f_kwargs
from benchmarks.train import noise_dataset

DEFAULT_NVIDIA_REPO = "/work/scratch/nvidia-sg2ada"
# `facegen train`'s options for the training comparison (NVIDIA's 64 px small net).
TRAIN_OPTIONS = dict(cfg="paper256", map=2, cbase=4096, cmax=256, batch=16, gamma=0.0512, aug="noaug")
# Work per round (`calls` generator passes or `steps` training steps) and timed rounds, per case.
# 16 steps are one lazy-regularisation period: path length on 4 of them, R1 on one.
CASES: dict[str, dict] = {
    "generate-256-f-b1": dict(kind="generate", config="f", resolution=256, batch=1, calls=2, rounds=5),
    "generate-256-f-b8": dict(kind="generate", config="f", resolution=256, batch=8, calls=1, rounds=3),
    "generate-64-small-b1": dict(kind="generate", config="small", resolution=64, batch=1, calls=32, rounds=7),
    "generate-64-small-b8": dict(kind="generate", config="small", resolution=64, batch=8, calls=8, rounds=7),
    "train-64-small-b16": dict(kind="train", resolution=64, batch=16, steps=16, rounds=3),
}
QUICK = dict(calls=1, steps=2)  # --quick: one round of this work

def nvidia_generate(spec: dict) -> tuple[Callable[[], object], dict]:
    """NVIDIA's generator of the case on CPU in fp32; one round and its parameter counts."""
    import torch

    from training import networks

    cfg = CONFIGS[spec["config"]]
    torch.manual_seed(0)
    G = networks.Generator(z_dim=cfg["z_dim"], c_dim=0, w_dim=cfg["w_dim"], img_resolution=spec["resolution"],
                           img_channels=3, mapping_kwargs=dict(num_layers=cfg["mapping_layers"]),
                           synthesis_kwargs=dict(channel_base=cfg["channel_base"], channel_max=cfg["channel_max"],
                                                 num_fp16_res=0, conv_clamp=None)).eval().requires_grad_(False)
    z = torch.randn([spec["batch"], G.z_dim], generator=torch.Generator().manual_seed(1))
    c = torch.zeros([spec["batch"], 0])

    def call() -> None:
        with torch.inference_mode():
            G(z, c, noise_mode="const", force_fp32=True)

    return repeated(call, spec["calls"]), {"G": sum(p.numel() for p in G.parameters())}


def facegen_generator(spec: dict, precision: str, channels_last: bool | None = None, mode: str | None = None
                      ) -> tuple[Callable[[], object], Callable[[], object], dict]:
    """facegen's generator of the case drawn as `generate` draws (benchmarks/generate.py's networks): in
    channels_last where asked (None: as `generate`, `drawing_memory_format`), under torch.compile
    `mode` if asked; (one call, its last output, parameter counts)."""
    import torch

    from facegen_cli.devices import drawing_memory_format
    from facegen_cli.models.stylegan2 import Generator
    from facegen_cli.precision import resolve_precision, synthesis_in_precision

    torch.manual_seed(0)
    G = Generator(**config_f_kwargs(spec["resolution"], spec["config"])).eval().requires_grad_(False)
    if channels_last is None:
        layout = drawing_memory_format(torch.device("cpu"), precision)
    else:
        layout = torch.channels_last if channels_last else torch.contiguous_format
    G = G.to(memory_format=layout)
    if mode:
        G.synthesis.compile(mode=mode)
    z = torch.randn([spec["batch"], G.z_dim], generator=torch.Generator().manual_seed(1))
    prec = resolve_precision(precision, "cpu")
    last = {}

    def call() -> None:
        with torch.inference_mode():
            last["img"] = synthesis_in_precision(G, G.mapping(z, None), prec, noise_mode="const")

    return call, lambda: last["img"], {"G": sum(p.numel() for p in G.parameters())}


def facegen_generate(spec: dict, precision: str) -> tuple[Callable[[], object], dict]:
    """facegen's generator of the case; a round of `calls` draws."""
    call, _, params = facegen_generator(spec, precision)
    return repeated(call, spec["calls"]), params


def repeated(call: Callable[[], object], times: int) -> Callable[[], None]:
    """A round: `call` `times` times."""
    def one_round() -> None:
        for _ in range(times):
            call()

    return one_round


def noise_reals(spec: dict):
    """The one batch of uint8 noise images both tools train on."""
    import torch

    res = spec["resolution"]
    return torch.randint(0, 256, [spec["batch"], 3, res, res], dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(2))


def nvidia_train(spec: dict) -> tuple[Callable[[], object], dict]:
    """NVIDIA's G, D, optimizers and StyleGAN2Loss built from facegen's resolved run; one round of steps."""
    import copy

    import torch

    from torch_utils import misc
    from training import loss, networks

    opts, gk, dk = spec["opts"], spec["G_kwargs"], spec["D_kwargs"]
    known_G = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_layers", "channel_base",
               "channel_max"}
    known_D = {"c_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "mbstd_group_size"}
    if set(gk) - known_G or set(dk) - known_D:  # a setting this mapping would silently drop
        raise SystemExit(f"unmapped facegen settings: {sorted(set(gk) - known_G)} {sorted(set(dk) - known_D)}")
    torch.manual_seed(opts["seed"])
    common = dict(c_dim=gk["c_dim"], img_resolution=gk["img_resolution"], img_channels=gk["img_channels"])
    G = networks.Generator(z_dim=gk["z_dim"], w_dim=gk["w_dim"], mapping_kwargs=dict(num_layers=gk["mapping_layers"]),
                           synthesis_kwargs=dict(channel_base=gk["channel_base"], channel_max=gk["channel_max"],
                                                 num_fp16_res=0, conv_clamp=None), **common)
    D = networks.Discriminator(channel_base=dk["channel_base"], channel_max=dk["channel_max"], num_fp16_res=0,
                               conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=dk["mbstd_group_size"]),
                               **common)
    G, D = G.train().requires_grad_(False), D.train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    objective = loss.StyleGAN2Loss(torch.device("cpu"), G.mapping, G.synthesis, D, r1_gamma=opts["gamma"],
                                   style_mixing_prob=0.9, pl_batch_shrink=2, pl_decay=0.01, pl_weight=2)
    phases = []  # (name, module, optimizer, interval): lazy regularisation with lr and betas scaled as NVIDIA does
    for name, module, lr, interval in (("G", G, opts["glr"], spec["G_reg_interval"]),
                                       ("D", D, opts["dlr"], spec["D_reg_interval"])):
        ratio = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)
        phases += [(name + "main", module, opt, 1), (name + "reg", module, opt, interval)]
    batch = opts["batch"]
    reals = noise_reals(spec)
    labels = torch.zeros([batch, gk["c_dim"]])
    ema_beta = 0.5 ** (batch / (opts["ema_kimg"] * 1000))
    state = {"step": 0}

    def one_step() -> None:
        real = reals.to(torch.float32) / 127.5 - 1
        latents = torch.randn([len(phases) * batch, G.z_dim]).split(batch)
        for (name, module, opt, interval), gen_z in zip(phases, latents):
            if state["step"] % interval:
                continue
            opt.zero_grad(set_to_none=True)
            module.requires_grad_(True)
            objective.accumulate_gradients(phase=name, real_img=real, real_c=labels, gen_z=gen_z, gen_c=labels,
                                           sync=True, gain=interval)
            module.requires_grad_(False)
            for p in module.parameters():
                if p.grad is not None:
                    misc.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)
            opt.step()
        with torch.no_grad():
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        state["step"] += 1

    params = {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())}
    return repeated(one_step, spec["steps"]), params


def facegen_trainer(spec: dict, precision: str, channels_last: bool = True, mode: str | None = None,
                    main_phases_only: bool = False) -> tuple[Callable[[], object], Callable[[], object], dict]:
    """facegen's Trainer for the resolved run (its folder in the parent's temporary one), in channels_last
    (`facegen train`'s default) or contiguous NCHW (`--contiguous`), with G's synthesis and D under torch.compile
    `mode` if asked, Gmain and Dmain alone if `main_phases_only`; (one train_step, its last losses and gradients,
    parameter counts)."""
    import torch

    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.options import TrainOptions

    trainer = Trainer(TrainOptions(**{**spec["opts"], "precision": precision, "channels_last": channels_last}),
                      log=lambda msg: None)
    if main_phases_only:
        trainer.phases = [phase for phase in trainer.phases if phase.name.endswith("main")]
    reals = noise_reals(spec)
    if mode:
        trainer.G.synthesis.compile(mode=mode)
        trainer.D.compile(mode=mode)
    batch = (reals, torch.zeros([trainer.opts.batch, trainer.dataset.label_dim]))
    running: dict[str, list[float]] = {}

    def output() -> object:
        losses = torch.tensor([values[-1] for _, values in sorted(running.items())])
        grads = [p.grad.flatten() for m in (trainer.G, trainer.D) for p in m.parameters() if p.grad is not None]
        return torch.cat([losses, *grads])

    return (lambda: trainer.train_step(batch, running)), output, {
        "G": sum(p.numel() for p in trainer.G.parameters()), "D": sum(p.numel() for p in trainer.D.parameters())}


def facegen_train(spec: dict, precision: str) -> tuple[Callable[[], object], dict]:
    """facegen's Trainer for the resolved run; a round of `steps` train_steps."""
    step, _, params = facegen_trainer(spec, precision)
    return repeated(step, spec["steps"]), params


def train_spec(folder: Path) -> dict:
    """facegen's resolved run for TRAIN_OPTIONS on a folder of noise images: options, network kwargs, intervals."""
    from dataclasses import asdict

    from facegen_cli.train.options import TrainOptions
    from facegen_cli.train.plan import plan_training, quiet

    data = noise_dataset(folder / "noise64", 64)
    plan = plan_training(TrainOptions(data=str(data), out=str(folder / "runs"), device="cpu", workers=0,
                                      **TRAIN_OPTIONS), log=quiet)
    return {"opts": asdict(plan.opts), "G_kwargs": plan.G_kwargs, "D_kwargs": plan.D_kwargs,
            "G_reg_interval": plan.family.G_reg_interval, "D_reg_interval": plan.family.D_reg_interval}


def case_spec(case: dict, quick: dict | None, folder: Path) -> dict:
    """A case's work for this run: shrunk to `quick` (--quick), a train case resolved in `folder`."""
    spec = dict(case)
    if quick:
        spec.update({k: v for k, v in quick.items() if k in spec})
    if spec["kind"] == "train":
        spec.update(train_spec(folder))
    return spec


def build(params: dict) -> harness.Work:
    """One tool's networks for the case; a round is the case's work."""
    spec = params["spec"]
    if params["tool"] == "nvidia":
        one_round, counts = (nvidia_generate if spec["kind"] == "generate" else nvidia_train)(spec)
    else:
        one_round, counts = (facegen_generate if spec["kind"] == "generate" else facegen_train)(spec, params["precision"])
    images = spec["batch"] * spec.get("calls", spec.get("steps"))
    return harness.Work(one_round, info={"params": counts}, units={"images": images})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nvidia-repo", default=DEFAULT_NVIDIA_REPO, help="an export of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                        help="facegen's precisions (NVIDIA runs fp32)")


def quick_needs() -> str | None:
    """What the quick check lacks on this machine, if anything."""
    if not os.path.isfile(os.path.join(DEFAULT_NVIDIA_REPO, "training", "networks.py")):
        return f"no export of NVIDIA's stylegan2-ada-pytorch at {DEFAULT_NVIDIA_REPO}"
    return None


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    repo = os.path.abspath(args.nvidia_repo)
    if not os.path.isfile(os.path.join(repo, "training", "networks.py")):
        raise SystemExit(f"--nvidia-repo {repo}: no training/networks.py there (export NVlabs/stylegan2-ada-pytorch)")
    found = []
    for name in ["generate-64-small-b1"] if args.quick else args.cases:
        spec = case_spec(CASES[name], QUICK if args.quick else None, folder)
        tools = [("nvidia", "fp32")] + [("facegen", p) for p in args.precision]
        found += [harness.Case(f"{name} {tool} {precision}", dict(tool=tool, precision=precision, spec=spec),
                               group=name, rounds=spec["rounds"], env={"PYTHONPATH": repo}) for tool, precision in tools]
    return found


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options))
