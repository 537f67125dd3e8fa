"""Images/s of StyleGAN2 generators on this machine: fused vs non-fused modulated conv, fp32 vs bf16.

Each (resolution, batch, precision) case runs in a fresh process that builds the generator once
and then times the modconv paths in turn, each leading one round after another: fused modulated
conv, non-fused, and the generator's default rule (`prefer_fused_modconv`), so all see the same
machine load; the reported numbers are medians over the timed rounds, after `--warmup` rounds.
The precisions of one (resolution, batch) run back to back, so their ratio survives the load;
each row also gives the median CPU seconds per image and the process's peak RSS.

    python benchmarks/generate.py                      # config F: 64, 256 and 1024 px, batch 1 and 8
    python benchmarks/generate.py --resolutions 64 --batches 1 8 --rounds 5
    # issue 15's rows, fp32 and bf16 side by side:
    python benchmarks/generate.py --config f --resolutions 256 --batches 1 --paths default --precision fp32 bf16
    python benchmarks/generate.py --config small --resolutions 64 --batches 8 --paths default --precision fp32 bf16

The output is a Markdown table (stdout) ready for benchmarks/RESULTS.md; progress goes to stderr.
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
import time

from machine import cpu_name, memory_gib

# Timed rounds (after one warm-up round) per resolution; 1024 px is slow on two cores.
DEFAULT_ROUNDS = {64: 7, 256: 4, 1024: 2}
# At 1024 px and up, a larger batch whose estimated run time exceeds this is skipped (and reported).
CASE_BUDGET_S = 600.0
BUDGET_FROM_RES = 1024
# The timed paths: fused_modconv forced on, forced off, or left to the generator's default rule.
PATHS = {"fused": True, "non_fused": False, "default": None}


# Networks by --config: NVIDIA's config F, and the issue-15 "small" one (4096/256 channels, 2 mapping layers).
CONFIGS = {"f": dict(z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=512),
           "small": dict(z_dim=256, w_dim=256, mapping_layers=2, channel_base=4096, channel_max=256)}


def config_f_kwargs(resolution: int, config: str = "f") -> dict:
    """Generator kwargs of `config` (default NVIDIA's config F) at `resolution`."""
    return dict(c_dim=0, img_resolution=resolution, img_channels=3, **CONFIGS[config])


def run_case(resolution: int, batch: int, rounds: int, config: str = "f", precision: str = "fp32",
             paths: tuple[str, ...] = tuple(PATHS), warmup: int = 1) -> dict:
    """Build one generator and time the modconv `paths` side by side; seconds per forward pass."""
    import torch

    from facegen_cli.models.stylegan2 import Generator
    from facegen_cli.precision import resolve_precision, synthesize

    torch.manual_seed(0)
    G = Generator(**config_f_kwargs(resolution, config)).eval().requires_grad_(False)
    z = torch.randn([batch, G.z_dim], generator=torch.Generator().manual_seed(1))
    prec = resolve_precision(precision, "cpu")
    times: dict[str, list[float]] = {path: [] for path in paths}
    cpu: dict[str, list[float]] = {path: [] for path in paths}
    outputs = {}
    names = list(paths)
    with torch.inference_mode():
        for rnd in range(rounds + warmup):
            order = names[rnd % len(names):] + names[:rnd % len(names)]  # each path leads in turn
            for path in order:
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[path] = synthesize(G, G.mapping(z, None), prec, noise_mode="const",
                                           fused_modconv=PATHS[path])
                if rnd >= warmup:  # the warm-up rounds fill allocators and kernel caches
                    times[path].append(time.perf_counter() - start)
                    cpu[path].append(time.process_time() - start_cpu)
        max_diff = max((outputs[path] - outputs[names[0]]).abs().max().item() for path in paths)
    params = sum(p.numel() for p in G.parameters())
    return {"resolution": resolution, "batch": batch, "params": params, "times": times, "cpu": cpu,
            "max_abs_diff": max_diff, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "config": config, "precision": prec.name, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024}


def spawn_case(resolution: int, batch: int, rounds: int, config: str = "f", precision: str = "fp32",
               paths: tuple[str, ...] = tuple(PATHS), warmup: int = 1, threads: int | None = None) -> dict:
    """Run one case in a fresh Python process and return its JSON result."""
    cmd = [sys.executable, os.path.abspath(__file__), "--case", str(resolution), str(batch), str(rounds),
           "--config", config, "--precision", precision, "--warmup", str(warmup), "--paths", *paths]
    cmd += ["--threads", str(threads)] if threads else []
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def images_per_s(result: dict, path: str) -> float:
    return result["batch"] / statistics.median(result["times"][path])


def cpu_s_per_image(result: dict, path: str) -> float:
    return statistics.median(result["cpu"][path]) / result["batch"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="f", help="f (config F) or small (4096/256, map 2)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"],
                        help="each one a fresh process per case, run back to back")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS), help="modconv paths to time")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default: by resolution)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each case (default: torch's)")
    parser.add_argument("--case", type=int, nargs=3, metavar=("RES", "BATCH", "ROUNDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    paths = tuple(args.paths)

    if args.case:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(run_case(*args.case, config=args.config, precision=args.precision[0], paths=paths,
                                  warmup=args.warmup)))
        return

    import torch

    load_before = os.getloadavg()
    results, skipped = [], []
    for res in args.resolutions:
        rounds = args.rounds or DEFAULT_ROUNDS.get(res, 3)
        per_image_s = None
        for batch in sorted(args.batches):
            if per_image_s is not None and res >= BUDGET_FROM_RES:
                # (warm-up + timed rounds) x paths x precisions x batch images, at the smallest batch's speed
                estimate = (rounds + args.warmup) * len(paths) * len(args.precision) * batch * per_image_s
                if estimate > CASE_BUDGET_S:
                    skipped.append((res, batch, estimate))
                    print(f"skip {res}px batch {batch}: about {estimate:.0f} s > {CASE_BUDGET_S:.0f} s",
                          file=sys.stderr, flush=True)
                    continue
            for precision in args.precision:
                start = time.perf_counter()
                result = spawn_case(res, batch, rounds, args.config, precision, paths, args.warmup, args.threads)
                results.append(result)
                if per_image_s is None:
                    per_image_s = max(statistics.median(times) for times in result["times"].values()) / batch
                speeds = ", ".join(f"{path} {images_per_s(result, path):.3f} img/s" for path in paths)
                print(f"{res}px batch {batch} {result['precision']}: {speeds} ({time.perf_counter() - start:.0f} s)",
                      file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    threads = results[0]["threads"] if results else torch.get_num_threads()
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores ({threads} torch threads), {memory_gib():.0f} GiB, "
          f"torch {torch.__version__}, Python {platform.python_version()}. Config {args.config}, "
          f"`torch.inference_mode()`, noise_mode const, {args.warmup} warm-up round(s). Load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    print()
    print("| resolution | params (G) | batch | precision | rounds | "
          + " | ".join(f"{path} img/s" for path in paths)
          + f" | vs {args.precision[0]} | CPU s/img | peak RSS | max abs diff between paths |")
    print("|---:|---:|---:|:---|---:|" + "---:|" * (len(paths) + 4))
    base: dict[tuple[int, int], float] = {}
    for r in results:
        key, best = (r["resolution"], r["batch"]), max(images_per_s(r, path) for path in paths)
        base.setdefault(key, best)
        print(f"| {r['resolution']} | {r['params'] / 1e6:.1f} M | {r['batch']} | {r['precision']} | "
              f"{len(r['times'][paths[0]])} | " + " | ".join(f"{images_per_s(r, path):.3f}" for path in paths)
              + f" | {best / base[key]:.2f}x | {cpu_s_per_image(r, paths[-1]):.3f} | {r['peak_rss_mb']:.0f} MiB | "
              f"{r['max_abs_diff']:.1e} |")
    for res, batch, estimate in skipped:
        print(f"\nSkipped {res}px batch {batch}: estimated {estimate:.0f} s (> {CASE_BUDGET_S:.0f} s budget per case).")


if __name__ == "__main__":
    main()
