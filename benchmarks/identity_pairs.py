"""How well the identity distance (facegen_cli.metrics.identity) tells people apart on real photo pairs.

Reads ../shared/data/wild/deepface/master.csv (file_x, file_y, Decision Yes/No: the same person or not)
and measures every pair twice: on the photos as they are (full resolution, face found by dlib's
detector) and at 64 px (each photo's face aligned the FFHQ way at 64x64 by `align_photo`, then
measured as a generated face would be). For each, one JSON object: accuracy at the 0.6 threshold and
the pairs it gets wrong, the best threshold and its accuracy, the same-person and different-person
distance distributions, and the pairs skipped (no face) with the reason; then one for the distance of
each 64 px face to its mirror image.

Then the same person over a turn of the head: CelebA photos of the identities with at least three photos in
celeba10k (identity_CelebA.txt; whole identities in file order until --celeba-faces photos), each aligned at
64 px as above and read by the head-pose estimator; every pair of one person's faces is binned by the
difference in yaw (and, for |yaw difference| under 10 degrees, in pitch), and each bin gives the distance's
spread and the shares under 0.5 and 0.6, and how often the readings a control keeps (age in years, Male,
Smiling) stay put between the two photos. The real reference for an edit that turns a head and should keep the
person; each face against its own mirror image (yaw flips sign, nothing else changes) is the same reference
with the person, age and expression identical by construction.
The same faces are also read by the shipped classifiers: pairs within 10 degrees of each other in yaw and pitch
are binned by how far one reading (P(Young), P(Smiling), a hair colour, age in years) differs between the two
photos, the real reference for an edit that moves that reading and should keep the person.

    python -m benchmarks.identity_pairs [--pairs PATH] [--celeba-faces 1000] [--quick]
    # --quick: every 30th pair, 40 CelebA faces
"""
from __future__ import annotations

import collections
import csv
import itertools
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks import harness
from benchmarks.controls import kept_limit
from facegen_cli.errors import FacegenError
from facegen_cli.estimators.attributes import AGE, shared_reader
from facegen_cli.estimators.pose import head_pose
from facegen_cli.latent.project import align_photo
from facegen_cli.metrics.identity import SAME_PERSON_THRESHOLD, shared_model
from facegen_cli.prepare.detect import load_photo

PAIRS = harness.DATA / "wild" / "deepface" / "master.csv"
CELEBA = harness.DATA / "celeba10k"
YAW_BINS = ((0, 5), (5, 10), (10, 15), (15, 25), (25, 90))  # |yaw difference| in degrees
PITCH_BINS = ((0, 5), (5, 10), (10, 90))  # |pitch difference|, pairs within 10 degrees of yaw
PROBABILITY_BINS = ((0, 0.1), (0.1, 0.3), (0.3, 1.01))  # |difference| of a classifier's probability
YEAR_BINS = ((0, 5), (5, 10), (10, 200))  # |difference| of the age reading, years
READINGS = (("Young", PROBABILITY_BINS), ("Smiling", PROBABILITY_BINS), ("Blond_Hair", PROBABILITY_BINS),
            ("Black_Hair", PROBABILITY_BINS), (AGE, YEAR_BINS))
KEPT = (AGE, "Male", "Smiling")  # the readings a pose control keeps, each within benchmarks.controls.kept_limit
READERS = {"readings": True, "one_view": False}  # the classifiers with the mirror image (as the engine reads), without


def quick_needs() -> str | None:
    return None if PAIRS.is_file() else f"no photo pairs at {PAIRS}"


def read_pairs(path: Path) -> list[tuple[str, str, bool]]:
    """(file_x, file_y, same person) for each row of master.csv."""
    with open(path, newline="") as f:
        return [(row["file_x"].strip(), row["file_y"].strip(), row["Decision"].strip() == "Yes")
                for row in csv.DictReader(f)]


def descriptors(folder: Path, files: list[str], image_of: Callable[[Path], np.ndarray]) -> tuple[dict, dict, float]:
    """Descriptor of each file (or why it has none) and the seconds per descriptor."""
    model, found, failed = shared_model(), {}, {}
    start = time.perf_counter()
    for name in files:
        try:
            found[name] = model.descriptor(image_of(folder / name), name)
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


