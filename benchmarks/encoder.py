"""Encoder projection on held-out photos: PSNR, identity distance and time per photo, beside starting from
w_avg (what an untrained encoder answers) and, for the first N photos, the W optimiser.

The photos are pivotal tuning's (`tuning_photos.txt`: CelebA from 009001, UTKFace from the end of the sorted
list, four wild photos; none trained on), aligned the FFHQ way at the network's size by `align_photo`. Time per
photo is the encoding alone (the encoder's forward pass and one synthesis), CPU and wall, one torch thread; PSNR
and identity distance (dlib) are what `project` reports.

    python -m benchmarks.encoder ENCODER.safetensors [--subset 16] [--tune 4] [--project 4] [--figure F]

--subset N adds a table of the first N photos (pivotal tuning's measured subset in RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import DATA
from benchmarks.machine import cpu_name

PHOTOS = Path(__file__).resolve().parent / "tuning_photos.txt"
W_STEPS = 150  # the W projection as `project --tune` runs it (its pivot)


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def summary(rows: list[dict], method: str) -> str:
    rows = [r for r in rows if method in r]
    p = [r[method]["psnr_db"] for r in rows]
    d = [r[method]["identity_distance"] for r in rows if r[method]["identity_distance"] is not None]
    return (f"| {method} | {len(rows)} | {np.mean(p):.2f} (min {np.min(p):.1f}) | {np.mean(d):.3f} "
            f"(max {np.max(d):.3f}) | {sum(v < 0.5 for v in d)} / {sum(v < 0.6 for v in d)} of {len(rows)} | "
            f"{np.mean([r[method]['cpu_s'] for r in rows]):.3f} | "
            f"{np.mean([r[method]['wall_s'] for r in rows]):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder", type=Path)
    parser.add_argument("--network", default="default")
    parser.add_argument("--project", type=int, default=0, help="run the W optimiser on the first N photos too")
    parser.add_argument("--tune", type=int, default=0, help="tune the network around the encoder's latent (the "
                        "defaults of project --tune) on the first N photos too")
    parser.add_argument("--subset", type=int, default=0, help="a second table of the first N photos")
    parser.add_argument("--figure", type=Path, help="photo | w_avg | encoder (| W) strips of the first 8 photos")
    args = parser.parse_args()

    import torch

    from facegen_cli.encoder.encode import encode
    from facegen_cli.encoder.model import Encoder
    from facegen_cli.encoder.store import EncoderFile, find_encoder
    from facegen_cli.images import make_grid, save_image
    from facegen_cli.latent.project import ProjectOptions, align_photo, image_stats, project
    from facegen_cli.latent.tuning import TuneOptions, tune
    from facegen_cli.networks import load_network

    torch.set_num_threads(1)
    net = load_network(args.network)
    found = find_encoder(args.encoder, net)
    G = net.G_ema
    untrained = Encoder(G.img_resolution, G.img_channels, G.w_dim, G.num_ws).eval()
    untrained.w_avg.copy_(G.mapping.w_avg)
    start = EncoderFile(untrained, net.network_id)
    rows, strips = [], []
    for i, name in enumerate(PHOTOS.read_text().split()):
        target = align_photo(DATA / name, G.img_resolution)
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
        print(json.dumps(row), flush=True)
    training = found.training
    print(f"\n{len(rows)} photos, {cpu_name()}, one torch thread, load average "
          f"{min(r['load'] for r in rows):.1f}-{max(r['load'] for r in rows):.1f}; encoder {args.encoder.name}: "
          f"{training.get('kimg', 0):.1f} kimg, {training.get('seconds', 0) / 60:.0f} min, {training.get('steps', 0)} "
          f"steps\n")
    print("| start | photos | PSNR dB (mean) | identity distance (mean) | under 0.5 / 0.6 | CPU s / photo | "
          "wall s / photo |")
    print("|---|---|---|---|---|---|---|")
    for method in ("w_avg", "encoder", "encoder + tuning", "W optimiser"):
        if any(method in r for r in rows):
            print(summary(rows, method))
    for first in sorted({n for n in (args.subset, args.project, args.tune) if n}):
        print(f"\nthe first {first} photos:")
        for method in ("w_avg", "encoder"):
            print(summary(rows[:first], method))
    if args.figure:
        same = [s for s in strips[:8] if s.shape == strips[0].shape]
        save_image(make_grid(np.stack(same), 1, len(same)), args.figure)
        print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
