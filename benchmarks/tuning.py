"""Your own photo: W projection, W+ projection and pivotal tuning side by side on held-out photos, then edits.

The photos (`tuning_photos.txt`, names only) are faces the shipped model never trained on: CelebA from
009001 on and UTKFace from the end of the sorted list (half women, half men, several ages and skin
tones), and single-face photos from wild/. Each is aligned the FFHQ way at 64 px by facegen's prepare
code (`align_photo`). Per photo and method: PSNR against the aligned pixels, identity distance to the
aligned photo (dlib), CPU and wall seconds (the tuned row's include its pivot, the W row's projection);
for the tuned network, locality (mean PSNR of 100 random seeds drawn by the tuned vs the base network) and
three shipped edits (Smiling, Age, Blond_Hair) at the
smallest strength of STRENGTHS that moves the shipped classifier's probability by at least 0.3 (Age
read as P(Young)), with the identity distance to the photo after the edit. Each photo's pivot and tuned
network stay in DIR, where `benchmarks.keep_edit --work DIR` starts from them.

    python -m benchmarks.tuning --select > benchmarks/tuning_photos.txt     # choose the photos (once)
    python -m benchmarks.tuning --work DIR [--part 1/3] [--photos N]        # measure: DIR/results-*.jsonl
    python -m benchmarks.tuning --report DIR                                # JSON summary + DIR/figure.png
    python -m benchmarks.tuning --quick      # one photo, 5 steps each, 8 seeds of locality: a check

Measuring runs one torch thread per process; parts run side by side cover the list between them. The
summary: one JSON object per method (W, W+, tuned) and per edit of the tuned reconstruction.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import harness
from benchmarks.harness import DATA

PHOTOS = Path(__file__).resolve().parent / "tuning_photos.txt"
PIVOT_STEPS = 150  # of the W projection (the tuning's pivot, as `project --tune` runs it) and of the W+ one
SEEDS = range(100)  # locality: the tuned and the base network draw these
EDITS = {"Smiling": "Smiling", "Age": "Young", "Blond_Hair": "Blond_Hair"}  # direction -> classifier attribute
STRENGTHS = (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
MIN_SHIFT = 0.3
QUOTA = {0: 1, 1: 2, 2: 2, 3: 1}  # UTKFace photos per age band (0-19, 20-39, 40-59, 60+) and gender
WILD = ("deepface/img1.jpg", "face_recognition/biden.jpg", "face_recognition/knn_train__rose_leslie__img1.jpg",
        "face_api_js/happy.jpg")  # single-face photos of four people


def select() -> list[str]:
    """Interleaved, so that the first N photos keep the mix: 12 CelebA (6 women, 6 men) from 009001 on,
    12 UTKFace from the end of the sorted list (6 women, 6 men across ages and races), 4 single-face wild
    photos; each must align."""
    from facegen_cli.errors import FacegenError
    from facegen_cli.latent.project import align_photo

    def aligns(path: Path) -> bool:
        try:
            align_photo(path, 64)
            return True
        except FacegenError:
            return False

    groups: list[list[str]] = []
    with open(DATA / "celeba10k" / "labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["image_id"] >= "009001.jpg"]
    for male in ("-1", "1"):
        picked: list[str] = []
        for r in rows:
            if len(picked) == 6:
                break
            if r["Male"] == male and aligns(DATA / "celeba10k" / "images" / r["image_id"]):
                picked.append(r["image_id"])
        groups.append([f"celeba10k/images/{name}" for name in picked])
    with open(DATA / "utkface" / "labels.csv", newline="") as f:
        utk = {r["file"]: r for r in csv.DictReader(f) if r["parse_ok"] == "1"}
    tail = sorted(os.listdir(DATA / "utkface" / "images"))[::-1]
    for gender in ("1", "0"):  # women, men: six each by age band (QUOTA), one race at most twice per band
        seen: list[tuple[int, str]] = []
        groups.append([])
        for name in tail:
            r = utk.get(name)
            if r is None or r["gender"] != gender:
                continue
            band = min(int(r["age"]) // 20, 3)
            if sum(b == band for b, _ in seen) == QUOTA[band] or seen.count((band, r["race"])) == 1:
                continue
            if aligns(DATA / "utkface" / "images" / name):
                seen.append((band, r["race"]))
                groups[-1].append(f"utkface/images/{name}")
    groups.append([f"wild/{name}" for name in WILD if aligns(DATA / "wild" / name)])
    return [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]  # interleaved


def classifier_probabilities(images: np.ndarray, classifiers: dict) -> dict[str, np.ndarray]:
    """Probability of each edited attribute for HWC uint8 images."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    attributes = classifiers["celeba"]
    p = attributes.predict(x)
    return {attr: p[:, attributes.index(attr)] for attr in EDITS.values()}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.square(a.astype(np.float64) - b).mean())
    return 10 * np.log10(255 ** 2 / mse) if mse else float("inf")


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def keep_tuned(work: Path, name: str, target: np.ndarray, pivot: np.ndarray, tuned, image: np.ndarray) -> None:
    """A photo's aligned pixels, W pivot and tuned reconstruction (`NAME.npz`) and its tuned network, kept in
    `work` so the edit benchmarks start from the same tuned photos."""
    from facegen_cli.checkpoint import save_tuned

    stem = name.replace("/", "_")
    save_tuned(work / f"{stem}-tuned.safetensors", tuned.arch, tuned.G_kwargs, tuned.G_ema, tuned.provenance)
    np.savez(work / f"{stem}.npz", target=target, pivot=pivot, tuned=image)


