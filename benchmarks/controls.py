"""How well `facegen edit SRC --set CONTROL=VALUE` hits its targets on the shipped model, and what else moves.

    python -m benchmarks.controls [--seeds 0-99] [--controls Age,Yaw,Pitch,Smiling] [--log FILE.jsonl]
    python -m benchmarks.controls --quick      # seed 0, Smiling
    python -m benchmarks.controls --keep-identity --log FILE.jsonl   # the same edits keeping identity too

For each seed (psi 0.7) and each request below, `controls.steer` moves the face along the fitted controls
(the kept attributes of KEEP projected out) and the estimators read the result. Targets: median |error|
per control; kept attributes: the share of edits whose every kept reading moved at most 0.15 (probability)
or 5 years; identity: the share within dlib distance 0.5 of the source; faces: the share of results in
which dlib's HOG detector finds a face (the image enlarged to 256 px, no fallback box). One JSON line per
edit goes to --log (a second run with the same --log skips the edits already there); the summary, one JSON
object per control and target and per control, goes to --out (default stdout). `--controls` picks the
requests: by default those with goals (above); the others
(Mouth_Slightly_Open 0.1/0.9, Black_Hair and Blond_Hair 0.9: the controls that ship besides) are measured the same way.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks import harness
from facegen_cli.controls.steer import steer
from facegen_cli.controls.store import CONTROLS
from facegen_cli.networks import load_network
from facegen_cli.prepare.detect import detect_faces
from facegen_cli.sampler import Sampler

REQUESTS = {"Age": (20, 40, 60), "Yaw": (-20, 0, 20), "Pitch": (-10, 10), "Smiling": (0.1, 0.9),
            "Mouth_Slightly_Open": (0.1, 0.9), "Black_Hair": (0.9,), "Blond_Hair": (0.9,)}
MAIN = "Age,Yaw,Pitch,Smiling"  # the requests with goals; the others are measured the same way
GOALS = {"Age": 6.0, "Yaw": 5.0, "Pitch": 5.0, "Smiling": 0.15}  # median |error| the request should reach
KEEP = {"Age": ["Male", "Smiling"], "Yaw": ["Age", "Male", "Smiling"], "Pitch": ["Age", "Male", "Smiling"],
        "Smiling": ["Age", "Male"], "Mouth_Slightly_Open": ["Age", "Male"], "Black_Hair": ["Age", "Male", "Smiling"],
        "Blond_Hair": ["Age", "Male", "Smiling"]}
KEPT_LIMIT = {"years": 5.0, "probability": 0.15}
IDENTITY_LIMIT = 0.5


def face_found(image: np.ndarray) -> bool:
    """dlib's HOG finds a face in the image enlarged to 256 px."""
    big = cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC)
    return bool(detect_faces(big))


def kept_limit(name: str) -> float:
    """How far a kept reading may move: in its control's unit (5 years for age), else as a probability (0.15)."""
    return KEPT_LIMIT[CONTROLS[name].unit if name in CONTROLS else "probability"]


def kept_moved(row: dict) -> bool:
    """Whether every kept reading stayed within its limit."""
    for name, v in row["kept"].items():
        if v["before"] is None or v["after"] is None or abs(v["after"] - v["before"]) > kept_limit(name):
            return False
    return True


def run(seeds: list[int], controls: list[str], log_path: Path, keep_identity: bool = False) -> None:
    """Each edit not yet in `log_path`, appended to it (with identity among the kept when `keep_identity`)."""
    rows = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.exists() else []
    done = {(r["seed"], r["control"], r["target"]) for r in rows}
    sampler = Sampler(load_network(None, "cpu"), psi=0.7)
    with open(log_path, "a") as log:
        for seed in seeds:
            ws = sampler.seed_latent(seed)
            for control in controls:
                for target in REQUESTS[control]:
                    if (seed, control, target) in done:
                        continue
                    start = time.perf_counter()
                    result = steer(sampler, ws, {control: target}, KEEP[control] + ["identity"] * keep_identity)
                    row = {"seed": seed, "control": control, "target": target, **result.summary(),
                           "face": face_found(result.image), "seconds": round(time.perf_counter() - start, 2)}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
            print(f"seed {seed} done", file=sys.stderr, flush=True)


def numbers(sel: list[dict], control: str) -> dict:
    """Median |error|, and the shares met, kept within limits, within the identity limit, with a face found."""
    err = np.array([abs(r["achieved"][control] - r["target"]) for r in sel])
    ident = np.array([r["identity_distance"] if r["identity_distance"] is not None else np.inf for r in sel])
    return {"edits": len(sel), "median_abs_error": round(float(np.median(err)), 2), "goal": GOALS.get(control),
            "met": round(float(np.mean([r["met"][control] for r in sel])), 3),
            "kept_within_limits": round(float(np.mean([kept_moved(r) for r in sel])), 3),
            f"identity_within_{IDENTITY_LIMIT}": round(float(np.mean(ident <= IDENTITY_LIMIT)), 3),
            "median_identity": round(float(np.median(ident)), 3),
            "face_found": round(float(np.mean([r["face"] for r in sel])), 3),
            "median_renders": float(np.median([r["renders"] for r in sel])),
            "median_s": round(float(np.median([r["seconds"] for r in sel])), 1)}


def kept_change(sel: list[dict], name: str) -> dict:
    """Median and 90th percentile |change| of one kept reading."""
    moved = np.array([abs(r["kept"][name]["after"] - r["kept"][name]["before"]) for r in sel
                      if r["kept"][name]["after"] is not None and r["kept"][name]["before"] is not None])
    return {"median": round(float(np.median(moved)), 3), "p90": round(float(np.percentile(moved, 90)), 3)}


def summarise(log: Path) -> list[dict]:
    """One record per control and target, then one per control with its kept readings' changes."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    seeds = sorted({r["seed"] for r in rows})
    common = {"seeds": f"{seeds[0]}-{seeds[-1]}", "psi": 0.7}
    records = []
    for control in (c for c in REQUESTS if any(r["control"] == c for r in rows)):
        sel = [r for r in rows if r["control"] == control]
        for target in (t for t in REQUESTS[control] if any(r["target"] == t for r in sel)):
            records.append({"control": control, "target": target,
                            **numbers([r for r in sel if r["target"] == target], control), **common})
        records.append({"control": control, "target": "all", **numbers(sel, control),
                        "kept_change": {name: kept_change(sel, name) for name in KEEP[control]}, **common})
    return records


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--seeds", default="0-99", help="FIRST-LAST")
    parser.add_argument("--log", type=Path, default=harness.ROOT.parent / "scratch" / "controls" / "bench.jsonl",
                        help="one JSON line per edit; kept between runs")
    parser.add_argument("--controls", default=MAIN, help=f"comma-separated, of {', '.join(REQUESTS)}")
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--keep-identity", action="store_true",
                        help="keep identity too (`edit --set ... --keep-identity`); use its own --log")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            args.seeds, args.controls, args.log = "0-0", "Smiling", Path(tmp, "bench.jsonl")
        first, last = (int(x) for x in args.seeds.split("-"))
        args.log.parent.mkdir(parents=True, exist_ok=True)
        if not args.summary_only:
            run(list(range(first, last + 1)), args.controls.split(","), args.log, args.keep_identity)
        records = summarise(args.log)
    env, load = harness.machine(), harness.load_average()
    harness.write([{**r, "machine": env, "load": load} for r in records], args.out)


if __name__ == "__main__":
    main()
