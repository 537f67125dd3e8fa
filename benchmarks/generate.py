"""Images/s of StyleGAN2 generators on this machine: fused vs non-fused modulated conv, fp32 vs bf16.

Each (resolution, batch, precision, modconv path) is a case in its own process that builds the
generator (seed 0) and draws one batch (seed 1) per round, `torch.inference_mode()`, noise_mode
const. The cases of one (resolution, batch) alternate round by round, so their ratios survive the
machine's load; `max_abs_diff` compares each case's image with the group's first. The paths:
fused modulated conv forced on, forced off, or the generator's default rule (`prefer_fused_modconv`).

    python -m benchmarks.generate                      # config F: 64 and 256 px, batch 1 and 8
    python -m benchmarks.generate --resolutions 1024 --batches 1 --rounds 2
    # fp32 and bf16 side by side on config F at 256 px and on the 64 px small net:
    python -m benchmarks.generate --config f --resolutions 256 --batches 1 --paths default --precision fp32 bf16
    python -m benchmarks.generate --config small --resolutions 64 --batches 8 --paths default --precision fp32 bf16
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import harness

# Timed rounds per resolution; 1024 px is slow on two cores.
DEFAULT_ROUNDS = {64: 7, 256: 4, 1024: 2}
# The timed paths: fused_modconv forced on, forced off, or left to the generator's default rule.
PATHS = {"fused": True, "non_fused": False, "default": None}
# Networks by --config: NVIDIA's config F, and the 64 px "small" net (4096/256 channels, 2 mapping layers).
CONFIGS = {"f": dict(z_dim=512, w_dim=512, mapping_layers=8, channel_base=32768, channel_max=512),
           "small": dict(z_dim=256, w_dim=256, mapping_layers=2, channel_base=4096, channel_max=256)}


def config_f_kwargs(resolution: int, config: str = "f") -> dict:
    """Generator kwargs of `config` (default NVIDIA's config F) at `resolution`."""
    return dict(c_dim=0, img_resolution=resolution, img_channels=3, **CONFIGS[config])


def build(params: dict) -> harness.Work:
    """The case's generator and latents; a round draws one batch."""
    import torch

    from facegen_cli.models.stylegan2 import Generator
    from facegen_cli.precision import resolve_precision, synthesis_in_precision

    torch.manual_seed(0)
    G = Generator(**config_f_kwargs(params["resolution"], params["config"])).eval().requires_grad_(False)
    z = torch.randn([params["batch"], G.z_dim], generator=torch.Generator().manual_seed(1))
    prec = resolve_precision(params["precision"], "cpu")

    def draw() -> torch.Tensor:
        with torch.inference_mode():
            return synthesis_in_precision(G, G.mapping(z, None), prec, noise_mode="const",
                                          fused_modconv=PATHS[params["path"]])

    def one_round() -> None:
        draw()

    return harness.Work(one_round, output=draw(), units={"images": params["batch"]},
                        info={"params_G": sum(p.numel() for p in G.parameters()), "precision": prec.name})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", choices=list(CONFIGS), default="f", help="f (config F) or small (4096/256, map 2)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "auto"])
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=list(PATHS), help="modconv paths to time")


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    config, resolutions, batches = ("small", [32], [1]) if args.quick else (args.config, args.resolutions, args.batches)
    return [harness.Case(f"{res}px b{batch} {precision} {path}", dict(resolution=res, batch=batch, config=config,
                                                                     precision=precision, path=path),
                         group=f"{res}px b{batch}", rounds=DEFAULT_ROUNDS.get(res, 3))
            for res in resolutions for batch in batches for precision in args.precision for path in args.paths]


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options))