def measure(name: str, net, classifiers: dict, out: Path, quick: bool) -> dict:
    """Every number of one photo; its images (photo, W, W+, tuned, edits) saved under out/images."""
    from facegen_cli.images import save_image
    from facegen_cli.latent.directions import load_direction, move
    from facegen_cli.latent.project import ProjectOptions, align_photo, image_stats, project
    from facegen_cli.latent.tuning import TuneOptions, tune
    from facegen_cli.metrics.identity import identity_distance_or_none
    from facegen_cli.sampler import Sampler

    steps, seeds = (5, SEEDS[:8]) if quick else (PIVOT_STEPS, SEEDS)
    target = align_photo(DATA / name, 64)
    row: dict = {"photo": name, "load": os.getloadavg()[0]}
    (pivot, image, _), cpu, wall = timed(lambda: project(net, target, ProjectOptions(steps=steps)))
    row["W"] = {**image_stats(image, target), "cpu_s": cpu, "wall_s": wall}
    (_, image_wplus, _), cpu_wplus, wall_wplus = timed(
        lambda: project(net, target, ProjectOptions(steps=steps, wplus=True)))
    row["W+"] = {**image_stats(image_wplus, target), "cpu_s": cpu_wplus, "wall_s": wall_wplus}
    options = TuneOptions(steps=steps) if quick else TuneOptions()
    (tuned, tuned_image, _), tune_cpu, tune_wall = timed(lambda: tune(net, target, pivot, options))
    keep_tuned(out, name, target, pivot, tuned, tuned_image)
    images = [target, image, image_wplus, tuned_image]
    sampler, base = Sampler(tuned), Sampler(net)
    seeds = base.map(base.zs(list(seeds)))
    locality = float(np.mean([psnr(a, b) for a, b in zip(sampler.images(seeds), base.images(seeds))]))
    row["tuned"] = {**image_stats(tuned_image, target), "cpu_s": cpu + tune_cpu, "wall_s": wall + tune_wall,
                    "locality_psnr_db": locality}
    before = classifier_probabilities(tuned_image[None], classifiers)
    row["edits"] = {}
    for direction, attr in EDITS.items():
        d = load_direction(direction, tuned)
        p0 = float(before[attr][0])
        sign = 1.0 if p0 < 0.5 else -1.0
        if attr == "Young":
            sign = -sign  # the Age direction lowers P(Young)
        latents = np.stack([move(pivot, d.vector, sign * s, d.layers) for s in STRENGTHS])
        edited = sampler.images(latents)
        shifts = np.abs(classifier_probabilities(edited, classifiers)[attr] - p0)
        i = int(np.argmax(shifts >= MIN_SHIFT)) if (shifts >= MIN_SHIFT).any() else len(STRENGTHS) - 1
        identity = identity_distance_or_none(edited[i], target)
        row["edits"][direction] = {"strength": sign * STRENGTHS[i], "p_before": p0, "shift": float(shifts[i]),
                                   "reached": bool(shifts[i] >= MIN_SHIFT), "identity_distance": identity}
        images.append(edited[i])
    save_image(np.concatenate(images, axis=1), out / "images" / f"{name.replace('/', '_')}.png")
    return row


