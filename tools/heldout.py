"""The held-out protocol: faces the shipped model never trained on, and how far its samples are from them.

The default model trains on the first 6,000 CelebA photos and the first 4,000 UTKFace photos in sort
order (weights/README.md). Two fixed sets of 2,000 faces outside those photos, each 1,200 CelebA and
800 UTKFace faces (the training set's mix), are listed in `benchmarks/heldout/{a,b}.txt`:

    .venv/bin/python tools/heldout.py select   # once: prepare the candidates, write the two lists
    .venv/bin/python tools/heldout.py build    # the lists -> WORK/heldout-{a,b}.zip (facegen prepare)
    .venv/bin/python tools/heldout.py measure default [NETWORK ...]
    .venv/bin/python tools/heldout.py arms RUN_A RUN_B [--known-cpu FILE]   # snapshots at matching CPU points

`select` takes CelebA photos in file order from 006001.jpg and a seeded random sample of the UTKFace
photos with parseable names, prepares them exactly as the training set was prepared (dlib HOG upsampled
once, FFHQ alignment, 64 px), pools the first 2,400 CelebA and 1,600 UTKFace faces in file order, and deals
each pool out of one seeded shuffle, alternately to set A and set B: the two sets are draws from one
distribution, so set B against set A measures what two samples of the same faces differ by. (UTKFace names
begin with the age, so file order is age order: the first lists gave set A the younger half of the pool and
set B the older, and their floor measured that age gap too.) `arms` pairs two training runs' snapshots at equal
CPU time (each snapshot of the run with fewer beside the other's nearest in cumulative `cpu_s`, one JSON line
each), so training settings are
compared at equal CPU-hours by measuring the pairs; a line of a run's stats without `cpu_s` (written before runs
recorded it) takes its value from `--known-cpu` (JSON lines of snapshot and cpu_s), and the run's later lines
count on from it. `measure` reports, for each network, FID, KID and precision/recall of 2,000 samples (seeds 0-1999,
psi 1) against set A, and the real-vs-real floor: set B against set A on the same protocol.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from fit_shipped_directions import REPO, facegen, link_folder

LISTS = REPO / "benchmarks" / "heldout"
PER_SET = {"celeba": 1200, "utkface": 800}
TRAIN_PHOTOS = {"celeba": 6000, "utkface": 4000}  # the first N of each folder in sort order
SETS = ("a", "b")


def image_folder(data: Path, source: str) -> Path:
    return data / ("celeba10k" if source == "celeba" else source) / "images"


def candidates(data: Path, source: str, count: int, seed: int = 0) -> list[str]:
    """`count` photos of `source` that the default model never trained on, in the order sets take them."""
    names = sorted(p.name for p in image_folder(data, source).iterdir())
    unseen = names[TRAIN_PHOTOS[source]:]
    if source == "celeba":
        return unseen[:count]
    parseable = [name for name in unseen if name.count("_") == 3]
    return random.Random(seed).sample(parseable, count)


def prepare(raw: Path, out: Path) -> Path:
    """Prepared exactly as the training set was (weights/README.md, reproduce step 2)."""
    if not (out.with_suffix(".zip")).exists():
        facegen("prepare", str(raw), str(out.with_suffix(".zip")), "--align", "ffhq", "--size", "64",
                "--upsample", "1", "-j", "2")
    return out.with_suffix(".zip")


def link_sources(data: Path, names: dict[str, list[str]], folder: Path) -> Path:
    for source, files in names.items():
        link_folder(image_folder(data, source), files, folder / source)
    return folder


def face_sources(dataset: Path) -> list[str]:
    """`source/file` of every face a prepared zip holds, in its order (one face per photo here)."""
    import zipfile

    with zipfile.ZipFile(dataset) as zf:
        sources = json.loads(zf.read("dataset.json"))["sources"]
    return [info["file"] for _, info in sources]


def select(args: argparse.Namespace) -> None:
    wanted = {source: int(count * 1.15) * len(SETS) for source, count in PER_SET.items()}
    raw = link_sources(args.data, {s: candidates(args.data, s, n) for s, n in wanted.items()},
                       args.work / "candidates")
    faces = face_sources(prepare(raw, args.work / "candidates"))
    lists: dict[str, list[str]] = {name: [] for name in SETS}
    for source, count in PER_SET.items():
        mine = [f for f in faces if f.startswith(source + "/")]
        if len(mine) < count * len(SETS):
            sys.exit(f"only {len(mine)} {source} faces among the candidates; need {count * len(SETS)}")
        for name, dealt in zip(SETS, deal(mine[:count * len(SETS)])):
            lists[name] += dealt
    LISTS.mkdir(parents=True, exist_ok=True)
    for name, lines in lists.items():
        (LISTS / f"{name}.txt").write_text("\n".join(lines) + "\n")
        print(LISTS / f"{name}.txt")


def deal(pool: list[str], seed: int = 0) -> list[list[str]]:
    """`pool` in one seeded shuffle, dealt alternately into len(SETS) equal sets, each in file order."""
    shuffled = random.Random(seed).sample(pool, len(pool))
    return [sorted(shuffled[i::len(SETS)]) for i in range(len(SETS))]


def read_list(name: str) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {source: [] for source in PER_SET}
    for line in (LISTS / f"{name}.txt").read_text().split():
        source, file = line.split("/", 1)
        names[source].append(file)
    return names


def build(args: argparse.Namespace) -> dict[str, Path]:
    """Each listed set prepared into WORK/heldout-NAME.zip; every listed photo must give its face."""
    built = {}
    for name in SETS:
        names, target = read_list(name), args.work / f"heldout-{name}"
        zipped = target.with_suffix(".zip")
        if not zipped.exists():  # linked anew only to prepare: a second measure at the same time reads the zip
            zipped = prepare(link_sources(args.data, names, target), target)
        found = len(face_sources(zipped))
        if found != sum(map(len, names.values())):
            sys.exit(f"{zipped}: {found} faces from {sum(map(len, names.values()))} listed photos")
        built[name] = zipped
    return built


def measure(args: argparse.Namespace) -> None:
    sets = build(args)
    common = ["--psi", "1", "--workers", "0", "--kid", "--pr", "--json"]
    runs = [(spec, [spec, str(sets["a"]), "--seeds", f"0-{args.samples - 1}"]) for spec in args.networks]
    runs.append(("real-vs-real floor", [str(sets["b"]), str(sets["a"])]))
    for label, fid_args in runs:
        print(f"# {label}", flush=True)
        facegen("fid", *fid_args, *common)


def cpu_points(run: Path, known: dict[str, float]) -> list[dict]:
    """A run's snapshots with their cumulative CPU seconds: its stats' cpu_s, on from the `known` value of the last
    line without one (a run resumed from such a line counts from 0 there); where `known` lacks that line's value,
    it and the lines counted from it are left out."""
    from facegen_cli.train.snapshots import read_stats

    points, offset = [], 0.0
    for line in read_stats(run / "stats.jsonl"):
        if "cpu_s" in line:
            cpu = line["cpu_s"] + offset if offset is not None else None
        else:
            cpu = offset = known.get(line["snapshot"])
        if cpu is not None:
            points.append({"snapshot": str(run / line["snapshot"]), "kimg": line["kimg"], "cpu_s": round(cpu, 1)})
    return points


def arms(args: argparse.Namespace) -> None:
    if len(args.networks) != 2:
        sys.exit("arms: give two run folders")
    known = {}
    if args.known_cpu:
        lines = [json.loads(line) for line in args.known_cpu.read_text().splitlines() if line.strip()]
        known = {line["snapshot"]: line["cpu_s"] for line in lines if line.get("cpu_s") is not None}
    a, b = (cpu_points(Path(run), known) for run in args.networks)
    few, many = (a, b) if len(a) <= len(b) else (b, a)
    for point in few if many else []:
        near = min(many, key=lambda other: abs(other["cpu_s"] - point["cpu_s"]))
        pair = (point, near) if few is a else (near, point)
        print(json.dumps({key: [p[key] for p in pair] for key in ("cpu_s", "kimg", "snapshot")}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("select", "build", "measure", "arms"))
    parser.add_argument("networks", nargs="*", default=["default"],
                        help="networks to measure (measure), two run folders (arms)")
    parser.add_argument("--known-cpu", type=Path, help="cpu_s of snapshots whose stats lines lack it (arms)")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=REPO / "out" / "heldout", help="prepared sets")
    parser.add_argument("--samples", type=int, default=2000, help="generated images per network")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    {"select": select, "build": build, "measure": measure, "arms": arms}[args.step](args)


if __name__ == "__main__":
    main()
