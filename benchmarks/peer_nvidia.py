"""facegen against NVIDIA's stylegan2-ada-pytorch on this CPU, side by side: issue 15's generate and train rows.

NVIDIA's code is never part of facegen: export it once, outside the project, and name it here;
it is imported at run time only (its `training.networks` and `training.loss`), in its own process:

    git --git-dir=/work/.mirror/NVlabs+stylegan2-ada-pytorch/repo archive HEAD | tar -x -C /work/scratch/nvidia-sg2ada
    python benchmarks/peer_nvidia.py --nvidia-repo /work/scratch/nvidia-sg2ada       # every case, 2 threads
    python benchmarks/peer_nvidia.py --cases train-64-small-b16 --threads 1
    python benchmarks/peer_nvidia.py --quick                                         # a minute-scale check

Each case starts one fresh process per tool (NVIDIA fp32, then facegen in each `--precision`), each
building its networks once; then round after round every process does the same work in turn (one
leading each round), so all see the same machine load. A round is `calls` generator passes on a
fixed batch of latents (`torch.inference_mode()`, noise_mode const, each tool's default modconv
rule), or `steps` whole training steps: every phase due (Gmain, Greg every 4th step, Dmain, Dreg
every 16th), the optimizer steps and the G_ema update, on one fixed batch of noise reals (data
loading left out on both sides). NVIDIA's side drives `StyleGAN2Loss.accumulate_gradients` the way
its training_loop.py does (its lazy-regularisation Adam settings, gain = interval, NaN scrubbing of
gradients, EMA); facegen's side is `Trainer.train_step` for `facegen train DATA --cfg paper256
--map 2 --cbase 4096 --cmax 256 --batch 16 --gamma 0.0512 --aug noaug`, whose resolved networks and
settings NVIDIA's side is built from. NVIDIA runs fp32 (no fp16 layers, no clamp), as facegen's fp32.

img/s is the median over the timed rounds; "÷ NVIDIA" is the median over rounds of NVIDIA's round
time over the tool's, so machine drift between rounds cancels. CPU s/img is the process's CPU time
per image, peak RSS its ru_maxrss. The parameter counts show both tools built the same networks.

The output is a Markdown table (stdout) for benchmarks/RESULTS.md; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from generate import CONFIGS, config_f_kwargs
from machine import cpu_name, memory_gib
from train import noise_dataset

DEFAULT_NVIDIA_REPO = "/work/scratch/nvidia-sg2ada"
# `facegen train`'s options for issue 15's training row (NVIDIA's 64 px small net).
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
QUICK = dict(calls=1, steps=2, rounds=1)  # --quick: one warm-up and one timed round of this work


# ---- child processes: build once, then one round per "round" line on stdin ----

def nvidia_generate(spec: dict, repo: str) -> tuple[Callable[[], object], dict]:
    """NVIDIA's generator of the case on CPU in fp32; one round and its parameter counts."""
    import torch

    sys.path.insert(0, repo)
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
    from facegen_cli.precision import resolve_precision, synthesize

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
            last["img"] = synthesize(G, G.mapping(z, None), prec, noise_mode="const")

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


def nvidia_train(spec: dict, repo: str) -> tuple[Callable[[], object], dict]:
    """NVIDIA's G, D, optimizers and StyleGAN2Loss built from facegen's resolved run; one round of steps."""
    import copy

    import torch

    sys.path.insert(0, repo)
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


def serve(tool: str, precision: str, spec: dict, repo: str, threads: int) -> None:
    """A child: build the tool's case, say its parameter counts, then time one round per `round` line."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # replies only; anything the libraries print goes to stderr
    os.dup2(2, 1)
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    if tool == "nvidia":
        one_round, params = (nvidia_generate if spec["kind"] == "generate" else nvidia_train)(spec, repo)
    else:
        one_round, params = (facegen_generate if spec["kind"] == "generate" else facegen_train)(spec, precision)
    channel.write(json.dumps({"params": params, "build_s": time.perf_counter() - start,
                              "threads": torch.get_num_threads()}) + "\n")
    for line in sys.stdin:
        if line.strip() != "round":
            break
        start, start_cpu = time.perf_counter(), time.process_time()
        one_round()
        channel.write(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu}) + "\n")
    channel.write(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")


# ---- the parent: cases, alternation, table ----

class Child:
    """One tool's process for one case, spoken to line by line."""

    def __init__(self, tool: str, precision: str, spec: dict, repo: str, threads: int):
        self.tool, self.precision = tool, precision
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", tool, precision, "--spec", json.dumps(spec),
               "--nvidia-repo", repo, "--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ready = self._read()
        self.walls: list[float] = []
        self.cpus: list[float] = []

    @property
    def label(self) -> str:
        return f"{self.tool} {self.precision}"

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.label}: the process ended with exit code {self.proc.wait()}")
        return json.loads(line)

    def round(self, timed: bool) -> float:
        """One round; its wall time is kept when `timed`."""
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        reply = self._read()
        if timed:
            self.walls.append(reply["wall"])
            self.cpus.append(reply["cpu"])
        return reply["wall"]

    def finish(self) -> float:
        """Ends the process; its peak RSS in MiB."""
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        rss = self._read()["peak_rss_mb"]
        self.proc.wait()
        return rss


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


