"""Which parts of StyleGAN2 can run in bf16: image differences and speed per choice of fp32 parts.

For each network (the shipped model, and a random config-F generator at 256 px) and each
choice of the parts kept in fp32 (`facegen_cli.precision.FP32_PARTS`), the same seeds are drawn
in fp32 and under bf16 autocast, each case its own process: `info` gives the mean and max absolute
difference from fp32 on the [-1, 1] scale and the share of 8-bit pixels more than 1/255 away;
a network's fp32 case and its bf16 choices alternate round by round, so `vs_first` is each
choice's speed relative to fp32.

    python -m benchmarks.precision
    python -m benchmarks.precision --nets default --rounds 5
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import ROOT
# (label, parts kept in fp32); None: the fp32 reference.
CHOICES = [
    ("fp32", None),
    ("nothing (all bf16)", frozenset()),
    ("mapping", frozenset({"mapping"})),
    ("mapping, affine, demod", frozenset({"mapping", "affine", "demod"})),
    ("mapping, affine, demod, torgb (default)", frozenset({"mapping", "affine", "demod", "torgb", "epilogue"})),
]


def load_generator(name: str):
    """(G, batch, seeds, description) for `default` (the shipped model), `f256` (random config F) or `tiny`."""
    import torch

    from facegen_cli.models.stylegan2 import Generator
    from facegen_cli.networks import load_checkpoint

    if name == "default":
        G = load_checkpoint(ROOT / "weights" / "default.safetensors").G_ema
        return G, 8, list(range(8)), "shipped default model (64 px, 1.4 M)"
    torch.manual_seed(0)
    res, base = (32, 1024) if name == "tiny" else (256, 32768)
    G = Generator(z_dim=512, w_dim=512, img_resolution=res, mapping_layers=8, channel_base=base,
                  channel_max=512).eval().requires_grad_(False)
    with torch.no_grad():
        for layer in G.synthesis.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.1)  # random init has none; a trained network has some
    return G, 1, [0, 1], f"random config F, {res} px, channel base {base}"


def build(params: dict) -> harness.Work:
    """The network, its images in fp32 and (a bf16 choice) under autocast with `parts` kept fp32; a round draws."""
    import numpy as np
    import torch

    from facegen_cli import precision
    from facegen_cli.images import to_uint8
    from facegen_cli.sampler import seed_to_z

    G, batch, seeds, label = load_generator(params["net"])
    chunks = torch.from_numpy(np.stack([seed_to_z(s, G.z_dim) for s in seeds])).split(batch)
    bf16 = params["parts"] is not None
    if bf16:
        precision.FP32_PARTS = frozenset(params["parts"])

    def draw(in_bf16: bool) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=in_bf16):
            return torch.cat([G(c, noise_mode="const").float() for c in chunks])

    ref, img = draw(False), draw(bf16)
    diff = (img - ref).abs()
    off = np.abs(to_uint8(img).astype(np.int16) - to_uint8(ref).astype(np.int16)) > 1
    info = {"net": label, "images": len(seeds), "batch": batch, "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": float(diff.max()), "pixels_off_by_more_than_1": float(off.mean())}

    def one_round() -> None:
        draw(bf16)

    return harness.Work(one_round, info=info, units={"images": len(seeds)})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nets", nargs="+", default=["default", "f256"], choices=["default", "f256"])


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    return [harness.Case(f"{net} {choice}", dict(net=net, parts=sorted(parts) if parts is not None else None),
                         group=net, rounds=3) for net in (["tiny"] if args.quick else args.nets)
            for choice, parts in (CHOICES[:2] if args.quick else CHOICES)]


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options))
