"""The human-face check's margin (facegen_cli.prepare.human): its score on real faces and on animals'.

Humans: the faces `align_photo` would align in the shared data (CelebA 000001-000150 and 009001-009100,
every 160th UTKFace photo, the tuning benchmark's photos, every wild photo), every third photo also
mirrored, turned 20 degrees either way and shrunk to 0.5 and 0.35. The largest face of each image is
the one `align_photo` checks; the wild photos' other faces are measured too and reported apart (the
HOG detector's false hits among them are no face at all). Animals: every box the HOG detector finds on
each animal photo (default the committed crop of dlib's dogs.jpg; give dlib's examples/faces/dogs.jpg
itself to measure all four dogs) and on square crops of it (0.2 to 1.0 of its shorter side, a third of
a side apart, scaled to 100-400 px, and mirrored). One JSON object per set: how many faces, the
score's spread, the faces the check refuses, seconds per check.

    python -m benchmarks.face_check [--animals PHOTO ...] [--sets humans|animals] [--quick]  # --quick: a few of each
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from benchmarks import harness
from facegen_cli.prepare.detect import detect_faces, load_photo, pick_faces
from facegen_cli.prepare.human import human_score

DOGS = harness.ROOT / "tests" / "data" / "dogs.jpg"
TUNING = harness.ROOT / "benchmarks" / "tuning_photos.txt"
CROPS = (0.2, 0.25, 0.3, 0.45, 0.6, 1.0)
SIZES = (100, 128, 160, 200, 256, 320, 400)


def quick_needs() -> str | None:
    return None if (harness.DATA / "celeba10k").is_dir() else f"no real faces at {harness.DATA}"


def human_photos(quick: bool) -> dict[str, list[Path]]:
    """The photos of each human set."""
    tuning = [harness.DATA / line.strip() for line in TUNING.read_text().splitlines() if line.strip()]
    celeba = [harness.DATA / "celeba10k" / "images" / f"{i:06d}.jpg" for i in [*range(1, 151), *range(9001, 9101)]]
    utkface = sorted((harness.DATA / "utkface" / "images").glob("*.jpg"))[::160][:150]
    wild = sorted(p for p in (harness.DATA / "wild").glob("*/*") if p.suffix.lower() in (".jpg", ".png", ".webp"))
    sets = {"celeba": celeba + [p for p in tuning if "celeba" in p.parts and p not in celeba],
            "utkface": utkface + [p for p in tuning if "utkface" in p.parts and p not in utkface], "wild": wild}
    return {name: photos[:4] if quick else photos for name, photos in sets.items()}


def turned(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0), (w, h),
                          borderMode=cv2.BORDER_REFLECT)


def variants(rgb: np.ndarray, every: bool) -> Iterator[tuple[str, np.ndarray]]:
    """The photo itself, and when `every`, mirrored, turned and shrunk."""
    yield "", rgb
    if not every:
        return
    yield "mirrored", np.ascontiguousarray(rgb[:, ::-1])
    for degrees in (-20, 20):
        yield "turned", turned(rgb, degrees)
    for scale in (0.5, 0.35):
        yield "small", cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def crops(rgb: np.ndarray, quick: bool) -> Iterator[np.ndarray]:
    """The photo, and square crops of it scaled to each size, as they are and mirrored."""
    yield rgb
    h, w = rgb.shape[:2]
    for fraction in CROPS[:1] if quick else CROPS:
        side = int(min(h, w) * fraction)
        for top in range(0, h - side + 1, max(1, side // 3)):
            for left in range(0, w - side + 1, max(1, side // 3)):
                square = rgb[top:top + side, left:left + side]
                for size in SIZES[:2] if quick else SIZES:
                    scaled = cv2.resize(square, (size, size),
                                        interpolation=cv2.INTER_AREA if size < side else cv2.INTER_CUBIC)
                    yield scaled
                    yield np.ascontiguousarray(scaled[:, ::-1])


def spread(values: list[float]) -> dict | None:
    if not values:
        return None
    v = np.array(values)
    return {"min": round(float(v.min()), 3), "p1": round(float(np.percentile(v, 1)), 3),
            "median": round(float(np.median(v)), 3), "max": round(float(v.max()), 3)}


def measure_humans(quick: bool) -> list[dict]:
    """One record per human set and kind of image (as taken, mirrored, turned, small), and one for the other faces."""
    scores: dict[tuple[str, str], list[tuple[str, float]]] = {}
    unfound, seconds, checks = [], 0.0, 0
    for name, photos in human_photos(quick).items():
        for i, path in enumerate(photos):
            for kind, rgb in variants(load_photo(path), i % 3 == 0):
                faces = sorted(detect_faces(rgb), key=lambda f: -f.side)
                if not faces:
                    unfound.append(f"{path.name} {kind}".strip())
                    continue
                for rank, face in enumerate(faces if name == "wild" and not kind else faces[:1]):
                    start = time.perf_counter()
                    score = human_score(rgb, face.box)
                    seconds, checks = seconds + time.perf_counter() - start, checks + 1
                    group = (name, kind or "as taken") if rank == 0 else ("wild", "other faces in a photo")
                    scores.setdefault(group, []).append((f"{path.name} {kind} {face.box}", score))
    records = [{"set": f"human: {name}, {kind}", "faces": len(found), "score": spread([s for _, s in found]),
                "refused": [label for label, s in found if s <= 0]} for (name, kind), found in sorted(scores.items())]
    largest = [s for (name, kind), found in scores.items() if kind != "other faces in a photo" for _, s in found]
    records.append({"set": "human: every largest face", "faces": len(largest), "score": spread(largest),
                    "refused": sum(s <= 0 for s in largest), "images_with_no_face_found": len(unfound),
                    "seconds_per_check": round(seconds / max(1, checks), 3)})
    return records


def measure_animals(photos: list[Path], quick: bool) -> dict:
    """Every HOG box on the animal photos and their crops, and the check's score on it."""
    scores = []
    for path in photos:
        for image in crops(load_photo(path), quick):
            scores += [(path.name, human_score(image, face.box)) for face in pick_faces(detect_faces(image))]
    return {"set": "animals: " + ", ".join(p.name for p in photos), "faces": len(scores),
            "score": spread([s for _, s in scores]), "passed": sum(s > 0 for _, s in scores)}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--animals", type=Path, nargs="+", default=[DOGS], help="photos of animals")
    parser.add_argument("--sets", choices=("humans", "animals"), nargs="+", default=["humans", "animals"])
    args = parser.parse_args()
    records = [*(measure_humans(args.quick) if "humans" in args.sets else []),
               *([measure_animals(args.animals, args.quick)] if "animals" in args.sets else [])]
    env, load = harness.machine(), harness.load_average()
    harness.write([{**r, "machine": env, "load": load} for r in records], args.out)


if __name__ == "__main__":
    main()
