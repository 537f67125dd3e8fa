"""Time one modulated convolution per StyleGAN2 synthesis block: demodulation by matrix product
(`demodulation_coefficients`) against the per-sample-weight reference, fused and non-fused.

    python -m benchmarks.modconv                           # config-F blocks 4-256 px, batch 1 and 8
    python -m benchmarks.modconv --device cuda --resolutions 4 8 16 32 64 128 256 512 1024 --batches 8 32

Each case is a 3x3 modulated conv at the block's resolution and channel count (config F: channel
base 32768, at most 512), styles from a random affine, with one demodulation; its round is as many
calls as last about `--target-s` (`seconds_per_call` = median round / calls). "inference" is a
forward pass under `torch.inference_mode()`; "training" is forward + backward to x, weight and
styles. The two demodulations of a block alternate round by round (`vs_first`: matmul over reference).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import harness

DEMODULATIONS = ("matmul", "reference")


def block_channels(res: int) -> int:
    return min(32768 // res, 512)


def build(params: dict) -> harness.Work:
    """The block's inputs on the device, its demodulation in place; a round is `calls` calls."""
    import torch

    from facegen_cli.ops import conv2d_resample

    if params["demodulation"] == "reference":
        conv2d_resample.demodulation_coefficients = conv2d_resample.demodulation_coefficients_ref
    res, batch, device = params["resolution"], params["batch"], params["device"]
    ch = block_channels(res)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn([batch, ch, res, res], generator=gen).to(device)
    weight = torch.randn([ch, ch, 3, 3], generator=gen).to(device)
    styles = (torch.randn([batch, ch], generator=gen) + 1).to(device)
    training = params["pass"] == "training"
    if training:
        x, weight, styles = (t.requires_grad_() for t in (x, weight, styles))

    def call() -> None:
        if training:
            y = conv2d_resample.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=params["fused"])
            torch.autograd.grad(y.sum(), [x, weight, styles])
        else:
            with torch.inference_mode():
                conv2d_resample.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=params["fused"])

    calls = harness.calls_for(call, device, params["target_s"], most=200)
    return harness.Work(lambda: {"seconds_per_call": harness.seconds_per_call(call, device, calls)},
                        info={"channels": ch, "calls": calls}, units={"calls": calls})


def options(parser: argparse.ArgumentParser) -> None:
    import torch

    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--target-s", type=float, default=0.3, help="length of one timed round per case")


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    resolutions, batches, target = ([8], [1], 0.01) if args.quick else (args.resolutions, args.batches, args.target_s)
    fusions, kinds = ((True,), ("inference",)) if args.quick else ((True, False), ("inference", "training"))
    found = []
    for res in resolutions:
        for batch in batches:
            for fused in fusions:
                for kind in kinds:
                    group = f"{res}px b{batch} {'fused' if fused else 'non-fused'} {kind}"
                    found += [harness.Case(f"{group} {demod}", dict(resolution=res, batch=batch, fused=fused,
                                                                    demodulation=demod, device=args.device,
                                                                    target_s=target, **{"pass": kind}), group=group)
                              for demod in DEMODULATIONS]
    return found


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options))