def spread(values: np.ndarray) -> dict | None:
    """min / median / mean / max of some distances."""
    if not len(values):
        return None
    return {k: round(float(f(values)), 3) for k, f in (("min", np.min), ("median", np.median), ("mean", np.mean),
                                                        ("max", np.max))}


def measured(way: str, pairs: list[tuple[str, str, bool]], found: dict, failed: dict, seconds: float) -> dict:
    """One way of measuring: accuracy, distributions, skipped pairs."""
    kept = [(a, b, s) for a, b, s in pairs if a in found and b in found]
    dist = np.array([np.linalg.norm(found[a] - found[b]) for a, b, _ in kept])
    same = np.array([s for _, _, s in kept], bool)
    threshold, best = best_threshold(dist, same) if len(kept) else (None, None)
    skipped = [(a, b) for a, b, _ in pairs if a not in found or b not in found]
    return {"way": way, "pairs": len(pairs), "measured": len(kept), "same_person": int(same.sum()),
            "photos": len(found), "seconds_per_descriptor": round(seconds, 3), "threshold": SAME_PERSON_THRESHOLD,
            "accuracy": round(float(((dist < SAME_PERSON_THRESHOLD) == same).mean()), 4) if len(kept) else None,
            "wrong": [[a, b, round(float(d), 3)] for (a, b, s), d in zip(kept, dist)
                      if (d < SAME_PERSON_THRESHOLD) != s],
            "best_threshold": threshold, "best_accuracy": best,
            "same_person_distance": spread(dist[same]), "different_people_distance": spread(dist[~same]),
            "skipped": len(skipped),
            "why_skipped": {n: [failed[n], sum(n in p for p in skipped)] for n in sorted(failed)}}


def celeba_people(count: int, least: int = 3) -> list[tuple[str, str]]:
    """(file, identity) of whole identities with at least `least` photos, in file order, until `count` files."""
    people = collections.defaultdict(list)
    for line in (CELEBA / "identity_CelebA.txt").read_text().splitlines():
        name, person = line.split()
        people[person].append(name)
    chosen: list[tuple[str, str]] = []
    for names in sorted((sorted(n) for n in people.values() if len(n) >= least), key=lambda n: n[0]):
        if len(chosen) >= count:
            break
        chosen += [(name, names[0]) for name in names]
    return chosen


def read_face(face: np.ndarray, name: str) -> dict:
    """One 64 px face read by every instrument: yaw, pitch, descriptor and the classifiers' readings, as the
    engine reads them (the face with its mirror image) and from the face alone."""
    pose = head_pose(face, name, aligned=True)
    return {"yaw": pose.yaw, "pitch": pose.pitch, "descriptor": shared_model().descriptor(face, name),
            **{way: {key: float(value[0]) for key, value in shared_reader().read(face, mirror=mirror).items()}
               for way, mirror in READERS.items()}}


def celeba_faces(count: int) -> tuple[dict[str, list[dict]], list[tuple[dict, dict, float]]]:
    """Identity -> its faces at 64 px, each read once; and each face paired with its own mirror image."""
    faces, mirrored = collections.defaultdict(list), []
    for name, person in celeba_people(count):
        try:
            face = align_photo(CELEBA / "images" / name, 64, "ffhq")
            read = read_face(face, name)
            mirror = read_face(np.ascontiguousarray(face[:, ::-1]), f"{name} mirrored")
        except FacegenError:  # no face found or no pose read: the photo takes no part
            continue
        faces[person].append(read)
        mirrored.append((read, mirror, float(np.linalg.norm(read["descriptor"] - mirror["descriptor"]))))
    return faces, mirrored


def same_person_pairs(faces: dict[str, list[dict]]) -> list[tuple[dict, dict, float]]:
    """Every pair of one person's faces with their descriptors' distance."""
    return [(a, b, float(np.linalg.norm(a["descriptor"] - b["descriptor"])))
            for found in faces.values() for a, b in itertools.combinations(found, 2)]


