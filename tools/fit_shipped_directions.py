"""Refit the shipped attribute classifiers and edit directions of `weights/default.safetensors`.

One command, from the shipped model and the shared face data:

    .venv/bin/python tools/fit_shipped_directions.py                # all: prepare, classifiers, directions, figure
    .venv/bin/python tools/fit_shipped_directions.py --refit-only   # the model changed: keep the classifiers
    .venv/bin/python tools/fit_shipped_directions.py --age-only     # a new age regressor, then refit

Steps (each printed as the facegen command it runs):
1. `facegen prepare` the first 6,000 CelebA photos (40 attributes) and --utk-count UTKFace photos (age), dlib HOG,
   FFHQ-aligned 64 px like the model's training faces, into --work (skipped when already there). The UTKFace
   photos are a seeded shuffle of those with parseable names that no benchmark holds out (HELD_OUT_LISTS: the
   age benchmark's 2,000 faces, the held-out protocol's sets, the tuning photos).
2. `facegen classifier train` on each (age with --age-balance, drawn evenly over its range against readings
   pulled to the mean); the files are halved to fp16 into weights/classifiers/. `--age-only`: the age one only.
3. Sample --samples faces of the default model once (seeds 0.., psi 1), score them with both
   classifiers and fit each attribute's boundary exactly as `facegen directions fit --attr A
   --samples N` does for the same seeds (same scores, same fit), saved to
   weights/directions/<network id>/ where `facegen edit --direction NAME` finds them.
   CelebA's No_Beard is shipped negated as `Beard`; UTKFace's age as `Age` (+ = older). A direction ships only
   when it moves its own attribute as read from the image (controls.reach.own_reach, the shipping gate);
   one that does not is left out (and removed from the folder), its reach printed either way.
4. `facegen edit seed:7 --direction NAME --range -3:3` for each (in this process), stacked into weights/edits.png.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]

from facegen_cli.classifier import load_classifier, read_labelled  # noqa: E402
from facegen_cli.controls.reach import GATE_PSI, own_reach  # noqa: E402
from facegen_cli.fileio import atomic_path  # noqa: E402
from facegen_cli.latent.boundary import fit_boundary, sample_scores  # noqa: E402
from facegen_cli.latent.directions import (Direction, direction_files, known_directions, run_edit,  # noqa: E402
                                           save_direction, shipped_dir)
from facegen_cli.networks import load_network  # noqa: E402
from facegen_cli.sampler import Sampler  # noqa: E402

FACEGEN = str(Path(sys.executable).with_name("facegen"))
WEIGHTS = REPO / "weights"
CLASSIFIERS = WEIGHTS / "classifiers"
CELEBA_CLF = CLASSIFIERS / "celeba-attributes.safetensors"
AGE_CLF = CLASSIFIERS / "utkface-age.safetensors"
# age's `classifier train --balance`: on the age benchmark's faces, 0 / 0.5 / 1 gave MAE 7.4 / 7.6 / 8.3 years and
# 14.9 / 12.9 / 11.4 on faces over 60 (benchmarks/RESULTS.md, "Face estimators in units")
AGE_BALANCE = 0.5
# photos benchmarks measure on, never trained on: the age benchmark's UTKFace faces, the held-out protocol's sets
HELD_OUT_LISTS = [REPO / "benchmarks" / "heldout" / name for name in ("utkface_age.txt", "a.txt", "b.txt")] + [
    REPO / "benchmarks" / "tuning_photos.txt"]
# shipped name -> (classifier file, its attribute, sign): + moves towards the shipped name
DIRECTIONS: dict[str, tuple[Path, str, int]] = {
    "Smiling": (CELEBA_CLF, "Smiling", 1),
    "Male": (CELEBA_CLF, "Male", 1),
    "Young": (CELEBA_CLF, "Young", 1),
    "Age": (AGE_CLF, "age", 1),
    "Eyeglasses": (CELEBA_CLF, "Eyeglasses", 1),
    "Black_Hair": (CELEBA_CLF, "Black_Hair", 1),
    "Blond_Hair": (CELEBA_CLF, "Blond_Hair", 1),
    "Brown_Hair": (CELEBA_CLF, "Brown_Hair", 1),
    "Gray_Hair": (CELEBA_CLF, "Gray_Hair", 1),
    "Bald": (CELEBA_CLF, "Bald", 1),
    "Beard": (CELEBA_CLF, "No_Beard", -1),
    "Mouth_Slightly_Open": (CELEBA_CLF, "Mouth_Slightly_Open", 1),
}


def facegen(*args: str) -> None:
    """Run one facegen command, echoed so the log holds the exact steps."""
    print("$ facegen " + " ".join(args), flush=True)
    subprocess.run([FACEGEN, *args], check=True, cwd=REPO)


def link_folder(source: Path, names: list[str], folder: Path) -> Path:
    """A fresh folder of links to `names` in `source` (what `prepare` reads)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).symlink_to(source / name)
    return folder