def run(out: Path, part: str, count: int | None, quick: bool = False) -> None:
    import torch

    from facegen_cli.classifier import load_classifier
    from facegen_cli.networks import load_network
    from facegen_cli.paths import weights_dir

    torch.set_num_threads(1)
    index, parts = (int(v) for v in part.split("/"))
    names = PHOTOS.read_text().split()[:count][index - 1::parts]
    net = load_network("default")
    classifiers = {"celeba": load_classifier(weights_dir() / "classifiers" / "celeba-attributes.safetensors")}
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"results-{index}of{parts}.jsonl"
    done = {json.loads(line)["photo"] for line in log.read_text().splitlines()} if log.exists() else set()
    for name in names:
        if name in done:
            continue
        row = measure(name, net, classifiers, out, quick)
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name}: W {row['W']['psnr_db']:.1f} dB, W+ {row['W+']['psnr_db']:.1f}, tuned "
              f"{row['tuned']['psnr_db']:.1f} ({row['tuned']['cpu_s']:.0f} CPU s)", file=sys.stderr, flush=True)


def mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def report(out: Path) -> list[dict]:
    """The summary of every results-*.jsonl under `out` (one record per method and per edit); the figure of the
    first photos to out/figure.png."""
    from PIL import Image

    from facegen_cli.images import make_grid, save_image

    rows = [json.loads(line) for log in sorted(out.glob("results-*.jsonl")) for line in log.read_text().splitlines()]
    order = PHOTOS.read_text().split()
    rows.sort(key=lambda r: order.index(r["photo"]))
    loads = [r["load"] for r in rows]
    common = {"photos": len(rows), "load_while_measuring": [min(loads), max(loads)]}
    records = []
    for method in ("W", "W+", "tuned"):
        p = [r[method]["psnr_db"] for r in rows]
        found = [r[method]["identity_distance"] for r in rows if r[method]["identity_distance"] is not None]
        records.append({"method": method, "psnr_db_mean": round(float(np.mean(p)), 1), "psnr_db_min": round(min(p), 1),
                        "identity_mean": round(mean(found), 3), "identity_max": round(max(found), 3) if found else None,
                        "under_0.5": sum(v < 0.5 for v in found),
                        "cpu_s_per_photo": round(mean(r[method]["cpu_s"] for r in rows), 1),
                        "wall_s_per_photo": round(mean(r[method]["wall_s"] for r in rows), 1), **common,
                        **({"locality_psnr_db": round(mean(r[method]["locality_psnr_db"] for r in rows), 1)}
                           if method == "tuned" else {})})
    for direction in EDITS:
        e = [r["edits"][direction] for r in rows]
        d = [x["identity_distance"] for x in e if x["identity_distance"] is not None]
        records.append({"edit": direction, "median_abs_strength": float(np.median([abs(x["strength"]) for x in e])),
                        "moved_0.3": sum(x["reached"] for x in e), "identity_mean_after": round(mean(d), 3),
                        "identity_max_after": round(max(d), 3) if d else None,
                        "identity_under_0.5": sum(v < 0.5 for v in d), **common})
    strips = [np.asarray(Image.open(out / "images" / f"{r['photo'].replace('/', '_')}.png")) for r in rows[:8]]
    save_image(make_grid(np.stack(strips), len(strips), 1), out / "figure.png")
    return records


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--select", action="store_true", help="print the photo list")
    parser.add_argument("--work", type=Path, help="folder of results and images")
    parser.add_argument("--part", default="1/1", help="I/K: measure every K-th photo from the I-th")
    parser.add_argument("--photos", type=int, help="only the first N photos of the list")
    parser.add_argument("--report", type=Path, help="the summary of a measured folder")
    args = parser.parse_args()
    if args.select:
        print("\n".join(select()))
        return
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            run(Path(tmp), "1/1", 1, quick=True)
            records = report(Path(tmp))
    elif args.report:
        records = report(args.report)
    elif args.work:
        run(args.work, args.part, args.photos)
        return
    else:
        parser.error("give --select, --work, --report or --quick")
    env, load = harness.machine(), harness.load_average()
    harness.write([{**r, "machine": env, "load": load} for r in records], args.out)


if __name__ == "__main__":
    main()
