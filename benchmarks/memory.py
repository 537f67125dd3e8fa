"""Does training hold its memory? Resident set size of a tiny StyleGAN2 run over many steps.

A fresh process trains a tiny network (32 px, 64 channels at most, batch 4) on noise images
through the real loop (`Trainer.run`, all four phases, lazy regularisers, G_ema) and reads its
current RSS from /proc after every step. The table gives the RSS at a few steps and the growth
from the end of the warm-up (`--settle` steps) to the last step: flat means nothing accumulates
across steps (graphs, statistics, caches).

    python benchmarks/memory.py                       # 1,000 steps, fp32 and bf16, each a fresh process
    python benchmarks/memory.py --steps 200 --precision bf16
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import cpu_name
from train import noise_dataset

CHECKPOINTS = (1, 10, 100, 250, 500, 750, 1000)


def rss_mib() -> float:
    """The process's current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def run_case(steps: int, precision: str) -> dict:
    import torch

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
    return {"steps": len(rss), "rss": rss, "precision": trainer.loss.precision.name,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--settle", type=int, default=100, help="steps before growth is counted")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "auto"])
    parser.add_argument("--case", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.steps, args.precision[0])))
        return
    load = os.getloadavg()[0]
    rows = []
    for precision in args.precision:
        cmd = [sys.executable, os.path.abspath(__file__), "--case", "--steps", str(args.steps), "--precision", precision]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{precision}: {rows[-1]['rss'][-1]:.0f} MiB after {rows[-1]['steps']} steps", file=sys.stderr)
    marks = [s for s in CHECKPOINTS if s <= args.steps]
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores; tiny StyleGAN2 (32 px, cbase 512, cmax 64, batch 4, "
          f"ADA on). Load average {load:.1f} before, {os.getloadavg()[0]:.1f} after.")
    print()
    print("| precision | " + " | ".join(f"RSS at step {s}" for s in marks)
          + f" | growth, step {args.settle} to {args.steps} |")
    print("|:---|" + "---:|" * (len(marks) + 1))
    for r in rows:
        rss = r["rss"]
        growth = rss[-1] - rss[min(args.settle, len(rss)) - 1]
        print(f"| {r['precision']} | " + " | ".join(f"{rss[s - 1]:.0f} MiB" for s in marks) + f" | {growth:+.1f} MiB |")


if __name__ == "__main__":
    main()
