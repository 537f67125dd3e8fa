"""Photos per second of `facegen prepare` for each detector and alignment.

Runs on ../shared/data/wild (105 photos as people take them) and on UTKFace photos
(2,000 by default), each case in a fresh process, and prints a Markdown table. Besides wall-clock
photos/s it reports CPU time per photo (the case's process and its workers), which other load on
a shared machine does not inflate; `workers / cpu_s_per_photo` is the rate on an idle machine.

    .venv/bin/python benchmarks/prepare.py [--utk 2000] [--cnn-limit 40] [--workers 2]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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


def _one(raw: str, out: str, options: dict, workers: int) -> dict:
    """Time one prepare run in this process; returns photos, faces and photos/s."""
    from facegen_cli.prepare.pipeline import PrepareOptions, prepare

    start = time.perf_counter()
    report = prepare(raw, out, PrepareOptions(**options), workers=workers)
    seconds = time.perf_counter() - start
    return {"photos": report["photos"], "faces": report["faces"], "seconds": round(seconds, 1),
            "photos_per_s": round(report["photos"] / seconds, 2)}


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
    parser.add_argument("--sets", default="wild,utkface", help="which photo sets to run, comma-separated")
    parser.add_argument("--only", help="cases to run, e.g. --only=dlib/ffhq,-/none (default: all)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one timed run, as JSON
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_one(**json.loads(args.case))))
        return
    if not (DATA / "wild").is_dir():
        sys.exit(f"no face data at {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        wild = sorted(p for p in (DATA / "wild").rglob("*") if p.is_file())
        utk = sorted((DATA / "utkface" / "images").iterdir())[:: max(1, 23_707 // args.utk)][: args.utk]
        sets = {name: files for name, files in (("wild", wild), ("utkface", utk)) if name in args.sets.split(",")}
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
