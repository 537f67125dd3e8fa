"""Encoder projection on held-out photos: PSNR, identity distance and time per photo, beside starting from
w_avg (what an untrained encoder answers) and, for the first N photos, the W optimiser.

The photos are pivotal tuning's (`tuning_photos.txt`: CelebA from 009001, UTKFace from the end of the sorted
list, four wild photos; none trained on), aligned the FFHQ way at the network's size by `align_photo`. Time per
photo is the encoding alone (the encoder's forward pass and one synthesis), CPU and wall, one torch thread; PSNR
and identity distance (dlib) are what `project` reports.

    python -m benchmarks.encoder [ENCODER.safetensors] [--subset 16] [--tune 4] [--project 4] [--figure F]
    python -m benchmarks.encoder --quick        # the shipped encoder on the first 2 photos

JSON lines: one per photo, then one summary per start (mean and extremes of PSNR and identity distance,
photos under 0.5 / 0.6, CPU and wall s per photo) over all photos and over the first N (`--subset`,
pivotal tuning's measured subset in RESULTS.md, and the `--tune` / `--project` photos).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import harness
from facegen_cli.encoder.encode import encode
from facegen_cli.encoder.model import Encoder
from facegen_cli.encoder.store import EncoderFile, find_encoder
from facegen_cli.images import make_grid, save_image
from facegen_cli.latent.project import ProjectOptions, align_photo, image_stats, project
from facegen_cli.latent.tuning import TuneOptions, tune
from facegen_cli.networks import load_network

PHOTOS = Path(__file__).resolve().parent / "tuning_photos.txt"
W_STEPS = 150  # the W projection as `project --tune` runs it (its pivot)


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def summary(rows: list[dict], method: str) -> dict:
    """One start's numbers over `rows`."""
    rows = [r for r in rows if method in r]
    p = [r[method]["psnr_db"] for r in rows]
    d = [r[method]["identity_distance"] for r in rows if r[method]["identity_distance"] is not None]
    return {"start": method, "photos": len(rows), "psnr_db_mean": round(float(np.mean(p)), 2),
            "psnr_db_min": round(float(np.min(p)), 1),
            "identity_mean": round(float(np.mean(d)), 3) if d else None,
            "identity_max": round(float(np.max(d)), 3) if d else None,
            "under_0.5": sum(v < 0.5 for v in d), "under_0.6": sum(v < 0.6 for v in d),
            "cpu_s_per_photo": round(float(np.mean([r[method]["cpu_s"] for r in rows])), 3),
            "wall_s_per_photo": round(float(np.mean([r[method]["wall_s"] for r in rows])), 3)}


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("encoder", nargs="?", default="default", help="a file, or default: the shipped one")
    parser.add_argument("--network", default="default")
    parser.add_argument("--project", type=int, default=0, help="run the W optimiser on the first N photos too")
    parser.add_argument("--tune", type=int, default=0, help="tune the network around the encoder's latent (the "
                        "defaults of project --tune) on the first N photos too")
    parser.add_argument("--subset", type=int, default=0, help="a second table of the first N photos")
    parser.add_argument("--figure", type=Path, help="photo | w_avg | encoder (| W) strips of the first 8 photos")
    parser.add_argument("--photos", type=int, help="only the first N photos")
    args = parser.parse_args()
    if args.quick:
        args.photos = 2
    torch.set_num_threads(1)
    net = load_network(args.network)
    found = find_encoder(args.encoder, net)
    G = net.G_ema
    untrained = Encoder(G.img_resolution, G.img_channels, G.w_dim, G.num_ws).eval()
    untrained.w_avg.copy_(G.mapping.w_avg)
    start = EncoderFile(untrained, net.network_id)
    rows, strips = [], []
    for i, name in enumerate(PHOTOS.read_text().split()[:args.photos]):
        target = align_photo(harness.DATA / name, G.img_resolution)
        row: dict = {"photo": name, "load": os.getloadavg()[0]}
        images = [target]
        for method, enc in (("w_avg", start), ("encoder", found)):
            (ws, image, _), cpu, wall = timed(lambda: encode(net, enc, target))
            row[method] = {**image_stats(image, target), "cpu_s": cpu, "wall_s": wall}
            images.append(image)
        if i < args.tune:
            (_, image, _), tune_cpu, tune_wall = timed(lambda: tune(net, target, ws, TuneOptions()))
            row["encoder + tuning"] = {**image_stats(image, target), "cpu_s": cpu + tune_cpu,
                                       "wall_s": wall + tune_wall}
            images.append(image)
        if i < args.project:
            (_, image, _), cpu, wall = timed(lambda: project(net, target, ProjectOptions(steps=W_STEPS)))
            row["W optimiser"] = {**image_stats(image, target), "cpu_s": cpu, "wall_s": wall}
            images.append(image)
        rows.append(row)
        strips.append(np.concatenate(images, axis=0))
        print(f"{name}: encoder {row['encoder']['psnr_db']:.1f} dB", file=sys.stderr, flush=True)
    training = {k: found.training.get(k) for k in ("kimg", "seconds", "steps")}
    methods = [m for m in ("w_avg", "encoder", "encoder + tuning", "W optimiser") if any(m in r for r in rows)]
    firsts = sorted({n for n in (args.subset, args.project, args.tune) if n})
    summaries = [{"first": None, **summary(rows, method)} for method in methods]
    summaries += [{"first": n, **summary(rows[:n], method)} for n in firsts for method in ("w_avg", "encoder")]
    if args.figure:
        same = [s for s in strips[:8] if s.shape == strips[0].shape]
        save_image(make_grid(np.stack(same), 1, len(same)), args.figure)
    env = harness.machine()
    harness.write([{**r, "encoder_file": str(args.encoder), "encoder_training": training, "machine": env}
                   for r in rows + summaries], args.out)


if __name__ == "__main__":
    main()
