"""Which parts of StyleGAN2 can run in bf16: image differences and speed per choice of fp32 parts.

For each network (the shipped model, and a random config-F generator at 256 px) and each
choice of the parts kept in fp32 (`facegen_cli.precision.FP32_PARTS`), the same seeds are drawn
in fp32 and under bf16 autocast; the table gives the mean and max absolute difference on the
[-1, 1] scale, the share of 8-bit pixels more than 1/255 away from fp32, and the time of the
bf16 pass relative to fp32 (median over rounds that alternate the order).

    python benchmarks/precision.py
    python benchmarks/precision.py --nets default --rounds 5

The output is a Markdown table (stdout) for benchmarks/RESULTS.md; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from machine import cpu_name

ROOT = Path(__file__).resolve().parents[1]
# (label, parts kept in fp32); "everything" wraps the mapping network in autocast too.
CHOICES = [
    ("nothing (all bf16)", frozenset()),
    ("mapping", frozenset({"mapping"})),
    ("mapping, affine, demod", frozenset({"mapping", "affine", "demod"})),
    ("mapping, affine, demod, torgb (default)", frozenset({"mapping", "affine", "demod", "torgb", "epilogue"})),
]


def load_generator(name: str):
    """(G, batch, seeds, description) for `default` (the shipped model) or `f256` (random config F)."""
    import torch

    from facegen_cli.checkpoint import load_checkpoint
    from facegen_cli.models.stylegan2 import Generator

    if name == "default":
        G = load_checkpoint(ROOT / "weights" / "default.safetensors").G_ema
        return G, 8, list(range(8)), "shipped default model (64 px, 1.4 M)"
    torch.manual_seed(0)
    G = Generator(z_dim=512, w_dim=512, img_resolution=256, mapping_layers=8, channel_base=32768,
                  channel_max=512).eval().requires_grad_(False)
    with torch.no_grad():
        for layer in G.synthesis.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.1)  # random init has none; a trained network has some
    return G, 1, [0, 1], "random config F, 256 px (30 M)"


def measure(name: str, rounds: int) -> list[dict]:
    import numpy as np
    import torch

    from facegen_cli import precision
    from facegen_cli.images import to_uint8
    from facegen_cli.sampler import seed_to_z

    G, batch, seeds, label = load_generator(name)
    z = torch.from_numpy(np.stack([seed_to_z(s, G.z_dim) for s in seeds]))
    chunks = z.split(batch)

    def draw(bf16: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return torch.cat([G(c, noise_mode="const").float() for c in chunks])

    rows = []
    with torch.inference_mode():
        ref = draw(False)
        ref8 = to_uint8(ref).astype(np.int16)
        for choice, parts in CHOICES:
            precision.FP32_PARTS = parts
            img = draw(True)
            diff = (img - ref).abs()
            off = np.abs(to_uint8(img).astype(np.int16) - ref8) > 1
            times: dict[bool, list[float]] = {False: [], True: []}
            for rnd in range(rounds + 1):
                for bf16 in ((False, True) if rnd % 2 else (True, False)):
                    start = time.perf_counter()
                    draw(bf16)
                    if rnd:
                        times[bf16].append(time.perf_counter() - start)
            speed = statistics.median(times[False]) / statistics.median(times[True])
            rows.append({"net": label, "choice": choice, "mean": float(diff.mean()), "max": float(diff.max()),
                         "off": float(off.mean()), "speed": speed, "images": len(seeds), "batch": batch})
            print(f"{name} {choice}: mean {rows[-1]['mean']:.4f} max {rows[-1]['max']:.3f} "
                  f"speed {speed:.2f}x", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["default", "f256"], choices=["default", "f256"])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per choice, after a warm-up")
    args = parser.parse_args()
    import torch

    load = os.getloadavg()[0]
    rows = [row for name in args.nets for row in measure(name, args.rounds)]
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), torch "
          f"{torch.__version__}, Python {platform.python_version()}; noise mode const, psi 1. Load average "
          f"{load:.1f} before, {os.getloadavg()[0]:.1f} after.")
    print()
    print("| network | kept in fp32 | images (batch) | mean abs diff | max abs diff | 8-bit pixels off by > 1 "
          "| bf16 speed vs fp32 |")
    print("|:---|:---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['net']} | {r['choice']} | {r['images']} ({r['batch']}) | {r['mean']:.4f} | {r['max']:.3f} | "
              f"{r['off']:.1%} | {r['speed']:.2f}x |")


if __name__ == "__main__":
    main()
