"""channels_last and torch.compile for facegen's StyleGAN2 on this CPU, side by side (issue 15, item 3).

Two cases: the 64 px "small" generator of `generate.py --config small` drawing batches of 8 as
`facegen generate` draws (`torch.inference_mode()`, noise_mode const), and training steps of the
64 px small net of `facegen train DATA --cfg paper256 --map 2 --cbase 4096 --cmax 256 --batch 16
--gamma 0.0512 --aug noaug` (peer_nvidia.py's resolved run, one fixed batch of noise reals). A
training step here is `Trainer.train_step` with only the Gmain and Dmain phases (plus the G_ema
update): the lazy R1 and path-length phases differentiate twice (`create_graph=True`), which
torch.compile's AOTAutograd does not support (torch 2.14.1, tried on a compiled convolution: that
backward raises "a leaf Variable that requires grad is being used in an in-place operation"), so
every variant leaves them out alike.

Variants: `channels_last` trains as `facegen train` does by default on a CPU (G, D and G_ema in
torch.channels_last), `default` as `facegen train --contiguous` (in generation: G in either layout);
`compile` wraps G.synthesis and D in torch.compile (inductor;
`max-autotune` uses mode="max-autotune-no-cudagraphs"), with inductor's `fallback_random` so the
noise the synthesis layers draw while training comes from the same generator as in eager mode.
Each (case, precision) starts one fresh process per variant, each with a cold inductor cache of
its own; a process builds its networks, times its first call (for a compiled variant, mostly the
compilation), keeps that call's output (the images; in training the step's losses and G and D
gradients) and then, round after round, every variant does the same work in turn (one leading each
round), so all see the same machine load.

img/s is the median over the timed rounds; "÷ default" is the median over rounds of the first
variant's (default's) round time over this one's. CPU s/img is the process's CPU time per image,
peak RSS its ru_maxrss (compilation included); "graphs / breaks" are dynamo's compiled graphs and
graph breaks (their reasons go to stderr). The last two columns are the largest absolute difference
of the first call's output from the first variant's in the same precision and in fp32, out of that
output's largest magnitude.

    python benchmarks/layouts.py                                   # both cases, fp32 and bf16
    python benchmarks/layouts.py --cases generate-64-small-b8 --precision fp32 --threads 1
    python benchmarks/layouts.py --variants default compile max-autotune
    python benchmarks/layouts.py --quick                           # a check: 1 warm-up, 1 timed round

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

from machine import cpu_name, memory_gib
from peer_nvidia import Child, case_spec, facegen_generator, facegen_trainer

# Work per round (`calls` generator passes or `steps` training steps) and timed rounds, per case.
CASES: dict[str, dict] = {
    "generate-64-small-b8": dict(kind="generate", config="small", resolution=64, batch=8, calls=8, rounds=7),
    "train-64-small-b16": dict(kind="train", resolution=64, batch=16, steps=4, rounds=5),
}
# Variant: (channels_last, torch.compile mode or None for eager).
VARIANTS: dict[str, tuple[bool, str | None]] = {
    "default": (False, None), "channels_last": (True, None), "compile": (False, "default"),
    "compile+channels_last": (True, "default"), "max-autotune": (False, "max-autotune-no-cudagraphs"),
    "max-autotune+channels_last": (True, "max-autotune-no-cudagraphs")}
DEFAULT_VARIANTS = ["default", "channels_last", "compile", "compile+channels_last"]
QUICK = dict(calls=1, steps=1, rounds=1)  # --quick: one warm-up and one timed round of this work


# ---- child processes: build, first call, then one round per "round" line on stdin ----

def serve(variant: str, precision: str, spec: dict, threads: int | None, check: str) -> None:
    """A child: build the variant, time its first call, save that call's output to `check`, then serve rounds."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # replies only; anything the libraries print goes to stderr
    os.dup2(2, 1)
    import torch
    from torch._dynamo.utils import counters

    if threads:
        torch.set_num_threads(threads)
    channels_last, mode = VARIANTS[variant]
    if mode:
        import torch._inductor.config

        torch._inductor.config.fallback_random = True
    start = time.perf_counter()
    if spec["kind"] == "generate":
        call, output, params = facegen_generator(spec, precision, channels_last, mode)
    else:
        call, output, params = facegen_trainer(spec, precision, channels_last, mode, main_phases_only=True)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    call()
    first_s = time.perf_counter() - start
    torch.save(output().detach().float().cpu(), check)
    channel.write(json.dumps({"params": params, "build_s": build_s, "first_s": first_s,
                              "threads": torch.get_num_threads()}) + "\n")
    work = spec.get("calls", spec.get("steps"))
    for line in sys.stdin:
        if line.strip() != "round":
            break
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(work):
            call()
        channel.write(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu}) + "\n")
    channel.write(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "graphs": counters["stats"]["unique_graphs"],
                              "breaks": dict(counters["graph_break"])}) + "\n")


# ---- the parent: cases, alternation, table ----

class Variant(Child):
    """One variant's process (peer_nvidia's Child, started on this script); `last` is its latest reply."""

    def __init__(self, variant: str, precision: str, spec: dict, threads: int | None, folder: Path):
        self.tool, self.precision = variant, precision
        self.check = check_path(folder, variant, precision)
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", variant, precision, "--spec", json.dumps(spec),
               "--check", str(self.check)] + (["--threads", str(threads)] if threads else [])
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(folder / f"inductor-{variant}-{precision}")}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     env=env)
        self.ready = self._read()
        self.walls: list[float] = []
        self.cpus: list[float] = []

    def _read(self) -> dict:
        self.last = super()._read()
        return self.last


def check_path(folder: Path, variant: str, precision: str) -> Path:
    """Where a variant's first-call output is kept (`folder` is the case's own)."""
    return folder / f"{variant}-{precision}.pt"


