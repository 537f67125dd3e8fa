"""Time one modulated convolution per StyleGAN2 synthesis block: demodulation by matrix product
(`demodulation_coefficients`) against the per-sample-weight reference, fused and non-fused.

    python benchmarks/modconv.py                           # config-F blocks 4-256 px, batch 1 and 8
    python benchmarks/modconv.py --device cuda --resolutions 4 8 16 32 64 128 256 512 1024 --batches 8 32

Each case is a 3x3 modulated conv at the block's resolution and channel count (config F:
channel base 32768, at most 512), styles from a random affine. "inference" is a forward pass
under `torch.inference_mode()`; "training" is forward + backward to x, weight and styles.
The two demodulations run alternately, `--rounds` times; numbers are medians. The table is
Markdown for benchmarks/RESULTS.md (stdout); the machine line goes first.
"""
from __future__ import annotations

import argparse
import statistics
from typing import Callable

import torch

from facegen_cli.ops import conv2d_resample
from machine import cpu_name, memory_gib
from timing import calls_for, seconds_per_call

DEMODULATIONS = {"matmul": conv2d_resample.demodulation_coefficients,
                 "reference": conv2d_resample.demodulation_coefficients_ref}


def block_channels(res: int) -> int:
    return min(32768 // res, 512)


def time_case(res: int, batch: int, fused: bool, training: bool, device: torch.device, rounds: int,
              target_s: float) -> dict[str, float]:
    """Median seconds per call for each demodulation, run alternately on the same inputs."""
    ch = block_channels(res)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([batch, ch, res, res], generator=gen).to(device)
    weight = torch.randn([ch, ch, 3, 3], generator=gen).to(device)
    styles = (torch.randn([batch, ch], generator=gen) + 1).to(device)
    if training:
        x, weight, styles = (t.requires_grad_() for t in (x, weight, styles))

    def call() -> None:
        if training:
            y = conv2d_resample.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused)
            torch.autograd.grad(y.sum(), [x, weight, styles])
        else:
            with torch.inference_mode():
                conv2d_resample.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=fused)

    def with_demod(name: str) -> Callable[[], None]:
        def run() -> None:
            saved = conv2d_resample.demodulation_coefficients
            conv2d_resample.demodulation_coefficients = DEMODULATIONS[name]
            try:
                call()
            finally:
                conv2d_resample.demodulation_coefficients = saved
        return run

    runs = {name: with_demod(name) for name in DEMODULATIONS}
    runs["matmul"]()  # warm-up; calls_for warms the reference
    calls = calls_for(runs["reference"], device, target_s, most=200)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(seconds_per_call(run, device, calls))
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target-s", type=float, default=0.3, help="length of one timed round per case")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{cpu_name()}, {torch.get_num_threads()} threads, {memory_gib():.0f} GiB"
    print(f"Machine: {where}, torch {torch.__version__}, fp32, {args.rounds} rounds\n")
    print("| block | channels | batch | path | pass | matmul ms | reference ms | speed-up |")
    print("|---:|---:|---:|:---|:---|---:|---:|---:|")
    for res in args.resolutions:
        for batch in args.batches:
            for fused in (True, False):
                for training in (False, True):
                    t = time_case(res, batch, fused, training, device, args.rounds, args.target_s)
                    print(f"| {res} | {block_channels(res)} | {batch} | {'fused' if fused else 'non-fused'} | "
                          f"{'training' if training else 'inference'} | {t['matmul'] * 1e3:.3f} | "
                          f"{t['reference'] * 1e3:.3f} | {t['reference'] / t['matmul']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
