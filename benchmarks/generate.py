"""Images/s of config-f-sized StyleGAN2 generators on this machine: fused vs non-fused modulated conv.

Each (resolution, batch) case runs in a fresh process that builds the generator once and then
times three paths in turn, each leading one round after another: fused modulated conv, non-fused,
and the generator's default rule (`prefer_fused_modconv`), so all see the same machine load; the
reported numbers are medians over the timed rounds.

    python benchmarks/generate.py                      # 64, 256 and 1024 px, batch 1 and 8
    python benchmarks/generate.py --resolutions 64 --batches 1 8 --rounds 5

The output is a Markdown table (stdout) ready for benchmarks/RESULTS.md; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from machine import cpu_name, memory_gib

# Timed rounds (after one warm-up round) per resolution; 1024 px is slow on two cores.
DEFAULT_ROUNDS = {64: 7, 256: 4, 1024: 2}
# At 1024 px and up, a larger batch whose estimated run time exceeds this is skipped (and reported).
CASE_BUDGET_S = 600.0
BUDGET_FROM_RES = 1024
# The timed paths: fused_modconv forced on, forced off, or left to the generator's default rule.
PATHS = {"fused": True, "non_fused": False, "default": None}


def config_f_kwargs(resolution: int) -> dict:
    """NVIDIA's config F: 512-d z and w, 8 mapping layers, channel base 32768, at most 512 channels."""
    return dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3, mapping_layers=8,
                channel_base=32768, channel_max=512)


def run_case(resolution: int, batch: int, rounds: int) -> dict:
    """Build one generator and time both modconv paths side by side; seconds per forward pass."""
    import torch

    from facegen_cli.models.stylegan2 import Generator

    torch.manual_seed(0)
    G = Generator(**config_f_kwargs(resolution)).eval().requires_grad_(False)
    z = torch.randn([batch, G.z_dim], generator=torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {path: [] for path in PATHS}
    outputs = {}
    names = list(PATHS)
    with torch.inference_mode():
        for rnd in range(rounds + 1):
            order = names[rnd % len(names):] + names[:rnd % len(names)]  # each path leads in turn
            for path in order:
                start = time.perf_counter()
                outputs[path] = G(z, noise_mode="const", fused_modconv=PATHS[path])
                elapsed = time.perf_counter() - start
                if rnd > 0:  # round 0 warms up allocators and kernels
                    times[path].append(elapsed)
        max_diff = max((outputs[path] - outputs["non_fused"]).abs().max().item() for path in PATHS)
    params = sum(p.numel() for p in G.parameters())
    return {"resolution": resolution, "batch": batch, "params": params, "times": times, "max_abs_diff": max_diff,
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def spawn_case(resolution: int, batch: int, rounds: int) -> dict:
    """Run one case in a fresh Python process and return its JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--case", str(resolution), str(batch), str(rounds)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def images_per_s(result: dict, path: str) -> float:
    return result["batch"] / statistics.median(result["times"][path])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default: by resolution)")
    parser.add_argument("--case", type=int, nargs=3, metavar=("RES", "BATCH", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        print(json.dumps(run_case(*args.case)))
        return

    import torch

    load_before = os.getloadavg()
    results, skipped = [], []
    for res in args.resolutions:
        rounds = args.rounds or DEFAULT_ROUNDS.get(res, 3)
        per_image_s = None
        for batch in sorted(args.batches):
            if per_image_s is not None and res >= BUDGET_FROM_RES:
                # (warm-up + timed rounds) x paths x batch images, at the smallest batch's speed
                estimate = (rounds + 1) * len(PATHS) * batch * per_image_s
                if estimate > CASE_BUDGET_S:
                    skipped.append((res, batch, estimate))
                    print(f"skip {res}px batch {batch}: about {estimate:.0f} s > {CASE_BUDGET_S:.0f} s",
                          file=sys.stderr, flush=True)
                    continue
            start = time.perf_counter()
            result = spawn_case(res, batch, rounds)
            results.append(result)
            fused, plain, auto = (images_per_s(result, path) for path in PATHS)
            if per_image_s is None:
                per_image_s = max(statistics.median(times) for times in result["times"].values()) / batch
            print(f"{res}px batch {batch}: fused {fused:.3f} img/s, non-fused {plain:.3f} img/s, default {auto:.3f} img/s "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    threads = results[0]["threads"] if results else torch.get_num_threads()
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores ({threads} torch threads), {memory_gib():.0f} GiB, "
          f"torch {torch.__version__}, Python {platform.python_version()}. fp32, `torch.inference_mode()`, "
          f"noise_mode const. Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    print()
    print("| resolution | params (G) | batch | rounds | fused img/s | non-fused img/s | faster | ratio "
          "| default img/s | max abs diff |")
    print("|---:|---:|---:|---:|---:|---:|:---|---:|---:|---:|")
    for r in results:
        fused, plain, auto = (images_per_s(r, path) for path in PATHS)
        faster = "fused" if fused > plain else "non-fused"
        print(f"| {r['resolution']} | {r['params'] / 1e6:.1f} M | {r['batch']} | {len(r['times']['fused'])} | "
              f"{fused:.3f} | {plain:.3f} | {faster} | {max(fused, plain) / min(fused, plain):.2f}x | {auto:.3f} | "
              f"{r['max_abs_diff']:.1e} |")
    for res, batch, estimate in skipped:
        print(f"\nSkipped {res}px batch {batch}: estimated {estimate:.0f} s (> {CASE_BUDGET_S:.0f} s budget per case).")


if __name__ == "__main__":
    main()
