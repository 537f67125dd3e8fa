"""How many faces `facegen prepare`'s detector settings find, and the landmark check on Haar boxes.

Recall: against the faces counted by hand in benchmarks/wild_faces.csv, on the wild photos as they are,
on the group photos among them scaled so that their median face is 42 px wide (`small`), and on those
packed onto 1024 px canvases (`mosaics`: large photos of small faces), with CPU seconds per photo (one
worker, models loaded before the clock starts). One JSON object per set and setting.

Drift: the landmark check that drops Haar boxes (`landmarks.landmark_drift`), on Haar boxes over counted
faces and the others on the wild photos, and on UTKFace and CelebA faces. One JSON object per group.

    python -m benchmarks.detection [--sets wild,small,mosaics] [--only dlib/0/None,...] [--no-drift]
    python -m benchmarks.detection --quick      # 6 wild photos, two settings; drift on a few faces
"""
from __future__ import annotations

import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import harness
from benchmarks.harness import DATA
from facegen_cli.prepare import detect
from facegen_cli.prepare.detect import detect_faces, read_photo
from facegen_cli.prepare.landmarks import DRIFT_LIMIT, face_points, landmark_drift
from facegen_cli.prepare.pipeline import PrepareOptions, prepare

# (detector, upsample, largest copy auto upsamples): auto as shipped, and a cheaper rule for comparison
RECALL_CASES = [("dlib", 0, None), ("dlib", None, None), ("dlib", None, 640), ("haar", None, None)]


def quick_needs() -> str | None:
    return None if (DATA / "wild").is_dir() else f"no wild photos at {DATA / 'wild'}"


def counted_faces() -> dict[str, list[list[float]]]:
    """The faces counted by hand on the wild photos (benchmarks/wild_faces.csv), by file."""
    faces: dict[str, list[list[float]]] = {}
    with open(Path(__file__).with_name("wild_faces.csv"), newline="") as f:
        for row in csv.DictReader(f):
            faces.setdefault(row["file"], [])
            if row["left"]:
                faces[row["file"]].append([float(row[k]) for k in ("left", "top", "right", "bottom")])
    return faces


def matches(found: list[list[float]], truth: list[list[float]]) -> int:
    """Faces of `truth` with a found box whose centre lies inside and whose width is within 2x."""
    left, hits = list(found), 0
    for t in truth:
        for b in left:
            cx, cy, ratio = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2, (b[2] - b[0]) / (t[2] - t[0])
            if t[0] <= cx <= t[2] and t[1] <= cy <= t[3] and 0.5 <= ratio <= 2:
                left.remove(b)
                hits += 1
                break
    return hits


