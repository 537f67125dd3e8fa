"""Does training hold its memory? Resident set size of a tiny StyleGAN2 run over many steps.

Each precision is a case in its own process, whose one round trains a tiny network (32 px, 64
channels at most, batch 4) on noise images through the real loop (`Trainer.run`, all four phases,
lazy regularisers, G_ema) and reads its current RSS from /proc after every step: `rss_at` at a few
steps and `growth_mib` from the end of the warm-up (`--settle` steps) to the last step. Flat means
nothing accumulates across steps (graphs, statistics, caches).

    python -m benchmarks.memory                       # 1,000 steps, fp32 and bf16
    python -m benchmarks.memory --steps 200 --precision bf16
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from benchmarks import harness
from benchmarks.train import noise_dataset

CHECKPOINTS = (1, 10, 100, 250, 500, 750, 1000)


def rss_mib() -> float:
    """The process's current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def train_watching(steps: int, precision: str, settle: int) -> dict:
    """RSS after each of `steps` training steps of the tiny network."""
    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.options import TrainOptions

    with tempfile.TemporaryDirectory() as tmp:
        data = noise_dataset(Path(tmp) / "noise32", 32, count=32)
        opts = TrainOptions(data=str(data), out=str(Path(tmp) / "runs"), cbase=512, cmax=64, z_dim=64, w_dim=64,
                            map=2, batch=4, workers=0, device="cpu", aug="ada", kimg=steps * 4 / 1000, snap=1e6,
                            precision=precision)
        trainer = Trainer(opts, log=lambda msg: None)
        rss: list[float] = []
        trainer.run(on_step=lambda stats: rss.append(rss_mib()))
    return {"steps": len(rss), "precision": trainer.loss.precision.name,
            "rss_at": {s: round(rss[s - 1], 1) for s in CHECKPOINTS if s <= len(rss)},
            "growth_mib": round(rss[-1] - rss[min(settle, len(rss)) - 1], 1)}


def build(params: dict) -> harness.Work:
    return harness.Work(lambda: train_watching(params["steps"], params["precision"], params["settle"]),
                        units={"steps": params["steps"]})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--settle", type=int, default=100, help="steps before growth is counted")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "auto"])


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    steps, settle = (4, 2) if args.quick else (args.steps, args.settle)
    return [harness.Case(precision, dict(steps=steps, settle=settle, precision=precision), group=precision, rounds=1)
            for precision in args.precision]


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options, warmup=0))
