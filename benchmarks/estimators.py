"""How well the face estimators read REAL faces their classifiers never trained on.

    python benchmarks/estimators.py [--work DIR] [--utk-count 2000] [--pose-count 300]

The shipped classifiers (weights/classifiers/) were trained by tools/fit_shipped_directions.py on the
first 6,000 CelebA photos and on a seeded sample of 1,500 UTKFace photos, each prepared with
`facegen prepare --detector dlib --align ffhq --size 64 --upsample 1`. The held-out faces here are
prepared the same way:
- CelebA 006001-010000 (4,000 photos), labels from celeba10k/labels.csv (-1/1, read as 0/1);
- `--utk-count` UTKFace photos with parseable names drawn (seed 1) from those outside the training
  sample, which is rebuilt with the tool's own `utk_subset` (the same seed, count and order).
Prints Markdown: age (mean and median absolute error in years, Pearson r, and the error of always
answering the training mean), AUC and accuracy at 0.5 for each CelebA attribute with its positive rate,
and the rate at which the pose estimator reads a head pose on `--pose-count` of the 64 px faces.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "tools"))
from machine import cpu_name  # noqa: E402

from fit_shipped_directions import facegen, link_folder, utk_subset  # noqa: E402

from facegen_cli.estimators.attributes import AGE, HAIR_COLOURS, shared_reader  # noqa: E402
from facegen_cli.latent.classifier import read_labelled  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CELEBA_FIRST, CELEBA_LAST = 6001, 10000  # the CelebA photos after the classifier's 6,000
UTK_TRAIN_COUNT = 1500  # the tool's --utk-count


def prepare(raw: Path, out: Path, labels: str, attrs: list[str] | None = None) -> Path:
    """As the tool prepares its training photos (kept when already there)."""
    if not (out / "dataset.json").exists():
        facegen("prepare", str(raw), str(out), "--detector", "dlib", "--align", "ffhq", "--size", "64",
                "--upsample", "1", "--labels", labels, *(["--attrs", ",".join(attrs)] if attrs else []), "-j", "2")
    return out


def celeba_heldout(work: Path) -> Path:
    images = DATA / "celeba10k" / "images"
    names = [f"{i:06d}.jpg" for i in range(CELEBA_FIRST, CELEBA_LAST + 1)]
    header = (DATA / "celeba10k" / "labels.csv").read_text().splitlines()[0].split(",")
    attrs = [n for n in header if n not in ("image_id", "identity")]
    return prepare(link_folder(images, names, work / "celeba_heldout_raw"), work / "celeba_heldout64",
                   str(DATA / "celeba10k" / "labels.csv"), attrs)


def utk_heldout(work: Path, count: int) -> tuple[Path, int]:
    """UTKFace photos outside the classifier's training sample (rebuilt by the tool's own function)."""
    trained = {p.name for p in utk_subset(DATA, work / "utk_train_raw", UTK_TRAIN_COUNT).iterdir()}
    images = DATA / "utkface" / "images"
    unseen = sorted(p.name for p in images.iterdir() if p.name.count("_") == 3 and p.name not in trained)
    chosen = random.Random(1).sample(unseen, count)
    folder = link_folder(images, chosen, work / "utk_heldout_raw")
    return prepare(folder, work / "utk_heldout64", "utkface"), len(trained)


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative (ties count half)."""
    pos, neg = scores[truth], scores[~truth]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def nhwc(images) -> np.ndarray:
    return images.permute(0, 2, 3, 1).contiguous().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=REPO.parent / "scratch" / "estimators")
    parser.add_argument("--utk-count", type=int, default=2000)
    parser.add_argument("--pose-count", type=int, default=300)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    celeba = celeba_heldout(args.work)
    utk, trained = utk_heldout(args.work, args.utk_count)
    reader = shared_reader()
    celeba_clf, age_clf = reader.classifiers()

    images, ages, _ = read_labelled(utk, ["age"], 64)
    read = reader.read(nhwc(images))[AGE]
    truth = ages[:, 0]
    err = np.abs(read - truth)
    train_mean = float(age_clf.mean[age_clf.index("age")])
    print(f"# Face estimators on held-out faces ({cpu_name()}, {time.strftime('%Y-%m-%d')})\n")
    print(f"UTKFace: {len(truth)} faces prepared of {args.utk_count} held-out photos (training sample "
          f"{trained} photos rebuilt); CelebA: {CELEBA_FIRST:06d}-{CELEBA_LAST:06d}\n")
    print("| age | value |\n|---|---:|")
    print(f"| mean abs error, years | {err.mean():.2f} |\n| median abs error, years | {np.median(err):.2f} |")
    print(f"| Pearson r | {np.corrcoef(read, truth)[0, 1]:.3f} |")
    print(f"| mean abs error of answering the training mean ({train_mean:.1f}) | "
          f"{np.abs(truth - train_mean).mean():.2f} |")
    for low, high in ((0, 20), (20, 40), (40, 60), (60, 120)):
        band = (truth >= low) & (truth < high)
        print(f"| MAE for true age {low}-{high} ({band.sum()} faces) | {err[band].mean():.2f} |")

    images, labels, names = read_labelled(celeba, None, 64)
    probs = reader.read(nhwc(images))
    print(f"\nCelebA: {len(labels)} held-out faces\n")
    print("| attribute | positive rate | AUC | accuracy at 0.5 | majority rate |\n|---|---:|---:|---:|---:|")
    aucs = {}
    for j, name in enumerate(names):
        truth = labels[:, j] > 0
        p = probs[name]
        aucs[name] = auc(p, truth)
        mark = " (hair colour)" if name in HAIR_COLOURS else ""
        print(f"| {name}{mark} | {truth.mean():.3f} | {aucs[name]:.3f} | {((p > 0.5) == truth).mean():.3f} | "
              f"{max(truth.mean(), 1 - truth.mean()):.3f} |")
    print(f"\nmedian AUC over 40 attributes: {np.median(list(aucs.values())):.3f}")

    try:
        from facegen_cli.estimators.pose import head_poses
    except ImportError:
        print("\npose: no pose estimator in this checkout")
    else:
        faces = nhwc(images[:args.pose_count])
        poses = head_poses(faces, aligned=True)
        found = [p for p in poses if p is not None]
        yaw = np.array([p.yaw for p in found])
        pitch = np.array([p.pitch for p in found])
        print(f"\npose on {len(faces)} held-out CelebA 64 px faces: read on {len(found)} "
              f"({len(found) / len(faces):.1%}); |yaw| median {np.median(np.abs(yaw)):.1f} deg, "
              f"pitch median {np.median(pitch):.1f} deg")
    print(f"\n{time.time() - start:.0f} s in all", file=sys.stderr)


if __name__ == "__main__":
    main()