def celeba_subset(data: Path, folder: Path, count: int) -> Path:
    """The first `count` CelebA photos (000001.jpg on), the same ones the default model saw first."""
    images = data / "celeba10k" / "images"
    return link_folder(images, sorted(p.name for p in images.iterdir())[:count], folder)


def utk_names(lists: list[Path]) -> list[str]:
    """The UTKFace photos that lists of data-relative paths name, in their order (names as in utkface/images)."""
    lines = [line for path in lists for line in path.read_text().split()]
    return [line.rsplit("/", 1)[-1] for line in lines if line.startswith("utkface/")]


def utk_held_out() -> set[str]:
    """UTKFace photos that benchmarks hold out: the age benchmark's faces and those of the held-out protocol's
    lists and the tuning photos."""
    return set(utk_names(HELD_OUT_LISTS))


def utk_subset(data: Path, folder: Path, count: int, seed: int = 0) -> Path:
    """The first `count` UTKFace photos with parseable names, in an order shuffled with a fixed seed, of those no
    benchmark holds out (a smaller count takes a prefix of a larger one)."""
    images = data / "utkface" / "images"
    held_out = utk_held_out()
    names = sorted(p.name for p in images.iterdir() if p.name.count("_") == 3 and p.name not in held_out)
    random.Random(seed).shuffle(names)
    return link_folder(images, names[:count], folder)


def prepare(raw: Path, out: Path, labels: str) -> Path:
    """FFHQ-aligned 64 px labelled faces, like the model's training set (kept if already there)."""
    if not (out / "dataset.json").exists():
        facegen("prepare", str(raw), str(out), "--detector", "dlib", "--align", "ffhq", "--size", "64",
                "--upsample", "1", "--labels", labels, "-j", "2")
    return out


def halve(src: Path, dest: Path) -> None:
    """Copy a classifier with its float tensors in fp16 (the loader casts them back)."""
    with safe_open(str(src), "pt") as f:
        meta = f.metadata()
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(str(src)).items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def train_classifiers(args: argparse.Namespace) -> None:
    utk = prepare(utk_subset(args.data, args.work / "utk_raw", args.utk_count), args.work / "utk64", "utkface")
    jobs = [(utk, ["--attrs", "age", "--balance", str(args.age_balance)], args.age_epochs, AGE_CLF)]
    if not args.age_only:
        celeba = prepare(celeba_subset(args.data, args.work / "celeba_raw", args.celeba_count),
                         args.work / "celeba64", str(args.data / "celeba10k" / "list_attr_celeba.txt"))
        jobs.insert(0, (celeba, [], args.epochs, CELEBA_CLF))
    for dataset, extra, epochs, dest in jobs:
        full = args.work / dest.name
        facegen("classifier", "train", str(dataset), *extra, "--epochs", str(epochs), "--out", str(full))
        halve(full, dest)


def age_holdout(dataset: Path, path: Path, holdout: float = 0.1, seed: int = 0) -> dict[str, float]:
    """The age classifier on its own held-out split (as `classifier train` draws it): error, correlation, baseline."""
    clf = load_classifier(path)
    images, labels, _ = read_labelled(dataset, ["age"], clf.size)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    val = order[:max(1, int(len(images) * holdout))]
    truth = labels[val.numpy(), 0]
    pred = clf.predict(images[val].float() / 127.5 - 1)[:, 0]
    train_mean = np.delete(labels[:, 0], val.numpy()).mean()
    return {"images": len(val), "mean_abs_error": float(np.abs(pred - truth).mean()),
            "pearson_r": float(np.corrcoef(pred, truth)[0, 1]),
            "mean_abs_error_of_the_mean": float(np.abs(train_mean - truth).mean())}


@torch.inference_mode()
def sample_faces(net, samples: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """W and images of seeds 0..samples-1 at psi 1, as `directions fit` draws them (cached in `work`)."""
    cache = work / f"samples-{net.network_id}-{samples}.npz"
    if cache.exists():
        with np.load(cache) as f:
            return f["w"], f["images"]
    images: list[np.ndarray] = []

    def keep(batch: torch.Tensor) -> np.ndarray:
        images.append(batch.cpu().numpy())
        return np.zeros(len(batch))

    w, _ = sample_scores(net, keep, samples)
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, w=w, images=np.concatenate(images))
    return sample_faces(net, samples, work)


