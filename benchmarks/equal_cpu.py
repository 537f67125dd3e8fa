"""Train for a fixed amount of CPU time, not wall time, and measure the snapshot reached within it.

    python benchmarks/equal_cpu.py --cpu-minutes 30 --out runs-cmp/A --fid-ref ref1k.zip -- \
        facegen train faces.zip --cfg small --batch 16 --snap 1 --workers 0

The training command runs in its own process group with `--out` appended; its CPU time (user + system,
all threads, and any child it has waited for) is read from /proc every few seconds, each new snapshot is
stamped with the CPU time it appeared at, and the run is stopped once the budget is spent. The last
snapshot within the budget is the run's result: with `--fid-ref`, its clean FID (seeds 0-999, psi 1)
against that image set. So runs that share a machine with other work, or with each other, are compared
at equal CPU-hours; pass `--workers 0` so data loading is counted too. Writes OUT/equal_cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system time of process `pid` and of the children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime + cutime + cstime) / TICKS


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
            cpu = cpu_seconds(proc.pid)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-minutes", type=float, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for the run (given to the command's --out)")
    parser.add_argument("--fid-ref", help="image set for the 1k clean FID of the last snapshot within the budget")
    parser.add_argument("--fid-labels", help="data set whose labels a conditional network draws with")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the training command")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the training command after --")
    args.out.mkdir(parents=True, exist_ok=True)
    budget = args.cpu_minutes * 60
    snaps = train_within(command, args.out, budget)
    within = [s for s in snaps if s["cpu_s"] <= budget]
    record = dict(command=command, cpu_minutes=args.cpu_minutes, snapshots=snaps,
                  result=within[-1] if within else None)
    if args.fid_ref and within:
        record["fid"] = clean_fid(args.fid_ref, within[-1]["snapshot"], args.fid_labels)
    (args.out / "equal_cpu.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record.get("fid", record["result"])))


if __name__ == "__main__":
    sys.exit(main())
