"""How well the face estimators read REAL faces their classifiers never trained on.

    python -m benchmarks.estimators [--work DIR] [--utk-count 2000] [--pose-count 300] [--classifiers DIR]
    python -m benchmarks.estimators --quick     # 20 CelebA, 20 UTKFace, 10 for pose, in a temporary folder

The shipped classifiers (weights/classifiers/) were trained by tools/fit_shipped_directions.py on the
first 6,000 CelebA photos and on a seeded sample of UTKFace photos (the tool's --utk-count), each prepared
with `facegen prepare --detector dlib --align ffhq --size 64 --upsample 1`. The held-out faces here are
prepared the same way:
- CelebA 006001-010000 (4,000 photos), labels from celeba10k/labels.csv (-1/1, read as 0/1);
- the 2,000 UTKFace photos listed in benchmarks/heldout/utkface_age.txt (a fixed list, which the tool's
  training sample leaves out; drawn once, seed 1, from the photos with parseable names outside the first
  shipped regressor's 1,500), or a seeded sample (seed 1) of `--utk-count` of them.
`--classifiers` reads another folder holding both classifier files (a candidate measured on the same faces).
One JSON object: age (mean and median absolute error in years, by band with the mean signed error, Pearson r,
and the error of always answering the training mean), AUC and accuracy at 0.5 for each CelebA attribute with
its positive rate, each as the engine reads (a face with its mirror image) and from the face alone (the
`_one_view` keys), how far the face alone and its mirror image alone read apart, whether a reading drifts as
the head turns or tilts (`pose_bias`: mean reading minus mean label per |yaw| and pitch bin), and the rate at
which the pose estimator reads a head pose on `--pose-count` of the 64 px faces.
"""
from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from benchmarks import harness
from benchmarks.controls import kept_limit
from benchmarks.harness import DATA
from facegen_cli.classifier import read_labelled
from facegen_cli.estimators.attributes import AGE, HAIR_COLOURS, AttributeReader, shared_reader
from facegen_cli.estimators.pose import head_poses
from facegen_cli.prepare.pipeline import PrepareOptions
from facegen_cli.prepare.pipeline import prepare as run_prepare
from tools.fit_shipped_directions import HELD_OUT_LISTS, link_folder, utk_names

CELEBA_FIRST, CELEBA_LAST = 6001, 10000  # the CelebA photos after the classifier's 6,000
UTK_HELD_OUT = HELD_OUT_LISTS[0]  # the age benchmark's UTKFace faces, one data-relative path a line


def prepare(raw: Path, out: Path, labels: str, attrs: list[str] | None = None) -> Path:
    """As the tool prepares its training photos (kept when already there)."""
    if not (out / "dataset.json").exists():
        run_prepare(raw, out, PrepareOptions(detector="dlib", align="ffhq", size=64, upsample=1), labels=labels,
                    attrs=attrs, workers=2)
    return out


def quick_needs() -> str | None:
    return None if (DATA / "celeba10k").is_dir() and (DATA / "utkface").is_dir() else f"no CelebA or UTKFace in {DATA}"


def celeba_heldout(work: Path, last: int) -> Path:
    images = DATA / "celeba10k" / "images"
    names = [f"{i:06d}.jpg" for i in range(CELEBA_FIRST, last + 1)]
    header = (DATA / "celeba10k" / "labels.csv").read_text().splitlines()[0].split(",")
    attrs = [n for n in header if n not in ("image_id", "identity")]
    return prepare(link_folder(images, names, work / "celeba_heldout_raw"), work / "celeba_heldout64",
                   str(DATA / "celeba10k" / "labels.csv"), attrs)


