"""StyleGAN2 training speed: sec/kimg and images/s of `facegen train`'s loop, per config.

Each case (preset, resolution, batch, precision) runs in its own process, which builds a Trainer
on a folder of noise images (speed does not depend on content, and it runs where the face data is
absent, e.g. on a lent GPU); one round trains it through the real loop (`Trainer.run`): step 0 is
warm-up, then steps 1-16 are timed (by default), one full lazy-regularisation period (path length
on every 4th step, R1 on the 16th). Their mean is the amortised sec/kimg; the median of the plain
steps (no regulariser) gives images/s without the lazy terms; `memory_mb` is the peak RSS (CPU) or
peak CUDA memory.

    python -m benchmarks.train                              # small@64 and paper256@256 on CPU
    python -m benchmarks.train --device cuda --cases small:64:32 paper256:256:64
    # NVIDIA's 64 px "small" net, fp32 and bf16 side by side:
    python -m benchmarks.train --cases paper256:64:16 --map 2 --cbase 4096 --cmax 256 --gamma 0.0512 \
        --aug noaug --precision fp32 bf16
"""
from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import harness

# preset:resolution:batch[:timed steps]. 16 timed steps are one lazy-regularisation period (G path
# length every 4 steps, D R1 every 16). On two CPU cores paper256 gets batch 4 and 4 steps (path
# length once, R1 not timed), or a case would take most of an hour.
CPU_CASES = ["small:64:16", "paper256:256:4:4"]
GPU_CASES = ["small:64:32", "paper256:256:64"]
QUICK_CASE = "small:32:2:1"
TIMED_STEPS = 16
DATA_IMAGES = 64
OVERRIDES = (("map", int), ("cbase", int), ("cmax", int), ("gamma", float), ("aug", str))


def noise_dataset(folder: Path, resolution: int, count: int = DATA_IMAGES) -> Path:
    """`count` PNGs of uniform noise at `resolution` in `folder`."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, [resolution, resolution, 3], dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:08d}.png")
    return folder


def train_once(params: dict) -> dict:
    """Train `steps` + 1 steps of one config; seconds per step, and the summary of the timed ones."""
    import torch

    from facegen_cli.train.loop import Trainer
    from facegen_cli.train.options import TrainOptions

    res, batch, steps = params["resolution"], params["batch"], params["steps"]
    with tempfile.TemporaryDirectory() as tmp:
        opts = TrainOptions(data=str(noise_dataset(Path(tmp) / "noise", res)), out=str(Path(tmp) / "runs"),
                            cfg=params["cfg"], batch=batch, device=params["device"], kimg=batch * (steps + 1) / 1000,
                            snap=1e6, workers=1, precision=params["precision"], **{"aug": "ada", **params["overrides"]})
        trainer = Trainer(opts, log=lambda msg: None)
        sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
        stamps: list[float] = []
        sync()
        stamps.append(time.perf_counter())
        trainer.run(on_step=lambda stats: (sync(), stamps.append(time.perf_counter())))
        memory = (torch.cuda.max_memory_allocated() if trainer.device.type == "cuda"
                  else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
    times = [b - a for a, b in zip(stamps, stamps[1:])]
    lazy = [p.interval for p in trainer.phases if p.interval > 1]
    plain = [t for i, t in enumerate(times) if i > 0 and not any(i % n == 0 for n in lazy)]
    timed = times[1:]  # step 0 is warm-up
    return {"times": times, "sec_per_kimg": statistics.mean(timed) / batch * 1000,
            "img_s": batch * len(timed) / sum(timed), "plain_img_s": batch / statistics.median(plain) if plain else None,
            "warmup_s": times[0], "memory_mb": memory, "precision": trainer.loss.precision.name, "aug": opts.aug,
            "params_G": sum(p.numel() for p in trainer.G.parameters())}


def build(params: dict) -> harness.Work:
    return harness.Work(lambda: train_once(params), units={"images": params["batch"] * (params["steps"] + 1)})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--cases", nargs="+", help="preset:resolution:batch[:steps] (default: by device)")
    parser.add_argument("--steps", type=int, default=TIMED_STEPS, help="timed steps after the warm-up step, "
                        "where a case does not say")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"])
    for name, kind in OVERRIDES:
        parser.add_argument(f"--{name}", type=kind, default=None, help="override the preset, as `facegen train` does")


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    overrides = {name: getattr(args, name) for name, _ in OVERRIDES if getattr(args, name) is not None}
    chosen = [QUICK_CASE] if args.quick else args.cases or (GPU_CASES if args.device.startswith("cuda") else CPU_CASES)
    found = []
    for case in chosen:
        cfg, res, batch, *steps = case.split(":")
        for precision in args.precision:
            params = dict(cfg=cfg, resolution=int(res), batch=int(batch), steps=int(steps[0]) if steps else args.steps,
                          device=args.device, precision=precision, overrides=overrides)
            found.append(harness.Case(f"{case} {precision}", params, group=f"{case} {precision}", rounds=1))
    return found


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options, warmup=0))
