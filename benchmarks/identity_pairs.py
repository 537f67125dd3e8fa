"""How well the identity distance (facegen_cli.metrics.identity) tells people apart on real photo pairs.

Reads ../shared/data/wild/deepface/master.csv (file_x, file_y, Decision Yes/No: the same person or not)
and measures every pair twice: on the photos as they are (full resolution, face found by dlib's
detector) and at 64 px (each photo's face aligned the FFHQ way at 64x64 by `align_photo`, then
measured as a generated face would be). For each it prints accuracy at the 0.6 threshold, the best
threshold and its accuracy, the same-person and different-person distance distributions, and the
pairs skipped (no face) with the reason; then the mean distance of each 64 px face to its mirror image.

    .venv/bin/python -m benchmarks.identity_pairs [--pairs PATH]
"""
from __future__ import annotations

import argparse
import csv
import datetime
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.machine import cpu_name

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIRS = DATA / "wild" / "deepface" / "master.csv"


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """(file_x, file_y, same person) for each row of master.csv."""
    with open(path, newline="") as f:
        return [(row["file_x"].strip(), row["file_y"].strip(), row["Decision"].strip() == "Yes")
                for row in csv.DictReader(f)]


def descriptors(files: list[str], image_of: Callable[[Path], np.ndarray]) -> tuple[dict, dict, float]:
    """Descriptor of each file (or why it has none) and the seconds per descriptor."""
    from facegen_cli.errors import FacegenError
    from facegen_cli.metrics.identity import shared_model

    model, found, failed = shared_model(), {}, {}
    start = time.perf_counter()
    for name in files:
        try:
            found[name] = model.descriptor(image_of(PAIRS.parent / name), name)
        except FacegenError as e:
            failed[name] = str(e)
    return found, failed, (time.perf_counter() - start) / max(1, len(files))


def best_threshold(dist: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold (midway between two measured distances) that classifies most pairs right, and that share."""
    values = np.sort(dist)
    cuts = np.concatenate([[values[0] - 1e-3], (values[1:] + values[:-1]) / 2, [values[-1] + 1e-3]])
    accuracy = [((dist < t) == same).mean() for t in cuts]
    i = int(np.argmax(accuracy))
    return float(cuts[i]), float(accuracy[i])


def spread(values: np.ndarray) -> str:
    """min / median / mean / max of some distances."""
    if not len(values):
        return "-"
    return f"{values.min():.3f} / {np.median(values):.3f} / {values.mean():.3f} / {values.max():.3f}"


def report(title: str, pairs: list[tuple[str, str, bool]], found: dict, failed: dict, seconds: float) -> None:
    """One Markdown row block for one way of measuring: accuracy, distributions, skipped pairs."""
    from facegen_cli.metrics.identity import SAME_PERSON_THRESHOLD

    kept = [(a, b, s) for a, b, s in pairs if a in found and b in found]
    dist = np.array([np.linalg.norm(found[a] - found[b]) for a, b, _ in kept])
    same = np.array([s for _, _, s in kept])
    threshold, best = best_threshold(dist, same)
    at = ((dist < SAME_PERSON_THRESHOLD) == same).mean()
    wrong = [(a, b, d) for (a, b, s), d in zip(kept, dist) if (d < SAME_PERSON_THRESHOLD) != s]
    print(f"### {title}\n")
    print(f"- pairs measured: {len(kept)} of {len(pairs)} ({same.sum()} same person, {(~same).sum()} different); "
          f"{len(found)} photos, {seconds:.2f} s per descriptor")
    named = ", ".join(f"{a}/{b} {d:.3f}" for a, b, d in wrong[:12]) + (" ..." if len(wrong) > 12 else "")
    print(f"- accuracy at {SAME_PERSON_THRESHOLD}: **{at:.1%}** ({len(wrong)} wrong{': ' + named if wrong else ''})")
    print(f"- best threshold {threshold:.3f}: {best:.1%}")
    print(f"- same person (min / median / mean / max): {spread(dist[same])}")
    print(f"- different people: {spread(dist[~same])}")
    skipped = [(a, b) for a, b, _ in pairs if a not in found or b not in found]
    print(f"- pairs skipped: {len(skipped)}" + "".join(f"; {failed[n]} ({sum(n in p for p in skipped)} pairs)"
                                                        for n in sorted(failed)))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    args = parser.parse_args()

    from facegen_cli.latent.project import align_photo
    from facegen_cli.prepare.detect import load_photo

    pairs = read_pairs(args.pairs)
    files = sorted({name for a, b, _ in pairs for name in (a, b)})
    print(f"{cpu_name()}, {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
          f"{datetime.date.today()}\n")
    full = descriptors(files, load_photo)
    report("Photos as they are (full resolution)", pairs, *full)

    aligned: dict[str, np.ndarray] = {}

    def aligned_64(path: Path) -> np.ndarray:
        aligned[path.name] = align_photo(path, 64, "ffhq")
        return aligned[path.name]

    small = descriptors(files, aligned_64)
    report("Faces aligned the FFHQ way at 64 px", pairs, *small)

    from facegen_cli.metrics.identity import shared_model

    mirror = np.array([shared_model().distance(face, np.ascontiguousarray(face[:, ::-1]))
                       for face in aligned.values()])
    print(f"### A 64 px face and its mirror image\n\n- {len(mirror)} faces: {spread(mirror)} (min / median / mean / max)")


if __name__ == "__main__":
    main()
