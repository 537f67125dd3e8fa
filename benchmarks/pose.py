"""How well `facegen_cli.estimators.pose` reads head pose.

    python -m benchmarks.pose [--first 9001] [--count 200] [--wild] [--quick]

Prints one JSON object (--quick: 5 photos, the synthetic grid alone at 20 degree steps):
- synthetic: the generic face's landmarks projected with every yaw, pitch and roll in -40..40 degrees
  (10 degree steps), on and off the camera's axis, solved back (`pose_from_landmarks`): the largest and
  median error; then the same with Gaussian noise of 0.5 px on each landmark of a 64 px image;
- mirror: CelebA images `--first`.. (`--count` of them) and each mirrored left to right: median
  |yaw + yaw mirrored|, |roll + roll mirrored| and |pitch - pitch mirrored| over faces read in both;
- aligned: the same photos aligned the FFHQ way at 64 px (`latent.project.align_photo(path, 64,
  'ffhq')`, as generated faces are): the fraction whose pose the detector reads, and with the
  alignment's box as fallback (`aligned=True`); the median |difference| between each angle read on the
  photo and on its 64 px crop. `--wild` adds the same on the wild photos (larger faces).
"""
from __future__ import annotations

import itertools
import math
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import harness
from benchmarks.harness import DATA
from facegen_cli.estimators import pose
from facegen_cli.latent.project import align_photo
from facegen_cli.prepare.detect import Skip, read_photo

ANGLES = (yaw, pitch, roll) = ("yaw", "pitch", "roll")


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(roll) @ Ry(-yaw) @ Rx(-pitch), the composition the estimator's docstring defines."""
    y, p, r = (math.radians(v) for v in (-yaw, -pitch, roll))
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    return rz @ ry @ rx


def synthetic(noise_px: float, size: int = 64, seed: int = 0, step: int = 10) -> dict:
    """Largest and median angle error over the grid of poses, on and off the camera's axis."""
    rng = np.random.default_rng(seed)
    model = np.array([pose.FACE_MODEL[i] for i in pose.LANDMARKS])
    errors = []
    for angles in itertools.product(range(-40, 41, step), repeat=3):
        for offset in ((0.0, 0.0), (60.0, -40.0)):
            t = np.array([*offset, 450.0])
            # the angles are measured from the line of sight: turn the face with it
            rvec = cv2.Rodrigues(pose._towards(t) @ rotation(*angles))[0]
            points, _ = cv2.projectPoints(model, rvec, t, pose.camera(size, size), None)
            landmarks = np.zeros((68, 2))
            landmarks[pose.LANDMARKS] = points[:, 0] + rng.normal(0, noise_px, points[:, 0].shape)
            got = pose.pose_from_landmarks(landmarks, size, size)
            errors.append(np.abs(np.array([got.yaw, got.pitch, got.roll]) - angles))
    errors = np.array(errors)
    return {"poses": len(errors), "noise_px": noise_px,
            **{f"{a}_max": round(float(errors[:, i].max()), 3) for i, a in enumerate(ANGLES)},
            **{f"{a}_median": round(float(np.median(errors[:, i])), 3) for i, a in enumerate(ANGLES)}}


def _angles(p: pose.Pose | None) -> np.ndarray | None:
    return None if p is None else np.array([p.yaw, p.pitch, p.roll])


def mirror(paths: list[Path]) -> dict:
    """Yaw and roll should change sign on the mirrored image, pitch stay."""
    rows = []
    for path in paths:
        rgb = read_photo(path).rgb
        a, b = (_angles(p) for p in pose.head_poses([rgb, np.ascontiguousarray(rgb[:, ::-1])]))
        if a is not None and b is not None:
            rows.append([abs(a[0] + b[0]), abs(a[1] - b[1]), abs(a[2] + b[2]), abs(a[0])])
    rows = np.array(rows)
    return {"photos": len(paths), "read_both": len(rows),
            "median_abs_yaw_plus_mirrored": round(float(np.median(rows[:, 0])), 2),
            "p90_abs_yaw_plus_mirrored": round(float(np.percentile(rows[:, 0], 90)), 2),
            "median_abs_pitch_minus_mirrored": round(float(np.median(rows[:, 1])), 2),
            "median_abs_roll_plus_mirrored": round(float(np.median(rows[:, 2])), 2),
            "median_abs_yaw": round(float(np.median(rows[:, 3])), 2)}


def aligned(paths: list[Path]) -> dict:
    """Read rate on 64 px FFHQ crops, with and without the alignment's box; agreement with the photo."""
    read = fallback = aligned_ok = 0
    diffs, poses = [], []
    for path in paths:
        try:
            crop = align_photo(path, 64, "ffhq")
        except Exception:  # noqa: BLE001 - no face on the photo: nothing to align
            continue
        aligned_ok += 1
        landmarks = pose.face_landmarks(crop)
        read += landmarks is not None
        small = _angles(pose.head_poses([crop], aligned=True)[0])
        if small is None:
            continue
        fallback += 1
        full = _angles(pose.head_poses([read_photo(path).rgb])[0])
        if full is not None:
            diffs.append(np.abs(full - small))
            poses.append(full)
    diffs, poses = np.array(diffs), np.array(poses)
    return {"photos": len(paths), "aligned": aligned_ok, "read_by_detector": round(read / aligned_ok, 3),
            "read_with_fallback": round(fallback / aligned_ok, 3), "compared": len(diffs),
            **{f"median_abs_diff_{a}": round(float(np.median(diffs[:, i])), 2) for i, a in enumerate(ANGLES)},
            **{f"p90_abs_diff_{a}": round(float(np.percentile(diffs[:, i], 90)), 2) for i, a in enumerate(ANGLES)},
            **{f"median_{a}_full": round(float(np.median(poses[:, i])), 2) for i, a in enumerate(ANGLES)}}


def wild_photos() -> list[Path]:
    photos = []
    for path in sorted((DATA / "wild").rglob("*")):
        try:
            read_photo(path)
        except (Skip, OSError):
            continue
        photos.append(path)
    return photos


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--first", type=int, default=9001)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--wild", action="store_true")
    args = parser.parse_args()
    count, step = (5, 20) if args.quick else (args.count, 10)
    celeba = [DATA / "celeba10k" / "images" / f"{i:06d}.jpg" for i in range(args.first, args.first + count)]
    start = time.perf_counter()
    result = {"synthetic": synthetic(0.0, step=step), "synthetic_noisy": synthetic(0.5, step=step),
              "mirror_celeba": mirror(celeba), "aligned_celeba": aligned(celeba)}
    if args.wild:
        result["aligned_wild"] = aligned(wild_photos())
    result.update(seconds=round(time.perf_counter() - start, 1), machine=harness.machine(), load=harness.load_average())
    harness.write([result], args.out)


if __name__ == "__main__":
    main()
