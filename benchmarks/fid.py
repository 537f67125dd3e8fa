"""Images/s of `facegen fid` feature extraction (clean mode, CPU) on real CelebA faces.

Each (batch, workers) case is its own process on the same linked subset: it loads the Inception
network and extracts once to warm up; a round extracts `extract_features` over the subset. A last
case times a whole `compute_fid` whose two sides are already in the feature cache.

    python -m benchmarks.fid                       # 64 images, batch 8 / 32, workers 0 / 2
    python -m benchmarks.fid --images 128 --cases 32:2
    python -m benchmarks.fid --images 128 --cases 32:0 32:0:torchscript   # folded forward against the file's
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import DATA

CELEBA = DATA / "celeba10k" / "images"


def build(params: dict) -> harness.Work:
    """Inception warmed up; a round extracts the folder's features (or, `cached`, computes a cached FID)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    from facegen_cli.metrics.fid import compute_fid, extract_features
    from facegen_cli.metrics.inception import InceptionFeatures
    from facegen_cli.metrics.sources import dataset_stream

    folder, batch = params["folder"], params["batch"]
    extractor = InceptionFeatures("clean", folded=params.get("forward") != "torchscript")
    if batch == "cached":
        compute_fid(folder, folder, extractor=extractor)
        return harness.Work(lambda: {"fid": compute_fid(folder, folder, extractor=extractor).fid})
    extractor(torch.rand(batch, 3, 299, 299) * 255)  # warm-up: TorchScript specialises on the first calls
    probe = extractor(torch.rand(4, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 255)
    return harness.Work(lambda: {"images": len(extract_features(dataset_stream(folder, batch, params["workers"]),
                                                                extractor, batch))},
                        units={"images": params["images"]}, output=torch.from_numpy(probe))


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--cases", nargs="+", default=["8:0", "32:0", "32:2"], help="BATCH:WORKERS[:torchscript] (the file's own forward instead of the folded one)")


def quick_needs() -> str | None:
    return None if CELEBA.is_dir() else f"no CelebA images at {CELEBA}"


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    if not CELEBA.is_dir():
        raise SystemExit(f"benchmark data not found: {CELEBA}")
    images, chosen = (4, ["4:0"]) if args.quick else (args.images, args.cases)
    subset = folder / "celeba"
    subset.mkdir()
    for f in sorted(CELEBA.glob("*.jpg"))[:images]:
        (subset / f.name).symlink_to(f)
    env = {"FACEGEN_CACHE": str(folder / "cache")}
    found = []
    for case in chosen:
        b, w, *forward = case.split(":")
        forward = forward[0] if forward else "folded"
        found.append(harness.Case(f"batch {b} workers {w} {forward}", dict(folder=str(subset), batch=int(b),
                                  workers=int(w), images=images, forward=forward),
                                  group=f"batch {b} workers {w}", rounds=1, env=env))
    return found + [harness.Case("cached", dict(folder=str(subset), batch="cached"), group="cached", rounds=3, env=env)]


if __name__ == "__main__":
    harness.main(harness.Benchmark(build, cases, options, warmup=0))
