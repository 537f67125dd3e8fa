"""Photos per second of `facegen prepare` for each detector and alignment.

Runs on ../shared/data/wild (105 photos as people take them) and on UTKFace photos (2,000 by default),
each case in a fresh process (the harness), the cases of one photo set side by side. Besides wall-clock
photos/s each record has the CPU seconds of a round (the case's process and its workers), which other
load on a shared machine does not inflate: `workers * photos / median_cpu_s` is the rate on an idle
machine. One round each by default: a round of 2,000 photos takes minutes.

    python -m benchmarks.prepare [--utk 2000] [--cnn-limit 40] [--workers 2] [--sets wild,utkface]
    python -m benchmarks.prepare --quick        # 4 wild photos, four cases, 64 px, one worker

How many faces each detector setting finds, and the landmark check on Haar boxes: `benchmarks.detection`.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import DATA

# (detector, align, extra options); celeba and none crop a fixed window and detect nothing
CASES = [("haar", "ffhq", {}), ("dlib", "ffhq", {}), ("dlib", "ffhq", {"landmarks": 5}), ("dlib", "box", {}),
         ("dlib-cnn", "ffhq", {}), ("-", "celeba", {}), ("-", "none", {})]
QUICK = ("haar/ffhq", "dlib/ffhq", "-/none")


def quick_needs() -> str | None:
    return None if (DATA / "wild").is_dir() else f"no wild photos at {DATA / 'wild'}"


def link_folder(files: list[Path], folder: Path) -> Path:
    """A folder of symlinks to `files` (the data itself is never copied)."""
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


def build(params: dict) -> harness.Work:
    """Each round prepares the case's folder into a fresh dataset."""
    from facegen_cli.prepare.pipeline import PrepareOptions, prepare

    raw, out, options = Path(params["raw"]), Path(params["raw"] + ".out"), PrepareOptions(**params["options"])

    def one_round() -> dict:
        shutil.rmtree(out, ignore_errors=True)
        report = prepare(raw, out, options, workers=params["workers"])
        return {"faces": report["faces"], "rejected": report["faces_rejected"]}

    photos = len(os.listdir(raw))
    return harness.Work(one_round, info={"photos": photos}, units={"photos": photos})


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--utk", type=int, default=2000, help="UTKFace photos to use")
    parser.add_argument("--cnn-limit", type=int, default=40, help="photos per set for the slow CNN detector")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--sets", default="wild,utkface", help="photo sets to run, comma-separated")
    parser.add_argument("--only", help="cases to run, e.g. --only=dlib/ffhq,-/none (default: all)")


def cases(args: argparse.Namespace, folder: Path) -> list[harness.Case]:
    if quick_needs():
        raise SystemExit(quick_needs())
    wild = sorted(p for p in (DATA / "wild").rglob("*") if p.is_file() and p.suffix != ".csv")
    utk = sorted((DATA / "utkface" / "images").iterdir())[:: max(1, 23_707 // args.utk)][: args.utk]
    sets = {"wild": wild, "utkface": utk}
    names, only = args.sets.split(","), args.only.split(",") if args.only else None
    size, workers = args.size, args.workers
    if args.quick:
        sets, names, only, size, workers = {"wild": wild[:4]}, ["wild"], QUICK, 64, 1
    found = []
    for set_name in names:
        files = sets[set_name]
        for detector, align, extra in CASES:
            if only and f"{detector}/{align}" not in only:
                continue
            chosen = files[: args.cnn_limit] if detector == "dlib-cnn" else files
            label = f"{detector}/{align}" + ("/5 points" if extra.get("landmarks") == 5 else "")
            raw = link_folder(chosen, folder / f"{set_name}-{label}".replace("/", "_").replace(" ", "_"))
            opts = {"align": align, "size": size, **extra, **({"detector": detector} if detector != "-" else {})}
            found.append(harness.Case(label, {"raw": str(raw), "options": opts, "workers": workers},
                                      group=f"{set_name} {len(files)}", rounds=1))
    return found


BENCHMARK = harness.Benchmark(build, cases, options, warmup=0)

if __name__ == "__main__":
    harness.main(BENCHMARK)