def fit_all(samples: int, ratio: float, work: Path) -> dict[str, float]:
    """Score the sampled faces with every shipped classifier, fit each direction and save those that pass the
    shipping gate; held-out accuracies of the shipped ones."""
    net = load_network(None, "cpu")
    gate = Sampler(net, psi=GATE_PSI)
    w, images = sample_faces(net, samples, work)
    clfs = {path: load_classifier(path) for path in {p for p, _, _ in DIRECTIONS.values()}}
    scores = {path: np.concatenate([clf.predict(torch.from_numpy(chunk))
                                    for chunk in np.array_split(images, max(1, len(images) // 256))])
              for path, clf in clfs.items()}
    folder = shipped_dir(net)
    for stale in folder.parent.glob("*"):
        if stale.is_dir() and stale != folder:
            shutil.rmtree(stale)
    accuracies = {}
    for name, (path, attr, sign) in DIRECTIONS.items():
        normal, accuracy = fit_boundary(w, scores[path][:, clfs[path].index(attr)], ratio)
        info = {"method": "interfacegan", "samples": samples, "ratio": ratio, "seed_start": 0, "psi": 1.0,
                "holdout_accuracy": accuracy, "attr": attr, "classifier": str(path.relative_to(REPO)),
                **({"negated": True} if sign < 0 else {})}
        direction = Direction(name, sign * normal, net.network_id, None, info)
        reach = own_reach(gate, direction)
        print(f"{name} ({'-' if sign < 0 else ''}{attr}): held-out accuracy of the boundary {accuracy:.1%}; {reach}",
              flush=True)
        if not reach.passed:
            for stale in direction_files(folder / f"{name}.npy"):
                stale.unlink(missing_ok=True)
            continue
        save_direction(direction, folder)
        accuracies[name] = accuracy
    return accuracies


def figure(work: Path, seed: int, out: Path) -> None:
    """`facegen edit seed:SEED --direction NAME --range -3:3` for each direction (its engine, in this
    process), labelled and stacked into one PNG."""
    sampler = Sampler(load_network(None, "cpu"))
    strips = []
    shipped = known_directions(sampler.net)
    for name in [name for name in DIRECTIONS if name in shipped]:
        print(f"$ facegen edit seed:{seed} --direction {name} --range -3:3 --steps 7 --out {work / 'edits'}",
              flush=True)
        (path,) = run_edit(sampler, seed, name, work / "edits", span=(-3.0, 3.0), steps=7)
        strips.append((name, Image.open(path).convert("RGB")))
    label_w = 120
    width, height = strips[0][1].size
    sheet = Image.new("RGB", (label_w + width, height * len(strips)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, strip) in enumerate(strips):
        sheet.paste(strip, (label_w, i * height))
        draw.text((4, i * height + height // 2 - 5), name, fill="black")
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared face data")
    parser.add_argument("--work", type=Path, default=REPO.parent / "scratch" / "h9", help="prepared sets, logs")
    parser.add_argument("--celeba-count", type=int, default=6000, help="CelebA photos to prepare (of 10,000)")
    parser.add_argument("--utk-count", type=int, default=12000, help="UTKFace photos to prepare for age")
    parser.add_argument("--epochs", type=int, default=5, help="CelebA classifier training epochs")
    parser.add_argument("--age-epochs", type=int, default=5, help="age classifier training epochs")
    parser.add_argument("--age-balance", type=float, default=AGE_BALANCE, help="as `classifier train --balance`")
    parser.add_argument("--samples", type=int, default=4000, help="faces sampled to fit the directions")
    parser.add_argument("--ratio", type=float, default=0.25, help="as `directions fit --ratio`")
    parser.add_argument("--seed", type=int, default=7, help="the face of the edit figure")
    parser.add_argument("--refit-only", action="store_true", help="keep the shipped classifiers")
    parser.add_argument("--age-only", action="store_true", help="keep the CelebA classifier, train the age one")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    os.environ["FACEGEN_CACHE"] = str(args.work / "cache")  # the figure shows the shipped directions, not a user's
    if not args.refit_only:
        train_classifiers(args)
    for path in (CELEBA_CLF, AGE_CLF):
        print(f"{path.name}: held-out {json.dumps(load_classifier(path).info['holdout'])}", flush=True)
    if (args.work / "utk64" / "dataset.json").exists():
        print(f"age on its held-out faces: {json.dumps(age_holdout(args.work / 'utk64', AGE_CLF))}", flush=True)
    fit_all(args.samples, args.ratio, args.work)
    figure(args.work, args.seed, WEIGHTS / "edits.png")


if __name__ == "__main__":
    main()
