"""How well `facegen edit SRC --set CONTROL=VALUE` hits its targets on the shipped model, and what else moves.

    python benchmarks/controls.py [--seeds 0-99] [--controls Age,Yaw,Pitch,Smiling] [--out FILE.jsonl]

For each seed (psi 0.7) and each request below, `controls.steer` moves the face along the fitted controls
(the kept attributes of KEEP projected out) and the estimators read the result. Targets: median |error|
per control; kept attributes: the share of edits whose every kept reading moved at most 0.15 (probability)
or 5 years; identity: the share within dlib distance 0.5 of the source; faces: the share of results in
which dlib's HOG detector finds a face (the image enlarged to 256 px, no fallback box). One JSON line per
edit goes to --out (a second run with the same --out skips the edits already there), then a Markdown
summary on stdout. `--controls` picks the requests: by default those with goals (above); the others
(Mouth_Slightly_Open 0.1/0.9, Eyeglasses and each hair colour 0.9) are measured the same way.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402

from facegen_cli.controls.steer import steer  # noqa: E402
from facegen_cli.controls.store import CONTROLS  # noqa: E402
from facegen_cli.networks import load_network  # noqa: E402
from facegen_cli.prepare.detect import detect_faces  # noqa: E402
from facegen_cli.sampler import Sampler  # noqa: E402

REQUESTS = {"Age": (20, 40, 60), "Yaw": (-20, 0, 20), "Pitch": (-10, 10), "Smiling": (0.1, 0.9),
            "Mouth_Slightly_Open": (0.1, 0.9), "Eyeglasses": (0.9,), "Black_Hair": (0.9,), "Blond_Hair": (0.9,),
            "Brown_Hair": (0.9,), "Gray_Hair": (0.9,)}
MAIN = "Age,Yaw,Pitch,Smiling"  # the requests with goals; the others are measured the same way
GOALS = {"Age": 6.0, "Yaw": 5.0, "Pitch": 5.0, "Smiling": 0.15}  # median |error| the request should reach
HAIR_KEEP = ["Age", "Male", "Smiling"]
KEEP = {"Age": ["Male", "Smiling", "Eyeglasses"], "Yaw": ["Age", "Male", "Smiling"],
        "Pitch": ["Age", "Male", "Smiling"], "Smiling": ["Age", "Male", "Eyeglasses"],
        "Mouth_Slightly_Open": ["Age", "Male", "Eyeglasses"], "Eyeglasses": HAIR_KEEP, "Black_Hair": HAIR_KEEP,
        "Blond_Hair": HAIR_KEEP, "Brown_Hair": HAIR_KEEP, "Gray_Hair": HAIR_KEEP}
KEPT_LIMIT = {"years": 5.0, "probability": 0.15}
IDENTITY_LIMIT = 0.5


def face_found(image: np.ndarray) -> bool:
    """dlib's HOG finds a face in the image enlarged to 256 px."""
    big = cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC)
    return bool(detect_faces(big))


def kept_moved(row: dict) -> bool:
    """Whether every kept reading stayed within its limit."""
    for name, v in row["kept"].items():
        unit = CONTROLS[name].unit if name in CONTROLS else "probability"
        if v["before"] is None or v["after"] is None or abs(v["after"] - v["before"]) > KEPT_LIMIT[unit]:
            return False
    return True


def run(seeds: list[int], controls: list[str], out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["seed"], r["control"], r["target"]) for r in rows}
    sampler = Sampler(load_network(None, "cpu"), psi=0.7)
    with open(out, "a") as log:
        for seed in seeds:
            ws = sampler.seed_latent(seed)
            for control in controls:
                for target in REQUESTS[control]:
                    if (seed, control, target) in done:
                        continue
                    start = time.perf_counter()
                    result = steer(sampler, ws, {control: target}, KEEP[control])
                    row = {"seed": seed, "control": control, "target": target, **result.summary(),
                           "face": face_found(result.image), "seconds": round(time.perf_counter() - start, 2)}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
            print(f"seed {seed} done", file=sys.stderr, flush=True)


def summarise(out: Path) -> None:
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    seeds = sorted({r["seed"] for r in rows})
    print(f"# Explicit controls ({cpu_name()}, {time.strftime('%Y-%m-%d')}): seeds {seeds[0]}-{seeds[-1]} "
          f"({len(seeds)}), psi 0.7\n")
    print("| control | target | median abs error | goal | met tolerance | kept within limits | identity <= 0.5 | "
          "face found | median renders | median s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    present = [c for c in REQUESTS if any(r["control"] == c for r in rows)]
    for control in present:
        for target in REQUESTS[control]:
            sel = [r for r in rows if r["control"] == control and r["target"] == target]
            if not sel:
                continue
            err = np.array([abs(r["achieved"][control] - target) for r in sel])
            ident = np.array([r["identity_distance"] if r["identity_distance"] is not None else np.inf for r in sel])
            print(f"| {control} | {target:g} | {np.median(err):.2f} | {GOALS.get(control, '-')} | "
                  f"{np.mean([r['met'][control] for r in sel]):.0%} | {np.mean([kept_moved(r) for r in sel]):.0%} | "
                  f"{np.mean(ident <= IDENTITY_LIMIT):.0%} | {np.mean([r['face'] for r in sel]):.0%} | "
                  f"{np.median([r['renders'] for r in sel]):.0f} | {np.median([r['seconds'] for r in sel]):.1f} |")
    print("\n| control | median abs error | goal | kept within limits (goal 90 %) | identity <= 0.5 (goal 80 %) | "
          "median identity | face found (goal 95 %) |\n|---|---:|---:|---:|---:|---:|---:|")
    for control in present:
        sel = [r for r in rows if r["control"] == control]
        err = np.array([abs(r["achieved"][control] - r["target"]) for r in sel])
        ident = np.array([r["identity_distance"] if r["identity_distance"] is not None else np.inf for r in sel])
        print(f"| {control} | {np.median(err):.2f} | {GOALS.get(control, '-')} | "
              f"{np.mean([kept_moved(r) for r in sel]):.0%} | {np.mean(ident <= IDENTITY_LIMIT):.0%} | "
              f"{np.median(ident):.3f} | {np.mean([r['face'] for r in sel]):.0%} |")
    print("\nkept attributes, median |change| (and 90th percentile):")
    for control in present:
        sel = [r for r in rows if r["control"] == control]
        parts = []
        for name in KEEP[control]:
            moved = np.array([abs(r["kept"][name]["after"] - r["kept"][name]["before"]) for r in sel
                              if r["kept"][name]["after"] is not None and r["kept"][name]["before"] is not None])
            parts.append(f"{name} {np.median(moved):.3f} ({np.percentile(moved, 90):.3f})")
        print(f"- {control}: " + ", ".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-99", help="FIRST-LAST")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "scratch" / "controls"
                        / "bench.jsonl")
    parser.add_argument("--controls", default=MAIN, help=f"comma-separated, of {', '.join(REQUESTS)}")
    parser.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    first, last = (int(x) for x in args.seeds.split("-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.summary_only:
        run(list(range(first, last + 1)), args.controls.split(","), args.out)
    summarise(args.out)


if __name__ == "__main__":
    main()
