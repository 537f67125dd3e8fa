"""Precision and recall of real CelebA faces against other real faces: what a perfect model scores.

Two disjoint sets of `--images` CelebA faces (the 64x64 face box the tests crop, saved as PNG) are
compared the way `facegen fid A B --pr` compares them (clean-mode Inception pool features, B the real
side), for several k and for the first half of each set; then the time and peak memory of
`precision_recall` alone on random features of `--synthetic` x 2048 per side.

    python -m benchmarks.precision_recall                 # 1000 vs 1000, k 1 3 5 10, 10k synthetic
    FACEGEN_CACHE=/tmp/cache python -m benchmarks.precision_recall --synthetic 0
    python -m benchmarks.precision_recall --quick         # 20 vs 20, k 3, 200 synthetic

Features go to the usual feature cache, so a second run extracts nothing. One JSON object.
"""
from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks import harness
from facegen_cli.metrics.fid import cached_features, compute_fid, fid_from_features
from facegen_cli.metrics.inception import InceptionFeatures
from facegen_cli.metrics.precision_recall import precision_recall
from facegen_cli.metrics.sources import dataset_stream

CELEBA = harness.DATA / "celeba10k" / "images"
FACE_BOX = (12, 22, 76, 86)  # CelebA's classic 128x128 crop at half resolution, as tests/real_faces.py
LAST = 10_000  # the B (real) set ends at CelebA 010000.jpg; the A set is the `images` before it


def quick_needs() -> str | None:
    return None if CELEBA.is_dir() else f"no CelebA images at {CELEBA}"


def write_faces(dest: Path, first: int, count: int) -> Path:
    """CelebA images first+1 .. first+count (1-based file names) as 64x64 face PNGs in `dest`."""
    dest.mkdir()
    for i in range(first, first + count):
        with Image.open(CELEBA / f"{i + 1:06d}.jpg") as im:
            im.convert("RGB").crop(FACE_BOX).save(dest / f"{i + 1:06d}.png")
    return dest


def synthetic(n: int) -> dict:
    """Seconds and peak traced MiB of precision_recall on two sets of n random 2048-d float32 features."""
    rng = np.random.default_rng(0)
    real = np.abs(rng.normal(size=(n, 2048))).astype(np.float32)
    fake = np.abs(rng.normal(size=(n, 2048)) * 1.1).astype(np.float32)
    tracemalloc.start()
    start = time.perf_counter()
    precision_recall(real, fake)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return {"features_per_side": n, "k": 3, "seconds": round(seconds, 2), "peak_traced_mib": round(peak)}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--synthetic", type=int, default=10_000, help="features per side; 0 skips it")
    args = parser.parse_args()
    if args.quick:
        args.images, args.ks, args.synthetic = 20, [3], 200
    if quick_needs():
        raise SystemExit(quick_needs())
    n = args.images
    with tempfile.TemporaryDirectory() as tmp:
        a = write_faces(Path(tmp) / "a", LAST - 2 * n, n)
        b = write_faces(Path(tmp) / "b", LAST - n, n)
        extractor = InceptionFeatures("clean")
        start = time.perf_counter()
        feats = {side: cached_features(dataset_stream(folder, 32, 0), extractor)[0]
                 for side, folder in (("a", a), ("b", b))}
        extraction = time.perf_counter() - start
        start = time.perf_counter()
        result = compute_fid(a, b, pr_k=3, workers=0, extractor=extractor)  # both sides from the cache now
        seconds = time.perf_counter() - start
    half = n // 2
    by_k = []
    for k in args.ks:
        full = precision_recall(feats["b"], feats["a"], k)
        part = precision_recall(feats["b"][:half], feats["a"][:half], k)
        by_k.append({"k": k, "precision": round(full.precision, 4), "recall": round(full.recall, 4),
                     "precision_halves": round(part.precision, 4), "recall_halves": round(part.recall, 4)})
    record = {"a": f"CelebA {LAST - 2 * n + 1:06d}-{LAST - n:06d}", "b_real": f"CelebA {LAST - n + 1:06d}-{LAST:06d}",
              "images": n, "extraction_s": round(extraction, 1), "compute_fid_from_cache_s": round(seconds, 2),
              "fid": round(result.fid, 2), "precision": round(result.precision, 4), "recall": round(result.recall, 4),
              "by_k": by_k, "fid_halves": round(fid_from_features(feats["a"][:half], feats["b"][:half]), 2)}
    if args.synthetic:
        record["synthetic"] = synthetic(args.synthetic)
    harness.write([{**record, "machine": harness.machine(), "load": harness.load_average()}], args.out)


if __name__ == "__main__":
    main()
