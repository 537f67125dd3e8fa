"""Edits that keep the person: plain edits against kept edits (`edit --keep-identity`) on tuned photos.

The photos are the first N of `tuning_photos.txt` (faces the shipped model never trained on), each aligned
at 64 px, W-projected PIVOT_STEPS steps and tuned with the defaults, as `project --tune` does (kept in --work,
so a second run reuses them, as it reuses those `benchmarks.tuning --work` keeps). Per photo and edit
(Smiling, Age held as P(Young), Blond_Hair, Black_Hair): the plain edit at the smallest strength of STRENGTHS
that moves the held probability of the shipped CelebA classifier by at least MIN_SHIFT (8 units when none
does), then the kept edit started at that strength and held to the same shift; the dlib identity distance
of each to the aligned photo, the shift, the CPU seconds.

    python -m benchmarks.keep_edit --work DIR [--photos 12] [--figure benchmarks/keep_edit.png]
    python -m benchmarks.keep_edit --quick      # one photo, 5 steps of projection, tuning and search: a check
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import harness
from benchmarks.harness import DATA
from benchmarks.tuning import MIN_SHIFT, PHOTOS, PIVOT_STEPS, keep_tuned

EDITS = ("Smiling", "Age", "Blond_Hair", "Black_Hair")
STRENGTHS = np.round(np.arange(0.25, 8.01, 0.25), 2)  # the plain edit's grid


def tuned_photo(work: Path, name: str, net, steps: int):
    """The aligned photo, its W pivot and its tuned network, made once and kept in `work`."""
    from facegen_cli.latent.project import ProjectOptions, align_photo, project
    from facegen_cli.latent.tuning import TuneOptions, tune
    from facegen_cli.networks import load_network

    stem = name.replace("/", "_")
    arrays, network = work / f"{stem}.npz", work / f"{stem}-tuned.safetensors"
    if not arrays.is_file():
        target = align_photo(DATA / name, 64)
        pivot, _, _ = project(net, target, ProjectOptions(steps=steps))
        tuned, image, _ = tune(net, target, pivot, TuneOptions(steps=steps) if steps < PIVOT_STEPS else TuneOptions())
        keep_tuned(work, name, target, pivot, tuned, image)
    saved = np.load(arrays)
    return stem, saved["target"], saved["pivot"], load_network(str(network))


def measure(work: Path, photos: int, pivot_steps: int, steps: int,
            edits: tuple[str, ...]) -> tuple[list[dict], list[np.ndarray]]:
    import torch

    from facegen_cli.latent.directions import load_direction, move
    from facegen_cli.latent.keep_edit import held_reading, keep_edit
    from facegen_cli.metrics.identity import identity_distance_or_none
    from facegen_cli.metrics.perceptual import Perceptual
    from facegen_cli.networks import load_network
    from facegen_cli.sampler import Sampler

    torch.set_num_threads(1)
    base = load_network("default")
    perceptual = Perceptual()
    work.mkdir(parents=True, exist_ok=True)
    records, rows = [], []
    for name in PHOTOS.read_text().split()[:photos]:
        stem, photo, pivot, tuned = tuned_photo(work, name, base, pivot_steps)
        sampler = Sampler(tuned)
        source = sampler.images(pivot[None])[0]
        row = [photo, source]
        for edit in edits:
            d = load_direction(edit, tuned)
            classifier, attribute = held_reading(d)
            index = classifier.index(attribute)

            def read(images: np.ndarray) -> np.ndarray:
                return classifier.predict(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)[:, index]

            start = read(source[None])[0]
            up = 1.0 if start < 0.5 else -1.0  # the probability moves away from its side
            sign = -up if attribute == "Young" else up  # the Age direction points to older, P(Young) down
            t0 = time.process_time()
            images = sampler.images(np.stack([move(pivot, d.vector, sign * s) for s in STRENGTHS]))
            shifts = np.abs(read(images) - start)
            reached = np.nonzero(shifts >= MIN_SHIFT)[0]
            plain_cpu = time.process_time() - t0
            i = int(reached[0]) if len(reached) else len(STRENGTHS) - 1
            t0 = time.process_time()
            kept = keep_edit(sampler, pivot, d, sign * STRENGTHS[i], least_change=MIN_SHIFT, steps=steps,
                             perceptual=perceptual)
            kept_cpu = time.process_time() - t0
            records.append({"photo": stem, "edit": edit, "held": attribute, "strength": float(STRENGTHS[i]),
                            "plain_reached": bool(len(reached)), "plain_shift": float(shifts[i]),
                            "plain_identity": identity_distance_or_none(images[i], photo), "plain_cpu_s": plain_cpu,
                            "kept_strength": abs(kept.strength), "kept_shift": abs(kept.change),
                            "kept_reached": abs(kept.change) >= MIN_SHIFT,
                            "kept_identity": identity_distance_or_none(kept.image, photo),
                            "kept_correction": kept.correction, "kept_cpu_s": kept_cpu})
            row += [images[i], kept.image]
            print(stem, edit, records[-1]["plain_identity"], records[-1]["kept_identity"], flush=True,
                  file=sys.stderr)
        rows.append(np.concatenate(row, axis=1))
    return records, rows


def summary(records: list[dict]) -> list[dict]:
    """Per edit and kind: reached, kept under 0.5 (of all photos), mean identity of the reached, shift, CPU s."""
    out = []
    for edit in EDITS:
        rs = [r for r in records if r["edit"] == edit]
        for kind in ("plain", "kept"):
            reached = [r for r in rs if r[f"{kind}_reached"]]
            ids = [r[f"{kind}_identity"] for r in reached if r[f"{kind}_identity"] is not None]
            if rs:
                out.append({"edit": edit, "kind": kind, "photos": len(rs), "reached": len(reached),
                            "kept_under_0.5": sum(v <= 0.5 for v in ids),
                            "identity_mean": round(float(np.mean(ids)), 3) if ids else None,
                            "shift_mean": round(float(np.mean([r[f"{kind}_shift"] for r in rs])), 3),
                            "cpu_s": round(float(np.mean([r[f"{kind}_cpu_s"] for r in rs])), 2)})
    return out


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--work", type=Path, help="where the tuned photos are kept")
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--steps", type=int, default=80, help="Adam steps of each kept edit")
    parser.add_argument("--figure", type=Path, help="a PNG: photo, reconstruction, then plain and kept per edit")
    args = parser.parse_args()
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            records, rows = measure(Path(tmp), 1, 5, 5, ("Age",))
    elif args.work:
        records, rows = measure(args.work, args.photos, PIVOT_STEPS, args.steps, EDITS)
    else:
        parser.error("give --work or --quick")
    if args.figure:
        from facegen_cli.images import save_image

        save_image(np.concatenate(rows, axis=0), args.figure)
    harness.write([{**r, "machine": harness.machine(), "load": harness.load_average()}
                   for r in [*records, *summary(records)]], args.out)


if __name__ == "__main__":
    main()
