"""Precision and recall of real CelebA faces against other real faces: what a perfect model scores.

Two disjoint sets of `--images` CelebA faces (the 64x64 face box the tests crop, saved as PNG) are
compared the way `facegen fid A B --pr` compares them (clean-mode Inception pool features, B the real
side), for several k and for the first half of each set; then the time and peak memory of
`precision_recall` alone on random features of `--synthetic` x 2048 per side.

    python -m benchmarks.precision_recall                     # 1000 vs 1000, k 1 3 5 10, 10k synthetic
    FACEGEN_CACHE=/tmp/cache python -m benchmarks.precision_recall --synthetic 0

Features go to the usual feature cache, so a second run extracts nothing. Markdown on stdout.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.machine import cpu_name, memory_gib

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba10k" / "images"
FACE_BOX = (12, 22, 76, 86)  # CelebA's classic 128x128 crop at half resolution, as tests/real_faces.py
LAST = 10_000  # the B (real) set ends at CelebA 010000.jpg; the A set is the `images` before it


def write_faces(dest: Path, first: int, count: int) -> Path:
    """CelebA images first+1 .. first+count (1-based file names) as 64x64 face PNGs in `dest`."""
    dest.mkdir()
    for i in range(first, first + count):
        with Image.open(DATA / f"{i + 1:06d}.jpg") as im:
            im.convert("RGB").crop(FACE_BOX).save(dest / f"{i + 1:06d}.png")
    return dest


def synthetic(n: int) -> tuple[float, float]:
    """Seconds and peak traced MiB of precision_recall on two sets of n random 2048-d float32 features."""
    from facegen_cli.metrics.precision_recall import precision_recall

    rng = np.random.default_rng(0)
    real = np.abs(rng.normal(size=(n, 2048))).astype(np.float32)
    fake = np.abs(rng.normal(size=(n, 2048)) * 1.1).astype(np.float32)
    tracemalloc.start()
    start = time.perf_counter()
    precision_recall(real, fake)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--synthetic", type=int, default=10_000, help="features per side; 0 skips it")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found: {DATA}")
    from facegen_cli.metrics.fid import cached_features, compute_fid, fid_from_features
    from facegen_cli.metrics.inception import InceptionFeatures
    from facegen_cli.metrics.precision_recall import precision_recall
    from facegen_cli.metrics.sources import dataset_stream

    n = args.images
    with tempfile.TemporaryDirectory() as tmp:
        a = write_faces(Path(tmp) / "a", LAST - 2 * n, n)
        b = write_faces(Path(tmp) / "b", LAST - n, n)
        extractor = InceptionFeatures("clean")
        start = time.perf_counter()
        feats = {}
        for side, folder in (("a", a), ("b", b)):
            print(f"features of {side} ({n} images)", file=sys.stderr, flush=True)
            feats[side] = cached_features(dataset_stream(folder, 32, 0), extractor)[0]
        extraction = time.perf_counter() - start
        start = time.perf_counter()
        result = compute_fid(a, b, pr_k=3, workers=0, extractor=extractor)  # both sides from the cache now
        seconds = time.perf_counter() - start
    print(f"Machine: {cpu_name()}, {os.cpu_count()} cores, {memory_gib():.0f} GiB, one thread; "
          f"A = CelebA {LAST - 2 * n + 1:06d}-{LAST - n:06d}, B (real) = {LAST - n + 1:06d}-{LAST:06d}, "
          f"64x64 face crops, clean-mode Inception pool features\n")
    print(f"Feature extraction: {extraction:.0f} s; then `compute_fid(A, B, pr_k=3)` from the cache: {seconds:.1f} s, "
          f"FID {result.fid:.2f}, precision {result.precision:.4f}, recall {result.recall:.4f}\n")
    half = n // 2
    print(f"| k | precision ({n} vs {n}) | recall ({n} vs {n}) | precision ({half} vs {half}) | recall ({half} vs {half}) |")
    print("|---:|---:|---:|---:|---:|")
    for k in args.ks:
        full = precision_recall(feats["b"], feats["a"], k)
        part = precision_recall(feats["b"][:half], feats["a"][:half], k)
        print(f"| {k} | {full.precision:.4f} | {full.recall:.4f} | {part.precision:.4f} | {part.recall:.4f} |")
    print(f"\nFID of the halves ({half} vs {half}): {fid_from_features(feats['a'][:half], feats['b'][:half]):.2f}")
    if args.synthetic:
        seconds, peak = synthetic(args.synthetic)
        print(f"\n`precision_recall` on {args.synthetic} x 2048 random features per side (k 3, float32 in): "
              f"{seconds:.1f} s, peak traced memory {peak:.0f} MiB")


if __name__ == "__main__":
    main()