def binned(way: str, faces: int, people: int, pairs: list[tuple[dict, dict, float]], inside: np.ndarray,
           **fields) -> dict:
    """One bin of pairs: the distance's spread, its shares under 0.5 and 0.6, and how often the kept readings held
    (read with and without the mirror image)."""
    dist = np.array([d for _, _, d in pairs])[inside] if pairs else np.zeros(0)
    chosen = [(a, b) for (a, b, _), keep in zip(pairs, inside) if keep]
    kept = {f"kept_{name}{'' if reader == 'readings' else '_one_view'}":
            round(float(np.mean([abs(a[reader][name] - b[reader][name]) <= kept_limit(name) for a, b in chosen])), 3)
            if chosen else None
            for reader in READERS for name in KEPT}
    return {"way": way, "faces": faces, "people": people, **fields, "pairs": int(inside.sum()),
            "distance": spread(dist),
            "under_0.5": round(float((dist <= 0.5).mean()), 3) if len(dist) else None,
            "under_0.6": round(float((dist <= 0.6).mean()), 3) if len(dist) else None, **kept}


def pose_and_reading_pairs(count: int) -> list[dict]:
    """Same-person pairs of CelebA faces at 64 px by pose difference; each face against its mirror by yaw difference
    (the same face turned, nothing else changed); then, heads within 10 degrees, the pairs by reading difference."""
    faces, mirrored = celeba_faces(count)
    pairs = same_person_pairs(faces)
    faces_read, people = sum(len(found) for found in faces.values()), len(faces)
    yaw = np.array([abs(a["yaw"] - b["yaw"]) for a, b, _ in pairs])
    pitch = np.array([abs(a["pitch"] - b["pitch"]) for a, b, _ in pairs])
    records = [binned("CelebA same person at 64 px, by pose difference", faces_read, people, pairs,
                      (yaw >= lo) & (yaw < hi), difference="yaw", degrees=[lo, hi]) for lo, hi in YAW_BINS]
    records += [binned("CelebA same person at 64 px, by pose difference", faces_read, people, pairs,
                       (pitch >= lo) & (pitch < hi) & (yaw < 10), difference="pitch", degrees=[lo, hi])
                for lo, hi in PITCH_BINS]
    records.append(binned("CelebA same person at 64 px, by pose difference", faces_read, people, pairs,
                          np.ones(len(pairs), bool), difference="all", degrees=[0, 180]))
    turned = np.array([abs(a["yaw"] - b["yaw"]) for a, b, _ in mirrored])
    records += [binned("CelebA face against its own mirror image at 64 px, by yaw difference", faces_read, people,
                       mirrored, (turned >= lo) & (turned < hi), difference="yaw", degrees=[lo, hi])
                for lo, hi in YAW_BINS]
    still = (yaw < 10) & (pitch < 10)
    for name, bins in READINGS:
        moved = np.array([abs(a["readings"][name] - b["readings"][name]) for a, b, _ in pairs])
        records += [binned("CelebA same person at 64 px, heads within 10 degrees, by reading difference",
                           faces_read, people, pairs, still & (moved >= lo) & (moved < hi), reading=name,
                           bounds=[lo, hi]) for lo, hi in bins]
    return records


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--celeba-faces", type=int, default=1000, help="CelebA photos for the pose pairs")
    args = parser.parse_args()
    pairs = read_pairs(args.pairs)[::30 if args.quick else 1]
    files = sorted({name for a, b, _ in pairs for name in (a, b)})
    folder = args.pairs.parent
    aligned: dict[str, np.ndarray] = {}

    def aligned_64(path: Path) -> np.ndarray:
        aligned[path.name] = align_photo(path, 64, "ffhq")
        return aligned[path.name]

    records = [measured("full resolution", pairs, *descriptors(folder, files, load_photo)),
               measured("aligned 64 px", pairs, *descriptors(folder, files, aligned_64))]
    mirror = np.array([shared_model().distance(face, np.ascontiguousarray(face[:, ::-1])) for face in aligned.values()])
    records.append({"way": "64 px face against its mirror image", "faces": len(mirror), "distance": spread(mirror)})
    if (CELEBA / "identity_CelebA.txt").is_file():
        records += pose_and_reading_pairs(40 if args.quick else args.celeba_faces)
    env, load = harness.machine(), harness.load_average()
    harness.write([{**r, "machine": env, "load": load} for r in records], args.out)


if __name__ == "__main__":
    main()
