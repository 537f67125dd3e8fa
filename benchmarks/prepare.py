"""Photos per second of `facegen prepare` for each detector and alignment.

Runs on ../shared/data/wild (105 photos as people take them) and on UTKFace photos
(2,000 by default), each case in a fresh process, and prints a Markdown table. Besides wall-clock
photos/s it reports CPU time per photo (the case's process and its workers), which other load on
a shared machine does not inflate; `workers / cpu_s_per_photo` is the rate on an idle machine.

    .venv/bin/python benchmarks/prepare.py [--utk 2000] [--cnn-limit 40] [--workers 2]

`--recall` measures instead how many faces each detector setting finds, against the faces counted
in benchmarks/wild_faces.csv, on the wild photos as they are and on the group photos among them
scaled so that their faces are 35-50 px wide (the median face 42 px), and on those packed onto
1024 px canvases (large photos of small faces), with CPU seconds per photo.

    .venv/bin/python benchmarks/prepare.py --recall [--sets wild,small,mosaics] [--only dlib/0/None,...]

`--drift` measures the landmark check that drops Haar boxes (landmarks.landmark_drift): on Haar
boxes over counted faces and the others on the wild photos, and on UTKFace and CelebA faces.

    .venv/bin/python benchmarks/prepare.py --drift
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# (detector, align, extra options); celeba and none crop a fixed window and detect nothing
CASES = [("haar", "ffhq", {}), ("dlib", "ffhq", {}), ("dlib", "ffhq", {"landmarks": 5}), ("dlib", "box", {}),
         ("dlib-cnn", "ffhq", {}), ("-", "celeba", {}), ("-", "none", {})]


def _link_folder(files: list[Path], folder: Path) -> Path:
    """A folder of symlinks to `files` (the data itself is never copied)."""
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


def _one(raw: str, out: str, options: dict, workers: int, auto_side: int | None = None, warm: bool = False) -> dict:
    """Time one prepare run in this process; returns photos, faces, photos/s, CPU s and each face's box.

    `auto_side` tries another largest detection copy that dlib upsamples by default (workers 1 only);
    `warm` loads dlib and its models before the clock starts, so the time is each photo's own."""
    from facegen_cli.prepare import detect
    from facegen_cli.prepare.pipeline import PrepareOptions, prepare

    if auto_side is not None:
        detect.AUTO_UPSAMPLE_SIDE["dlib"] = auto_side
    if warm:
        import numpy as np

        import facegen_cli.data.dataset  # noqa: F401 - the writer reads its file names (and torch comes along)
        from facegen_cli.prepare.landmarks import face_points

        detect.detect_faces(np.zeros((64, 64, 3), np.uint8), options.get("detector", "dlib"), 0)
        face_points(np.zeros((64, 64, 3), np.uint8), (8, 8, 56, 56), options.get("landmarks", 68))

    start, cpu = time.perf_counter(), _own_cpu() + _children_cpu()
    report = prepare(raw, out, PrepareOptions(**options), workers=workers)
    seconds, cpu = time.perf_counter() - start, _own_cpu() + _children_cpu() - cpu
    sources = json.loads((Path(out) / "dataset.json").read_text())["sources"]
    return {"photos": report["photos"], "faces": report["faces"], "seconds": round(seconds, 1),
            "photos_per_s": round(report["photos"] / seconds, 2), "cpu_s": round(cpu, 2),
            "rejected": report["faces_rejected"], "boxes": [[s["file"], s["box"]] for _, s in sources]}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _counted_faces() -> dict[str, list[list[float]]]:
    """The faces counted by hand on the wild photos (benchmarks/wild_faces.csv), by file."""
    faces: dict[str, list[list[float]]] = {}
    with open(Path(__file__).with_name("wild_faces.csv"), newline="") as f:
        for row in csv.DictReader(f):
            faces.setdefault(row["file"], [])
            if row["left"]:
                faces[row["file"]].append([float(row[k]) for k in ("left", "top", "right", "bottom")])
    return faces


def _matches(found: list[list[float]], truth: list[list[float]]) -> int:
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


def _small_faces(truth: dict[str, list[list[float]]], folder: Path) -> dict[str, list[list[float]]]:
    """The group photos (2 or more counted faces) scaled so their median face is 42 px wide; their faces."""
    import cv2

    from facegen_cli.prepare.detect import read_photo

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