def small_faces(truth: dict[str, list[list[float]]], folder: Path) -> dict[str, list[list[float]]]:
    """The group photos (2 or more counted faces) scaled so their median face is 42 px wide; their faces."""
    folder.mkdir(parents=True)
    scaled = {}
    for name, faces in truth.items():
        if len(faces) < 2:
            continue
        k = 42 / statistics.median(b[2] - b[0] for b in faces)
        rgb = read_photo(DATA / "wild" / name).rgb
        small = cv2.resize(rgb, (round(rgb.shape[1] * k), round(rgb.shape[0] * k)), interpolation=cv2.INTER_AREA)
        flat = name.replace("/", "__")
        cv2.imwrite(str(folder / flat), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        scaled[flat] = [[v * k for v in b] for b in faces]
    return scaled


def mosaics(small: Path, faces: dict[str, list[list[float]]], folder: Path) -> dict[str, list[list[float]]]:
    """The small-face photos packed into rows on canvases up to 1024 px: large photos of small faces."""
    folder.mkdir(parents=True)
    canvases: list[list[tuple[str, int, int]]] = [[]]  # (photo, x, y) per canvas
    x = y = row_h = 0
    for name in sorted(faces):
        h, w = cv2.imread(str(small / name)).shape[:2]
        if x + w > 1024:
            x, y, row_h = 0, y + row_h, 0
        if y + h > 1024:
            canvases.append([])
            x = y = row_h = 0
        canvases[-1].append((name, x, y))
        x, row_h = x + w, max(row_h, h)
    packed = {}
    for i, parts in enumerate(canvases):
        canvas, boxes = np.full((1024, 1024, 3), 255, np.uint8), []
        for name, px, py in parts:
            img = cv2.imread(str(small / name))
            canvas[py:py + img.shape[0], px:px + img.shape[1]] = img
            boxes += [[b[0] + px, b[1] + py, b[2] + px, b[3] + py] for b in faces[name]]
        cv2.imwrite(str(folder / f"mosaic{i}.png"), canvas)
        packed[f"mosaic{i}.png"] = boxes
    return packed


def found_boxes(raw: Path, out: Path, detector: str, upsample: int | None,
                auto_side: int | None) -> tuple[dict, float]:
    """The prepare report and the CPU seconds of one run (one worker, this process, models loaded first)."""
    detect_faces(np.zeros((64, 64, 3), np.uint8), detector, 0)
    face_points(np.zeros((64, 64, 3), np.uint8), (8, 8, 56, 56), 68)
    shipped = detect.AUTO_UPSAMPLE_SIDE[detector]
    if auto_side is not None:
        detect.AUTO_UPSAMPLE_SIDE[detector] = auto_side
    try:
        cpu = time.process_time()
        report = prepare(raw, out, PrepareOptions(align="box", size=64, detector=detector, upsample=upsample),
                         workers=1)
        return report, time.process_time() - cpu
    finally:
        detect.AUTO_UPSAMPLE_SIDE[detector] = shipped


def recall(tmp: Path, sets: list[str], only: list[str] | None, first: int | None) -> list[dict]:
    """Faces found against faces counted, per detector setting, on each set (the first `first` photos)."""
    truth = dict(list(counted_faces().items())[:first])
    small, packed, wild = tmp / "small", tmp / "mosaics", DATA / "wild"
    if first is not None:  # links to the chosen photos, in their folders
        wild = tmp / "wild"
        for name in truth:
            (wild / name).parent.mkdir(parents=True, exist_ok=True)
            (wild / name).symlink_to(DATA / "wild" / name)
    chosen = {"wild": (wild, truth)}
    if "small" in sets or "mosaics" in sets:
        chosen["small"] = (small, small_faces(truth, small))
    if "mosaics" in sets:
        chosen["mosaics"] = (packed, mosaics(small, chosen["small"][1], packed))
    records = []
    for set_name in sets:
        raw, faces = chosen[set_name]
        for detector, upsample, auto_side in RECALL_CASES:
            if only and f"{detector}/{upsample}/{auto_side}" not in only:
                continue
            out = tmp / f"{set_name}-{detector}-{upsample}-{auto_side}.out"
            report, cpu = found_boxes(raw, out, detector, upsample, auto_side)
            by_file: dict[str, list] = {}
            for _, source in json.loads((out / "dataset.json").read_text())["sources"]:
                by_file.setdefault(source["file"], []).append(source["box"])
            hits = sum(matches(by_file.get(name, []), t) for name, t in faces.items())
            total = sum(len(t) for t in faces.values())
            records.append({"set": set_name, "detector": detector,
                            "upsample": "auto" if upsample is None else upsample,
                            "auto_upsample_side": auto_side, "photos": len(faces), "faces_counted": total,
                            "found": report["faces"], "of_them_counted": hits, "recall": round(hits / total, 3),
                            "other_boxes": report["faces"] - hits, "not_face_like": report["faces_rejected"],
                            "cpu_s_per_photo": round(cpu / len(faces), 3)})
    return records


def drift(first: int | None, steps: tuple[int, int]) -> list[dict]:
    """Landmark drift of Haar boxes on faces and on non-faces, and how many the limit drops."""
    groups: dict[str, list[float]] = {"wild faces": [], "wild non-faces": [], "UTKFace faces": [], "CelebA faces": []}
    for name, faces in list(counted_faces().items())[:first]:
        rgb = read_photo(DATA / "wild" / name).rgb
        for face in detect_faces(rgb, "haar"):
            kind = "wild faces" if matches([list(face.box)], faces) else "wild non-faces"
            groups[kind].append(landmark_drift(rgb, face.box))
    for kind, folder, step in (("UTKFace faces", "utkface", steps[0]), ("CelebA faces", "celeba10k", steps[1])):
        for path in sorted((DATA / folder / "images").iterdir())[::step]:
            rgb = read_photo(path).rgb
            groups[kind] += [landmark_drift(rgb, f.box) for f in detect_faces(rgb, "haar")]
    return [{"haar_boxes_on": kind, "boxes": len(v), "limit": DRIFT_LIMIT,
             **({"median": round(float(np.median(v)), 2), "p95": round(float(np.percentile(v, 95)), 2),
                 "p99": round(float(np.percentile(v, 99)), 2), "max": round(float(np.max(v)), 2),
                 "dropped": int((np.array(v) > DRIFT_LIMIT).sum())} if v else {})} for kind, v in groups.items()]


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--sets", default="wild,small,mosaics", help="photo sets for recall, comma-separated")
    parser.add_argument("--only", help="recall settings, e.g. --only=dlib/0/None,haar/None/None (default: all)")
    parser.add_argument("--no-drift", action="store_true", help="recall alone")
    args = parser.parse_args()
    if quick_needs():
        raise SystemExit(quick_needs())
    sets, only = args.sets.split(","), args.only.split(",") if args.only else None
    first, steps = None, (150, 60)
    if args.quick:
        sets, only, first, steps = ["wild", "small"], ["dlib/0/None", "haar/None/None"], 6, (6000, 3000)
    with tempfile.TemporaryDirectory() as tmp:
        records = recall(Path(tmp), sets, only, first)
    if not args.no_drift:
        records += drift(first, steps)
    env, load = harness.machine(), harness.load_average()
    harness.write([{**r, "machine": env, "load": load} for r in records], args.out)


if __name__ == "__main__":
    main()
