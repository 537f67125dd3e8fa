"""StyleGAN2 training speed: sec/kimg and images/s of `facegen train`'s loop, per config.

Each case (preset, resolution, batch) runs in a fresh process that builds a Trainer on a
folder of noise images (speed does not depend on content, and it runs where ../shared/data is
absent, e.g. on a lent GPU) and trains it through the real loop: step 0 is warm-up, then
steps 1-16 are timed (by default), one full lazy-regularisation period (path length on every 4th
step, R1 on the 16th). Their mean is the amortised sec/kimg; the median of the plain steps (no
regulariser) gives images/s without the lazy terms.

    python benchmarks/train.py                              # small@64 and paper256@256 on CPU
    python benchmarks/train.py --device cuda --cases small:64:32 paper256:256:64
    # issue 15's row (NVIDIA's 64 px "small" net), fp32 and bf16 side by side, each a fresh process:
    python benchmarks/train.py --cases paper256:64:16 --map 2 --cbase 4096 --cmax 256 --gamma 0.0512 \
        --aug noaug --precision fp32 bf16

Each row also gives the process's peak RSS (CPU) or peak CUDA memory.

The output is a Markdown table (stdout) for benchmarks/RESULTS.md; progress goes to stderr.
"""
from __future__ import annotations

import argparse
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

from machine import cpu_name, memory_gib

# preset:resolution:batch[:timed steps]. 16 timed steps are one lazy-regularisation period (G path
# length every 4 steps, D R1 every 16). On two CPU cores paper256 gets batch 4 and 4 steps (path
# length once, R1 not timed), or a case would take most of an hour.
CPU_CASES = ["small:64:16", "paper256:256:4:4"]
GPU_CASES = ["small:64:32", "paper256:256:64"]
TIMED_STEPS = 16
DATA_IMAGES = 64


def noise_dataset(folder: Path, resolution: int, count: int = DATA_IMAGES) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, [resolution, resolution, 3], dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:08d}.png")
    return folder


def run_case(cfg: str, resolution: int, batch: int, device: str, steps: int, precision: str = "fp32",
             overrides: dict | None = None) -> dict:
    """Train `steps` + 1 steps of one config; seconds per step, and which steps ran regularisers."""
    import torch

    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.options import TrainOptions

    with tempfile.TemporaryDirectory() as tmp:
        data = noise_dataset(Path(tmp) / f"noise{resolution}", resolution)
        opts = TrainOptions(data=str(data), out=str(Path(tmp) / "runs"), cfg=cfg, batch=batch, device=device,
                            kimg=batch * (steps + 1) / 1000, snap=1e6, workers=1,
                            **{"aug": "ada", **(overrides or {})}, precision=precision)
        trainer = Trainer(opts, log=lambda msg: None)
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        stamps: list[float] = []

        def on_step(_stats: dict) -> None:
            sync()
            stamps.append(time.perf_counter())

        sync()
        start = time.perf_counter()
        trainer.run(on_step=on_step)
        times = [b - a for a, b in zip([start] + stamps, stamps)]
        intervals = {p.name: p.interval for p in trainer.phases}
        params = sum(p.numel() for p in trainer.G.parameters())
        memory = (torch.cuda.max_memory_allocated() if trainer.device.type == "cuda"
                  else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
    reg_steps = [i for i in range(len(times)) if any(i % n == 0 for n in intervals.values() if n > 1)]
    return {"cfg": cfg, "resolution": resolution, "batch": batch, "device": str(trainer.device), "times": times,
            "reg_steps": reg_steps, "params_G": params, "memory_mb": memory, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "precision": trainer.loss.precision.name, "aug": opts.aug}


def summarise(result: dict) -> dict:
    timed = result["times"][1:]  # step 0 is warm-up
    plain = [t for i, t in enumerate(result["times"]) if i > 0 and i not in result["reg_steps"]]
    batch = result["batch"]
    return {"sec_per_kimg": statistics.mean(timed) / batch * 1000, "img_s": batch * len(timed) / sum(timed),
            "plain_img_s": batch / statistics.median(plain), "warmup_s": result["times"][0]}


def spawn_case(case: str, device: str, steps: int, precision: str = "fp32", overrides: dict | None = None,
               threads: int | None = None) -> dict:
    """Run one `preset:res:batch[:steps]` case in a fresh process and return its JSON result."""
    cfg, res, batch, *case_steps = case.split(":")
    cmd = [sys.executable, os.path.abspath(__file__), "--case", cfg, res, batch, "--device", device,
           "--steps", case_steps[0] if case_steps else str(steps), "--precision", precision,
           "--overrides", json.dumps(overrides or {})] + (["--threads", str(threads)] if threads else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--cases", nargs="+", help="preset:resolution:batch[:steps] (default: by device)")
    parser.add_argument("--steps", type=int, default=TIMED_STEPS, help="timed steps after the warm-up step, "
                        "where a case does not say")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"],
                        help="each one a fresh process per case, run back to back")
    for flag, kind in (("--map", int), ("--cbase", int), ("--cmax", int), ("--gamma", float), ("--aug", str)):
        parser.add_argument(flag, type=kind, default=None, help="override the preset, as `facegen train` does")
    parser.add_argument("--case", nargs=3, metavar=("CFG", "RES", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each case (default: torch's)")
    args = parser.parse_args()

    if args.case:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        cfg, res, batch = args.case
        print(json.dumps(run_case(cfg, int(res), int(batch), args.device, args.steps, args.precision[0],
                                  json.loads(args.overrides))))
        return
    overrides = {key: getattr(args, key) for key in ("map", "cbase", "cmax", "gamma", "aug")
                 if getattr(args, key) is not None}

    import torch

    cases = args.cases or (GPU_CASES if args.device.startswith("cuda") else CPU_CASES)
    load_before = os.getloadavg()
    rows = []
    for case in cases:
        for precision in args.precision:
            start = time.perf_counter()
            result = spawn_case(case, args.device, args.steps, precision, overrides, args.threads)
            rows.append((result, summarise(result)))
            print(f"{case} {result['precision']}: {rows[-1][1]['sec_per_kimg']:.0f} sec/kimg "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    device = rows[0][0]["device"] if rows else args.device
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else \
        f"{cpu_name()}, {os.cpu_count()} cores ({rows[0][0]['threads'] if rows else '?'} torch threads), " \
        f"{memory_gib():.0f} GiB"
    print(f"Device: {where}; torch {torch.__version__}, Python {platform.python_version()}; overrides "
          f"{json.dumps(overrides) if overrides else 'none'}; 1 warm-up step, then the timed steps. Load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    print()
    print("| config | res | params (G) | batch | aug | precision | timed steps | sec/kimg | img/s | img/s, steps "
          "without regularisers | warm-up step s | peak memory |")
    print("|:---|---:|---:|---:|:---|:---|---:|---:|---:|---:|---:|---:|")
    for r, s in rows:
        where = "RSS" if r["device"] == "cpu" else "CUDA"
        print(f"| {r['cfg']} | {r['resolution']} | {r['params_G'] / 1e6:.1f} M | {r['batch']} | {r['aug']} | "
              f"{r['precision']} | {len(r['times']) - 1} | {s['sec_per_kimg']:.0f} | {s['img_s']:.2f} | "
              f"{s['plain_img_s']:.2f} | {s['warmup_s']:.1f} | {r['memory_mb']:.0f} MiB {where} |")

if __name__ == "__main__":
    main()