def utk_heldout(work: Path, count: int) -> Path:
    """The listed UTKFace photos no age regressor trains on (all, or a seeded sample of `count`)."""
    listed = utk_names([UTK_HELD_OUT])
    chosen = listed if count >= len(listed) else random.Random(1).sample(listed, count)
    folder = link_folder(DATA / "utkface" / "images", chosen, work / "utk_heldout_raw")
    return prepare(folder, work / "utk_heldout64", "utkface")


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive outscores a negative (ties count half)."""
    pos, neg = scores[truth], scores[~truth]
    if not len(pos) or not len(neg):
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def nhwc(images) -> np.ndarray:
    return images.permute(0, 2, 3, 1).contiguous().numpy()


MIRRORED_READINGS = (AGE, "Smiling", "Male", "Young", "Blond_Hair", "Black_Hair")
POSE_BIAS_READINGS = ("Smiling", "Male", "Young", "Mouth_Slightly_Open", "Black_Hair", "Blond_Hair")
YAW_BINS = ((0, 5), (5, 10), (10, 15), (15, 25), (25, 90))  # |yaw|, degrees
PITCH_BINS = ((-90, -8), (-8, -3), (-3, 3), (3, 8), (8, 90))


def mirror_disagreement(reader, faces: np.ndarray, alone: dict[str, np.ndarray]) -> dict:
    """How far each reading of a face, from the face alone (`alone`, the one-view readings of NHWC `faces`), is from
    the same reading of its mirror image: median, 90th percentile and the share beyond the controls' kept limit (5
    years, 0.15 probability)."""
    mirrored = reader.read(np.ascontiguousarray(faces[:, :, ::-1]), mirror=False)
    gaps = {name: np.abs(alone[name] - mirrored[name]) for name in MIRRORED_READINGS}
    return {name: {"median": round(float(np.median(gap)), 3), "p90": round(float(np.percentile(gap, 90)), 3),
                   "limit": kept_limit(name), "share_beyond": round(float((gap > kept_limit(name)).mean()), 3)}
            for name, gap in gaps.items()}


def pose_bias(read: dict[str, np.ndarray], poses: list, truth: dict[str, np.ndarray]) -> dict:
    """Whether a reading drifts as the head turns or tilts: per |yaw| and pitch bin of the faces' `poses`, the mean
    reading minus the mean label (years for age, probability for an attribute: a label's rate), with the faces
    counted; a face whose pose is not read (None) is left out."""
    yaw = np.array([abs(p.yaw) if p is not None else np.nan for p in poses])
    pitch = np.array([p.pitch if p is not None else np.nan for p in poses])

    def binned(angle: np.ndarray, bins) -> dict:
        rows = {}
        for low, high in bins:
            sel = (angle >= low) & (angle < high)
            bias = {name: round(float(read[name][sel].mean() - t[sel].mean()), 3)
                    for name, t in truth.items()} if sel.any() else {}
            rows[f"{low}..{high}"] = {"faces": int(sel.sum()), **bias}
        return rows

    return {"poses_read": int(np.isfinite(yaw).sum()), "abs_yaw": binned(yaw, YAW_BINS),
            "pitch": binned(pitch, PITCH_BINS)}


def age(read: np.ndarray, age_clf, ages: np.ndarray) -> dict:
    """The age reading `read` (years, one per face) against UTKFace's labels."""
    truth = ages[:, 0]
    err = np.abs(read - truth)
    train_mean = float(age_clf.mean[age_clf.index("age")])
    bands = {f"{low}-{high}": {"faces": int(band.sum()), "mae": round(float(err[band].mean()), 2),
                               "mean_signed_error": round(float((read - truth)[band].mean()), 2)}
             for low, high in ((0, 20), (20, 40), (40, 60), (60, 120))
             if (band := (truth >= low) & (truth < high)).any()}
    return {"faces": len(truth), "training_images": age_clf.info.get("train_images"), "mae_years": round(float(err.mean()), 2),
            "median_abs_error_years": round(float(np.median(err)), 2),
            "pearson_r": round(float(np.corrcoef(read, truth)[0, 1]), 3), "training_mean": round(train_mean, 1),
            "mae_of_training_mean": round(float(np.abs(truth - train_mean).mean()), 2), "by_band": bands}


def attributes(probs: dict[str, np.ndarray], labels: np.ndarray, names: list[str]) -> dict:
    """AUC and accuracy of each CelebA attribute's reading in `probs` against its label."""
    rows = {}
    for j, name in enumerate(names):
        truth = labels[:, j] > 0
        p = probs[name]
        rows[name] = {"positive_rate": round(float(truth.mean()), 3), "auc": round(auc(p, truth), 3),
                      "accuracy": round(float(((p > 0.5) == truth).mean()), 3),
                      "majority_rate": round(float(max(truth.mean(), 1 - truth.mean())), 3),
                      "hair_colour": name in HAIR_COLOURS}
    return {"faces": len(labels), "median_auc": round(float(np.nanmedian([r["auc"] for r in rows.values()])), 3),
            "by_attribute": rows}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--work", type=Path, default=harness.ROOT.parent / "scratch" / "estimators")
    parser.add_argument("--utk-count", type=int, default=2000)
    parser.add_argument("--pose-count", type=int, default=300)
    parser.add_argument("--classifiers", type=Path, default=None, help="a folder with both classifier files")
    args = parser.parse_args()
    start, last = time.time(), CELEBA_LAST
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            args.work, args.utk_count, args.pose_count, last = Path(tmp), 20, 10, CELEBA_FIRST + 19
        args.work.mkdir(parents=True, exist_ok=True)
        celeba = celeba_heldout(args.work, last)
        utk = utk_heldout(args.work, args.utk_count)
        reader = AttributeReader(args.classifiers) if args.classifiers else shared_reader()
        utk_images, ages, _ = read_labelled(utk, ["age"], 64)
        images, labels, names = read_labelled(celeba, None, 64)
    utk_faces, celeba_faces = nhwc(utk_images), nhwc(images)
    # each set read once each way: with the mirror image (as the engine reads) and from the face alone
    utk_read = {mirror: reader.read(utk_faces, mirror=mirror) for mirror in (True, False)}
    celeba_read = {mirror: reader.read(celeba_faces, mirror=mirror) for mirror in (True, False)}
    age_clf = reader.classifiers()[1]
    record = {}
    for suffix, mirror in (("", True), ("_one_view", False)):
        record[f"utkface_age{suffix}"] = age(utk_read[mirror][AGE], age_clf, ages)
        record[f"celeba{suffix}"] = {**attributes(celeba_read[mirror], labels, names),
                                     "photos": f"{CELEBA_FIRST:06d}-{last:06d}"}
    record["mirror_disagreement_one_view"] = {"utkface": mirror_disagreement(reader, utk_faces, utk_read[False]),
                                              "celeba": mirror_disagreement(reader, celeba_faces, celeba_read[False])}
    utk_poses, celeba_poses = head_poses(utk_faces, aligned=True), head_poses(celeba_faces, aligned=True)
    held = {name: (labels[:, names.index(name)] > 0).astype(np.float64) for name in POSE_BIAS_READINGS}
    record["pose_bias"] = {"utkface": pose_bias(utk_read[True], utk_poses, {AGE: ages[:, 0].astype(np.float64)}),
                           "celeba": pose_bias(celeba_read[True], celeba_poses, held)}
    found = [p for p in celeba_poses[:args.pose_count] if p is not None]
    record["pose"] = {"faces": len(celeba_poses[:args.pose_count]), "read": len(found),
                      "median_abs_yaw": round(float(np.median(np.abs([p.yaw for p in found]))), 1) if found else None,
                      "median_pitch": round(float(np.median([p.pitch for p in found])), 1) if found else None}
    print(f"{time.time() - start:.0f} s in all", file=sys.stderr)
    harness.write([{**record, "machine": harness.machine(), "load": harness.load_average()}], args.out)


if __name__ == "__main__":
    main()