def case_spec(case: dict, quick: dict | None, rounds: int | None, folder: Path) -> dict:
    """A case's work for this run: shrunk to `quick` (--quick), its rounds set by --rounds, a train case
    resolved in `folder`."""
    spec = dict(case)
    if quick:
        spec.update({k: v for k, v in quick.items() if k in spec})
    elif rounds:
        spec["rounds"] = rounds
    if spec["kind"] == "train":
        spec.update(train_spec(folder))
    return spec


def run_case(name: str, spec: dict, precisions: list[str], repo: str, threads: int, warmup: int) -> list[dict]:
    """All tools of one case, alternating round by round; one result per tool."""
    children: list[Child] = []
    try:
        for tool, precision in [("nvidia", "fp32")] + [("facegen", p) for p in precisions]:
            children.append(Child(tool, precision, spec, repo, threads))
            ready = children[-1].ready
            print(f"{name}: {children[-1].label} built in {ready['build_s']:.1f} s, params {ready['params']}",
                  file=sys.stderr, flush=True)
        for rnd in range(warmup + spec["rounds"]):
            order = children[rnd % len(children):] + children[:rnd % len(children)]  # each leads in turn
            walls = {child.label: child.round(timed=rnd >= warmup) for child in order}
            print(f"{name}: round {rnd + 1}/{warmup + spec['rounds']}{' (warm-up)' if rnd < warmup else ''} "
                  + ", ".join(f"{label} {wall:.2f} s" for label, wall in walls.items()), file=sys.stderr, flush=True)
        rss = [child.finish() for child in children]
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.kill()
    images = spec["batch"] * spec.get("calls", spec.get("steps"))
    reference = children[0].walls
    return [{"case": describe(spec), "tool": c.tool, "precision": c.precision, "params": c.ready["params"],
             "threads": c.ready["threads"], "rounds": len(c.walls), "img_s": images / statistics.median(c.walls),
             "vs_nvidia": statistics.median(n / w for n, w in zip(reference, c.walls)),
             "cpu_s_img": statistics.median(c.cpus) / images, "peak_rss_mb": r,
             "same_params": c.ready["params"] == children[0].ready["params"]} for c, r in zip(children, rss)]


def describe(spec: dict) -> str:
    """The case in words, for the table."""
    if spec["kind"] == "train":
        return f"train 64 px small (paper256, map 2, 4096/256), batch {spec['batch']}, {spec['steps']} steps/round"
    net = "config F" if spec["config"] == "f" else "small"
    return f"generate {spec['resolution']} px {net}, batch {spec['batch']}, {spec['calls']} calls/round"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nvidia-repo", default=DEFAULT_NVIDIA_REPO, help="an export of NVlabs/stylegan2-ada-pytorch")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                        help="facegen's precisions (NVIDIA runs fp32)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every process")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default: by case)")
    parser.add_argument("--quick", action="store_true", help="one warm-up and one timed round of tiny work: a check")
    parser.add_argument("--serve", nargs=2, metavar=("TOOL", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve, json.loads(args.spec), args.nvidia_repo, args.threads)
        return
    repo = os.path.abspath(args.nvidia_repo)
    if not os.path.isfile(os.path.join(repo, "training", "networks.py")):
        parser.error(f"--nvidia-repo {repo}: no training/networks.py there (export NVlabs/stylegan2-ada-pytorch)")

    import torch

    warmup = 1 if args.quick else args.warmup
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            spec = case_spec(CASES[name], QUICK if args.quick else None, args.rounds, Path(tmp))
            start = time.perf_counter()
            rows += run_case(name, spec, args.precision, repo, args.threads, warmup)
            print(f"{name}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    threads = rows[0]["threads"] if rows else args.threads
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores ({threads} torch threads per process), "
          f"{memory_gib():.0f} GiB, torch {torch.__version__}, Python {platform.python_version()}; NVIDIA's "
          f"stylegan2-ada-pytorch from {repo}; {datetime.date.today().isoformat()}. Each tool a fresh process "
          f"per case, {warmup} warm-up + timed rounds alternating (each tool leads in turn). Load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    print()
    print("| case | tool | precision | params G / D | rounds | img/s | ÷ NVIDIA | CPU s/img | peak RSS |")
    print("|:---|:---|:---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        params = " / ".join(f"{r['params'][k]:,}" for k in ("G", "D") if k in r["params"])
        mark = "" if r["same_params"] else " (differs from NVIDIA!)"
        print(f"| {r['case']} | {r['tool']} | {r['precision']} | {params}{mark} | {r['rounds']} | "
              f"{r['img_s']:.3f} | {r['vs_nvidia']:.2f}x | {r['cpu_s_img']:.3f} | {r['peak_rss_mb']:.0f} MiB |")


if __name__ == "__main__":
    main()
