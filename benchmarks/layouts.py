"""channels_last and torch.compile for facegen's StyleGAN2 on this CPU, side by side.

Two cases: the 64 px "small" generator of `generate.py --config small` drawing batches of 8 as
`facegen generate` draws (`torch.inference_mode()`, noise_mode const), and training steps of the
64 px small net of `facegen train DATA --cfg paper256 --map 2 --cbase 4096 --cmax 256 --batch 16
--gamma 0.0512 --aug noaug` (peer_nvidia's resolved run, one fixed batch of noise reals). A
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
Each (case, precision) is a group of processes, one per variant, each with a cold inductor cache of
its own; a process builds its networks and times its first call (`info.first_s`; for a compiled
variant, mostly the compilation), keeps that call's output (the images; in training the step's
losses and G and D gradients), and then, round after round, every variant does the same work in
turn. `vs_first` is the median over rounds of the first variant's round time over this one's;
`info.graphs` / `info.breaks` are dynamo's compiled graphs and graph breaks; `max_abs_diff` is the
largest absolute difference of the first call's output from the first variant's in the same
precision and in fp32 (out of `output_scale`, that output's largest magnitude).

    python -m benchmarks.layouts                                   # both cases, fp32 and bf16
    python -m benchmarks.layouts --cases generate-64-small-b8 --precision fp32 --threads 1
    python -m benchmarks.layouts --variants default compile max-autotune
    python -m benchmarks.layouts --quick                           # a check: one round of tiny work
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.peer_nvidia import case_spec, facegen_generator, facegen_trainer, repeated

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
QUICK = dict(calls=1, steps=1)  # --quick: one round of this work


def build(params: dict) -> harness.Work:
    """The variant's networks and its first call (timed, its output kept); a round is the case's work."""
    from torch._dynamo.utils import counters

    spec = params["spec"]
    channels_last, mode = VARIANTS[params["variant"]]
    if mode:
        import torch._inductor.config

        torch._inductor.config.fallback_random = True
    if spec["kind"] == "generate":
        call, output, counts = facegen_generator(spec, params["precision"], channels_last, mode)
    else:
        call, output, counts = facegen_trainer(spec, params["precision"], channels_last, mode, main_phases_only=True)
    start = time.perf_counter()
    call()
    first_s = time.perf_counter() - start
    work = spec.get("calls", spec.get("steps"))
    return harness.Work(repeated(call, work), info={"params": counts, "first_s": first_s},
                        units={"images": spec["batch"] * work}, output=output(),
                        finish=lambda: {"graphs": counters["stats"]["unique_graphs"],
                                        "breaks": dict(counters["graph_break"])})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS,
                        help="the first is the reference of vs_first and max_abs_diff")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                        help="each its own group of processes, run one after the other")


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    found = []
    for name in ["generate-64-small-b8"] if args.quick else args.cases:
        spec = case_spec(CASES[name], QUICK if args.quick else None, folder)
        variants = args.variants[:2] if args.quick else args.variants
        for precision in ["fp32"] if args.quick else args.precision:
            found += [harness.Case(f"{name} {precision} {variant}", dict(variant=variant, precision=precision, spec=spec),
                                   group=f"{name} {precision}", rounds=spec["rounds"],
                                   env={"TORCHINDUCTOR_CACHE_DIR": str(folder / f"inductor-{name}-{variant}-{precision}")},
                                   compare_to=(f"{name} {precision} {variants[0]}", f"{name} fp32 {variants[0]}"))
                      for variant in variants]
    return found


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options, warmup=2))