def max_difference(check: Path, reference: Path) -> float | None:
    """The largest absolute difference of two kept outputs, or None where the reference did not run."""
    import torch

    return (torch.load(check) - torch.load(reference)).abs().max().item() if reference.exists() else None


def run_group(name: str, spec: dict, precision: str, variants: list[str], threads: int | None, warmup: int,
              folder: Path) -> list[dict]:
    """All variants of one case in one precision, alternating round by round; one result per variant."""
    import torch

    children: list[Variant] = []
    failed: list[dict] = []
    try:
        for variant in variants:
            try:
                child = Variant(variant, precision, spec, threads, folder)
            except RuntimeError as error:  # a variant that cannot build or compile: the others still run
                failed.append({"variant": variant, "precision": precision, "failed": str(error)})
                print(f"{name}: {variant} {precision} failed: {error}", file=sys.stderr, flush=True)
                continue
            children.append(child)
            print(f"{name}: {child.label} built in {child.ready['build_s']:.1f} s (params {child.ready['params']}), "
                  f"first call {child.ready['first_s']:.1f} s", file=sys.stderr, flush=True)
        for rnd in range(warmup + spec["rounds"]):
            order = children[rnd % len(children):] + children[:rnd % len(children)]  # each leads in turn
            walls = {child.label: child.round(timed=rnd >= warmup) for child in order}
            print(f"{name} {precision}: round {rnd + 1}/{warmup + spec['rounds']}"
                  f"{' (warm-up)' if rnd < warmup else ''} " + ", ".join(f"{label} {wall:.2f} s"
                                                                        for label, wall in walls.items()),
                  file=sys.stderr, flush=True)
        rss = [child.finish() for child in children]
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.kill()
    for child in children:
        for reason, count in child.last["breaks"].items():
            print(f"{name}: {child.label} graph break x{count}: {reason}", file=sys.stderr, flush=True)
    images = spec["batch"] * spec.get("calls", spec.get("steps"))
    rows = []
    for child, peak in zip(children, rss):
        rows.append({"variant": child.tool, "precision": precision, "first_s": child.ready["first_s"],
                     "graphs": child.last["graphs"], "breaks": sum(child.last["breaks"].values()),
                     "rounds": len(child.walls), "img_s": images / statistics.median(child.walls),
                     "vs_default": statistics.median(d / w for d, w in zip(children[0].walls, child.walls)),
                     "cpu_s_img": statistics.median(child.cpus) / images, "peak_rss_mb": peak,
                     "check": child.check, "scale": torch.load(child.check).abs().max().item(),
                     "threads": child.ready["threads"]})
    return rows + failed


def describe(spec: dict) -> str:
    """The case in words, for the table."""
    if spec["kind"] == "train":
        return (f"train 64 px small (paper256, map 2, 4096/256), batch {spec['batch']}, Gmain + Dmain, "
                f"{spec['steps']} steps/round")
    return f"generate {spec['resolution']} px small, batch {spec['batch']}, {spec['calls']} calls/round"


def difference(value: float | None, scale: float) -> str:
    """A table cell: the difference out of the output's largest magnitude, or a dash where it was not measured."""
    return "—" if value is None else f"{value:.1e} of {scale:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS,
                        help="the first is the reference of the ÷ and difference columns")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                        help="each its own group of processes, run one after the other")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in every process (default: torch's)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after the first call")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (default: by case)")
    parser.add_argument("--quick", action="store_true", help="one warm-up and one timed round of tiny work: a check")
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PRECISION"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--check", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve, json.loads(args.spec), args.threads, args.check)
        return

    import torch

    warmup = 1 if args.quick else args.warmup
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            folder = Path(tmp) / name
            folder.mkdir()
            spec = case_spec(CASES[name], QUICK if args.quick else None, args.rounds, folder)
            case_rows = []
            for precision in args.precision:
                start = time.perf_counter()
                case_rows += [{"case": describe(spec), **row}
                              for row in run_group(name, spec, precision, args.variants, args.threads, warmup, folder)]
                print(f"{name} {precision}: done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
            for row in case_rows:  # every precision has run: compare with its own first variant and with fp32's
                if "check" in row:
                    row["diff"], row["diff_fp32"] = (
                        max_difference(row["check"], check_path(folder, args.variants[0], precision))
                        for precision in (row["precision"], "fp32"))
            rows += case_rows
    load_after = os.getloadavg()

    threads = next((r["threads"] for r in rows if "threads" in r), torch.get_num_threads())
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores ({threads} torch threads per process), "
          f"{memory_gib():.0f} GiB, torch {torch.__version__}, Python {platform.python_version()}; "
          f"{datetime.date.today().isoformat()}. Each variant a fresh process per case and precision (cold "
          f"inductor cache), first call, then {warmup} warm-up + timed rounds alternating (each variant leads in "
          f"turn). Load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.")
    print()
    print("| case | precision | variant | first call s | graphs / breaks | rounds | img/s | ÷ default | CPU s/img | "
          "peak RSS | max abs diff vs default | vs fp32 default |")
    print("|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['case']} | {r['precision']} | {r['variant']} | failed: {r['failed']} |" + " |" * 8)
            continue
        print(f"| {r['case']} | {r['precision']} | {r['variant']} | {r['first_s']:.1f} | {r['graphs']} / "
              f"{r['breaks']} | {r['rounds']} | {r['img_s']:.3f} | {r['vs_default']:.2f}x | {r['cpu_s_img']:.3f} | "
              f"{r['peak_rss_mb']:.0f} MiB | {difference(r['diff'], r['scale'])} | "
              f"{difference(r['diff_fp32'], r['scale'])} |")


if __name__ == "__main__":
    main()
