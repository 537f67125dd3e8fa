"""Train for a fixed amount of CPU time, not wall time, and measure the snapshot reached within it.

    python -m benchmarks.equal_cpu --cpu-minutes 30 --run runs-cmp/A --fid-ref ref1k.zip -- \
        facegen train faces.zip --cfg small --batch 16 --snap 1 --workers 0
    python -m benchmarks.equal_cpu --quick     # a tiny network on 16 CelebA faces for 0.3 CPU-minutes

The training command runs in its own process group with `--out RUN` appended; its CPU time (user + system,
all threads, and any child it has waited for) is read from /proc every few seconds, each new snapshot is
stamped with the CPU time it appeared at, and the run is stopped once the budget is spent. The last
snapshot within the budget is the run's result: with `--fid-ref`, its clean FID (seeds 0-999, psi 1)
against that image set. So runs that share a machine with other work, or with each other, are compared
at equal CPU-hours; pass `--workers 0` so data loading is counted too. One JSON object: the command,
each snapshot with its CPU and wall seconds, the result, the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from benchmarks import harness
from facegen_cli.train.cputime import process_cpu_seconds

CELEBA = harness.DATA / "celeba10k" / "images"
FACE_BOX = (12, 22, 76, 86)  # CelebA's classic 64x64 face box at half resolution
QUICK = ["--cbase", "512", "--cmax", "64", "--map", "2", "--batch", "4", "--workers", "0", "--device", "cpu",
         "--kimg", "0.032", "--snap", "0.016"]  # a tiny network: a snapshot every 4 steps


def snapshots(out: Path) -> list[Path]:
    return sorted(out.glob("*/network-snapshot-*.safetensors"))


def train_within(command: list[str], out: Path, budget_s: float, poll_s: float = 2.0) -> list[dict]:
    """Run `command --out OUT` until it has used `budget_s` of CPU time; each snapshot with its CPU time."""
    with open(out / "train.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([*command, "--out", str(out)], start_new_session=True, stdout=log,
                                stderr=subprocess.STDOUT)
    start, seen = time.time(), {}
    try:
        while proc.poll() is None:
            cpu = process_cpu_seconds(proc.pid, waited_children=True)
            for path in snapshots(out):
                wall = round(time.time() - start, 1)
                seen.setdefault(path, dict(snapshot=str(path), cpu_s=round(cpu, 1), wall_s=wall))
            if cpu >= budget_s:
                break
            time.sleep(poll_s)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return sorted(seen.values(), key=lambda s: s["cpu_s"])


def clean_fid(ref: str, network: str, labels_from: str | None = None) -> dict:
    """The 1k protocol: seeds 0-999 at psi 1 against `ref`, clean mode (a conditional network with the labels
    of `labels_from`'s images)."""
    labels = ["--labels-from", labels_from] if labels_from else []
    done = subprocess.run(["facegen", "fid", ref, network, "--seeds", "0-999", "--psi", "1", "--json", *labels],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def quick_needs() -> str | None:
    return None if CELEBA.is_dir() else f"no CelebA images at {CELEBA}"


def quick_command(folder: Path) -> list[str]:
    """Training a tiny network on 16 CelebA faces at 32 px saved in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 17):
        with Image.open(CELEBA / f"{i:06d}.jpg") as im:
            im.convert("RGB").crop(FACE_BOX).resize((32, 32), Image.LANCZOS).save(folder / f"{i:06d}.png")
    return [sys.executable, "-c", "from facegen_cli.cli.main import main; main()", "train", str(folder), *QUICK]


def main() -> None:
    parser = harness.arguments(__doc__)
    parser.add_argument("--cpu-minutes", type=float)
    parser.add_argument("--run", type=Path, help="folder for the run (given to the command's --out)")
    parser.add_argument("--fid-ref", help="image set for the 1k clean FID of the last snapshot within the budget")
    parser.add_argument("--fid-labels", help="data set whose labels a conditional network draws with")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the training command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            command, args.cpu_minutes, args.run = quick_command(Path(tmp, "faces")), 0.3, Path(tmp, "run")
        if not command or args.cpu_minutes is None or args.run is None:
            parser.error("give --cpu-minutes, --run and the training command after --")
        args.run.mkdir(parents=True, exist_ok=True)
        load_before = harness.load_average()
        budget = args.cpu_minutes * 60
        snaps = train_within(command, args.run, budget)
        within = [s for s in snaps if s["cpu_s"] <= budget]
        record = dict(command=command, cpu_minutes=args.cpu_minutes, snapshots=snaps,
                      result=within[-1] if within else None)
        if args.fid_ref and within:
            record["fid"] = clean_fid(args.fid_ref, within[-1]["snapshot"], args.fid_labels)
    record.update(machine=harness.machine(), load={"before": load_before, "after": harness.load_average()})
    harness.write([record], args.out)


if __name__ == "__main__":
    main()
