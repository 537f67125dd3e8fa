"""Images/s of `facegen fid` feature extraction (clean mode, CPU) on real CelebA faces.

Each (batch, workers) case runs in a fresh process on the same copied subset: it loads the
Inception network, extracts once to warm up, then times `extract_features` over the subset.
A last line times a whole `compute_fid` whose two sides are already in the feature cache.

    python benchmarks/fid.py                       # 64 images, batch 8 / 32, workers 0 / 2
    python benchmarks/fid.py --images 128 --cases 32:2

The output is a Markdown table (stdout) ready for benchmarks/RESULTS.md; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_name, memory_gib

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba10k" / "images"


def run_case(folder: str, batch: int, workers: int) -> dict:
    """Seconds to extract features of every image in `folder` (after one warm-up forward pass)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    from facegen_cli.metrics.fid import extract_features
    from facegen_cli.metrics.inception import InceptionFeatures
    from facegen_cli.metrics.sources import dataset_stream

    extractor = InceptionFeatures("clean")
    extractor(torch.rand(batch, 3, 299, 299) * 255)  # warm-up: TorchScript specialises on the first calls
    stream = dataset_stream(folder, batch, workers)
    start = time.perf_counter()
    feats = extract_features(stream, extractor, batch)
    seconds = time.perf_counter() - start
    return {"images": len(feats), "seconds": seconds, "load": os.getloadavg()[0]}


def run_cached(folder: str) -> dict:
    """Seconds for compute_fid(folder, folder) once both sides are cached (import and model load excluded)."""
    from facegen_cli.metrics.fid import compute_fid
    from facegen_cli.metrics.inception import InceptionFeatures

    extractor = InceptionFeatures("clean")
    compute_fid(folder, folder, extractor=extractor)
    start = time.perf_counter()
    result = compute_fid(folder, folder, extractor=extractor)
    return {"seconds": time.perf_counter() - start, "fid": result.fid, "cached": len(result.cached)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--cases", nargs="+", default=["8:0", "32:0", "32:2"], help="BATCH:WORKERS")
    parser.add_argument("--case", nargs=3, help=argparse.SUPPRESS)  # internal: one case in this process
    args = parser.parse_args()
    if args.case:
        folder, batch, workers = args.case
        result = run_cached(folder) if batch == "cached" else run_case(folder, int(batch), int(workers))
        print(json.dumps(result))
        return
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found: {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "celeba"
        folder.mkdir()
        for f in sorted(DATA.glob("*.jpg"))[: args.images]:
            shutil.copy(f, folder / f.name)
        env = {**os.environ, "FACEGEN_CACHE": str(Path(tmp) / "cache")}
        print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB; {args.images} CelebA "
              f"images 89x109, clean mode, fp32, channels_last\n")
        print("| batch | workers | images | seconds | images/s | load avg |\n|---:|---:|---:|---:|---:|---:|")
        cases = [c.split(":") for c in args.cases] + [["cached", "0"]]
        for batch, workers in cases:
            print(f"case batch={batch} workers={workers}", file=sys.stderr, flush=True)
            out = subprocess.run([sys.executable, __file__, "--case", str(folder), batch, workers], env=env,
                                 capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            r = json.loads(out)
            if batch == "cached":
                print(f"\ncompute_fid with both sides cached: {r['seconds']:.2f} s (FID {r['fid']:.6f})")
            else:
                print(f"| {batch} | {workers} | {r['images']} | {r['seconds']:.1f} | {r['images'] / r['seconds']:.2f} "
                      f"| {r['load']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