def drift() -> None:
    """Landmark drift of Haar boxes on faces and on non-faces, and how many the limit drops."""
    import numpy as np

    from facegen_cli.prepare.detect import detect_faces, read_photo
    from facegen_cli.prepare.landmarks import DRIFT_LIMIT, landmark_drift

    groups: dict[str, list[float]] = {"wild faces": [], "wild non-faces": [], "UTKFace faces": [],
                                      "CelebA faces": []}
    for name, faces in _counted_faces().items():
        rgb = read_photo(DATA / "wild" / name).rgb
        for face in detect_faces(rgb, "haar"):
            kind = "wild faces" if _matches([list(face.box)], faces) else "wild non-faces"
            groups[kind].append(landmark_drift(rgb, face.box))
    for kind, folder, step in (("UTKFace faces", "utkface", 150), ("CelebA faces", "celeba10k", 60)):
        for path in sorted((DATA / folder / "images").iterdir())[::step]:
            rgb = read_photo(path).rgb
            groups[kind] += [landmark_drift(rgb, f.box) for f in detect_faces(rgb, "haar")]
    print(f"| Haar boxes on | boxes | median drift | 95th pct | 99th pct | max | dropped (> {DRIFT_LIMIT}) |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for kind, values in groups.items():
        v = np.array(values)
        print(f"| {kind} | {len(v)} | {np.median(v):.2f} | {np.percentile(v, 95):.2f} | {np.percentile(v, 99):.2f} | "
              f"{v.max():.2f} | {(v > DRIFT_LIMIT).sum()} |")


# (detector, upsample, largest copy auto upsamples): auto as shipped, and a cheaper rule for comparison
def _mosaics(small: Path, faces: dict[str, list[list[float]]], folder: Path) -> dict[str, list[list[float]]]:
    """The small-face photos packed into rows on canvases up to 1024 px: large photos of small faces."""
    import cv2
    import numpy as np

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


RECALL_CASES = [("dlib", 0, None), ("dlib", None, None), ("dlib", None, 640), ("haar", None, None)]


def recall(tmp: str, only: list[str] | None = None, chosen: list[str] | None = None) -> None:
    """Faces found against faces counted, per detector setting, on the wild photos and the small-face set.

    Each case runs in one process (workers 1), so its CPU time is the pipeline's own."""
    truth = _counted_faces()
    small, mosaics = Path(tmp, "small"), Path(tmp, "mosaics")
    sets = {"wild": (DATA / "wild", truth), "small": (small, _small_faces(truth, small))}
    sets["mosaics"] = (mosaics, _mosaics(small, sets["small"][1], mosaics))
    print("| set | detector | upsample | photos | faces counted | found | of them counted | recall | "
          "other boxes | not face-like (haar) | CPU s/photo |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for set_name, (raw, faces) in sets.items():
        if chosen and set_name not in chosen:
            continue
        for detector, upsample, auto_side in RECALL_CASES:
            if only and f"{detector}/{upsample}/{auto_side}" not in only:
                continue
            options = {"align": "box", "size": 64, "detector": detector, "upsample": upsample}
            out = Path(tmp, f"{set_name}-{detector}-{upsample}-{auto_side}.out".replace(" ", "_"))
            case = {"raw": str(raw), "out": str(out), "options": options, "workers": 1, "auto_side": auto_side,
                    "warm": True}
            run = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                                 text=True, check=True)
            r = json.loads(run.stdout.strip().splitlines()[-1])
            by_file: dict[str, list] = {}
            for name, box in r["boxes"]:
                by_file.setdefault(name, []).append(box)
            hits = sum(_matches(by_file.get(name, []), t) for name, t in faces.items())
            total = sum(len(t) for t in faces.values())
            photos = len(faces)
            rule = "auto" + (f" (up to {auto_side} px)" if auto_side else "") if upsample is None else upsample
            print(f"| {set_name} | {detector} | {rule} | {photos} | {total} | "
                  f"{r['faces']} | {hits} | {hits / total:.0%} | {r['faces'] - hits} | {r['rejected']} | "
                  f"{r['cpu_s'] / photos:.2f} |", flush=True)


def _children_cpu() -> float:
    """User + system seconds of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    """Run every case on both sets and print the results as a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utk", type=int, default=2000, help="UTKFace photos to use")
    parser.add_argument("--cnn-limit", type=int, default=40, help="photos per set for the slow CNN detector")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sets", help="photo sets to run, comma-separated (default: wild,utkface; "
                                       "with --recall wild,small,mosaics)")
    parser.add_argument("--only", help="cases to run, e.g. --only=dlib/ffhq,-/none (default: all)")
    parser.add_argument("--recall", action="store_true", help="faces found against faces counted (see above)")
    parser.add_argument("--drift", action="store_true", help="the Haar landmark check on faces and non-faces")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one timed run, as JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_one(**json.loads(args.case))))
        return
    if not (DATA / "wild").is_dir():
        sys.exit(f"no face data at {DATA}")
    if args.drift:
        drift()
        return
    if args.recall:
        with tempfile.TemporaryDirectory() as tmp:
            recall(tmp, args.only.split(",") if args.only else None, (args.sets or "wild,small,mosaics").split(","))
        return
    with tempfile.TemporaryDirectory() as tmp:
        wild = sorted(p for p in (DATA / "wild").rglob("*") if p.is_file())
        utk = sorted((DATA / "utkface" / "images").iterdir())[:: max(1, 23_707 // args.utk)][: args.utk]
        names = (args.sets or "wild,utkface").split(",")
        sets = {name: files for name, files in (("wild", wild), ("utkface", utk)) if name in names}
        print("| set | detector | align | photos | faces | seconds | photos/s | CPU ms/photo | photos/s idle (est.) |\n"
              "|---|---|---|---|---|---|---|---|---|")
        for set_name, files in sets.items():
            for detector, align, extra in CASES:
                if args.only and f"{detector}/{align}" not in args.only.split(","):
                    continue
                chosen = files[: args.cnn_limit] if detector == "dlib-cnn" else files
                raw = _link_folder(chosen, Path(tmp, f"{set_name}-{detector}-{align}-{len(extra)}".replace(" ", "_")))
                options = {"align": align, "size": args.size, **extra, **({"detector": detector} if detector != "-" else {})}
                case = {"raw": str(raw), "out": str(raw) + ".out", "options": options, "workers": args.workers}
                cpu_before = _children_cpu()
                run = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                                     text=True, check=True)
                r = json.loads(run.stdout.strip().splitlines()[-1])
                cpu = (_children_cpu() - cpu_before) / r["photos"]  # includes the case's import time
                label = align + (" (5 points)" if extra.get("landmarks") == 5 else "")
                print(f"| {set_name} {len(files)} | {detector} | {label} | {r['photos']} | {r['faces']} | {r['seconds']} | "
                      f"{r['photos_per_s']} | {cpu * 1000:.0f} | {args.workers / cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
