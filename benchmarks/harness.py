"""The one runner of facegen's benchmarks, and the pieces every measurement script shares.

A timing benchmark is a list of cases and a `build(params) -> Work` function. Each case runs in a
fresh Python process (`python -m benchmarks.harness --serve MODULE:build PARAMS`), which builds its
work once and then times one round per request. The cases of one group run side by side, round by
round, each leading in turn (A B, B A, ...), so all see the same machine load; groups run one after
another. Each case's result is one JSON object: the machine and its load average, the wall and CPU
seconds of every timed round and their medians, the rate of each unit of work per wall second and per
CPU second (which other load on a shared machine dilutes less), the median over rounds of the group's
first case's round time over this one's (`vs_first`), the process's peak RSS, and, where cases keep
an output, its largest difference from the cases named.

    python -m benchmarks.generate --quick          # tiny sizes, one round: a check
    python -m benchmarks.generate --rounds 5 --out generate.jsonl

Measurements that are not timings use `arguments`, `machine` and `write` alone.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from benchmarks.machine import cpu_name, memory_gib
from facegen_cli.fileio import atomic_open

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"  # the real face data the measurements read


@dataclass
class Case:
    """One case: what its process builds (`params`, JSON), the group it alternates within, its timed rounds."""

    name: str
    params: dict = field(default_factory=dict)
    group: str = ""
    rounds: int = 5
    env: dict[str, str] = field(default_factory=dict)  # for its process (PYTHONPATH is prepended)
    compare_to: tuple[str, ...] = ()  # cases whose kept output this one's is compared with (default: group's first)


@dataclass
class Work:
    """What a case's process built: one round of work, facts about it, and optionally an output to compare."""

    round: Callable[[], dict | None]  # a dict it returns is kept per round
    info: dict = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)  # per round, e.g. {"images": 8} -> images_per_s
    output: object = None  # a tensor, saved for the comparison of cases
    finish: Callable[[], dict] | None = None  # facts after the last round, merged into info


@dataclass
class Benchmark:
    """A timing benchmark: its cases (from the options and a temporary folder for the run) and their build."""

    build: Callable[[dict], Work]
    cases: Callable[[argparse.Namespace, Path], list[Case]]
    options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    warmup: int = 1


def arguments(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the options every measurement shares: --out (JSON lines; default stdout) and --quick."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the JSON here instead of stdout")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round: a check that it runs")
    return parser


def torch_version() -> str | None:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    """The machine a measurement runs on: CPU, cores, memory, Python, torch and its threads, date."""
    record = {"cpu": cpu_name(), "cores": os.cpu_count(), "memory_gib": round(memory_gib(), 1),
              "python": platform.python_version(), "torch": torch_version(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "date": datetime.date.today().isoformat()}
    if "torch" in sys.modules:
        record["torch_threads"] = sys.modules["torch"].get_num_threads()
    return record


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write(records: Iterable[dict], out: Path | None) -> None:
    """One JSON object per line, to `out` (replaced only once complete) or stdout."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_open(out, "w") as f:
        f.write(text)


def cpu_seconds() -> float:
    """User + system seconds of this process and of the children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def seconds_per_call(fn: Callable[[], object], device: str, calls: int) -> float:
    """Seconds per call over `calls` back-to-back calls, a CUDA device's queue drained at both ends."""
    sync = device.startswith("cuda")
    if sync:
        sys.modules["torch"].cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if sync:
        sys.modules["torch"].cuda.synchronize(device)
    return (time.perf_counter() - start) / calls


def calls_for(fn: Callable[[], object], device: str, target_s: float, most: int = 1000) -> int:
    """How many calls make one round last about `target_s` (after a warm-up call)."""
    seconds_per_call(fn, device, 1)
    once = seconds_per_call(fn, device, 1)
    return max(1, min(most, int(target_s / max(once, 1e-6))))


# ---- a case's process ----

def serve(target: str, params: dict, threads: int | None, output: str) -> None:
    """Build the case, then time one round per `round` line on stdin; replies are JSON lines."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # replies only; anything the libraries print goes to stderr
    os.dup2(2, 1)
    if threads:
        import torch

        torch.set_num_threads(threads)
    module, name = target.split(":")
    build = getattr(importlib.import_module(module), name)
    start = time.perf_counter()
    work = build(params)
    ready = {"build_s": time.perf_counter() - start, "info": work.info, "units": work.units, "pid": os.getpid()}
    if work.output is not None:
        import torch

        kept = work.output.detach().float().cpu()
        torch.save(kept, output)
        ready["output_scale"] = kept.abs().max().item()
    channel.write(json.dumps(ready) + "\n")
    for line in sys.stdin:
        if line.strip() != "round":
            break
        started, wall, cpu = time.time(), time.perf_counter(), cpu_seconds()
        result = work.round()
        channel.write(json.dumps({"wall": time.perf_counter() - wall, "cpu": cpu_seconds() - cpu,
                                  "started": started, "result": result}) + "\n")
    torch = sys.modules.get("torch")
    channel.write(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "torch_threads": torch.get_num_threads() if torch else None,
                              "info": work.finish() if work.finish else {}}) + "\n")


# ---- the parent ----

class Child:
    """One case's process, spoken to line by line."""

    def __init__(self, target: str, case: Case, threads: int | None, output: Path):
        self.case, self.output = case, output
        cmd = [sys.executable, "-m", "benchmarks.harness", "--serve", target, json.dumps(case.params),
               "--output", str(output)] + (["--threads", str(threads)] if threads else [])
        path = os.pathsep.join(p for p in (case.env.get("PYTHONPATH"), str(ROOT), os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, **case.env, "PYTHONPATH": path}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     env=env)
        self.ready = self._read()
        self.rounds: list[dict] = []

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.case.name}: its process ended with exit code {self.proc.wait()}")
        return json.loads(line)

    def round(self, timed: bool) -> float:
        """One round; kept when `timed`; its wall seconds."""
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        reply = self._read()
        if timed:
            self.rounds.append(reply)
        return reply["wall"]

    def finish(self) -> dict:
        self.proc.stdin.write("done\n")
        self.proc.stdin.flush()
        final = self._read()
        self.proc.wait()
        return final


def schedule(names: list[str], rounds: int) -> list[list[str]]:
    """The order of each round: every case once, each leading in turn (A B C, B C A, C A B, ...)."""
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)] if names else []


def result(child: Child, first: Child, final: dict) -> dict:
    """A case's JSON object (without the machine and comparisons)."""
    walls = [r["wall"] for r in child.rounds]
    median, cpu = statistics.median(walls), statistics.median(r["cpu"] for r in child.rounds)
    record = {"case": child.case.name, "group": child.case.group, "params": child.case.params,
              "info": {**child.ready["info"], **final["info"]}, "pid": child.ready["pid"],
              "torch_threads": final["torch_threads"], "build_s": round(child.ready["build_s"], 3),
              "rounds": len(walls), "wall_s": walls, "cpu_s": [r["cpu"] for r in child.rounds],
              "started": [r["started"] for r in child.rounds], "median_wall_s": median,
              "median_cpu_s": cpu,
              **{f"{unit}_per_s": n / median for unit, n in child.ready["units"].items()},
              **{f"{unit}_per_cpu_s": n / cpu for unit, n in child.ready["units"].items() if cpu > 0},
              "vs_first": statistics.median(a["wall"] / b["wall"] for a, b in zip(first.rounds, child.rounds)),
              "peak_rss_mb": round(final["peak_rss_mb"], 1)}
    if any(r["result"] is not None for r in child.rounds):
        record["results"] = [r["result"] for r in child.rounds]
    if "output_scale" in child.ready:
        record["output_scale"] = child.ready["output_scale"]
    return record


def run_group(target: str, cases: list[Case], args: argparse.Namespace, folder: Path) -> list[dict]:
    """The cases of one group side by side, round by round; one JSON object per case."""
    children, records = [], []
    rounds = 1 if args.quick else args.rounds or max(c.rounds for c in cases)
    warmup = 0 if args.quick else args.warmup
    load_before = load_average()
    try:
        for case in cases:
            try:
                children.append(Child(target, case, args.threads, folder / f"{case.name.replace('/', '_')}.pt"))
            except RuntimeError as error:  # a case that cannot build: the others still run
                records.append({"case": case.name, "group": case.group, "params": case.params, "failed": str(error)})
                print(f"{case.group}: {error}", file=sys.stderr, flush=True)
        by_name = {child.case.name: child for child in children}
        for rnd, order in enumerate(schedule(list(by_name), warmup + rounds)):
            walls = {name: by_name[name].round(timed=rnd >= warmup) for name in order}
            print(f"{cases[0].group or target}: round {rnd + 1}/{warmup + rounds}{' (warm-up)' if rnd < warmup else ''}"
                  f": " + ", ".join(f"{name} {wall:.3f} s" for name, wall in walls.items()), file=sys.stderr, flush=True)
        finals = [child.finish() for child in children]
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.kill()
    load = {"before": load_before, "after": load_average()}
    return [{**result(child, children[0], final), "load": load} for child, final in zip(children, finals)] + records


def compare(records: list[dict], cases: dict[str, Case], outputs: dict[str, Path]) -> None:
    """Each case's largest absolute output difference from the cases it names (or its group's first)."""
    import torch

    firsts: dict[str, str] = {}
    for record in records:
        firsts.setdefault(record["group"], record["case"])
    for record in records:
        if "failed" in record or not outputs[record["case"]].exists():
            continue
        others = cases[record["case"]].compare_to or (firsts[record["group"]],)
        mine = torch.load(outputs[record["case"]])
        record["max_abs_diff"] = {other: (mine - torch.load(outputs[other])).abs().max().item()
                                  if outputs.get(other, Path("-")).exists() else None for other in others}


def module_name(build: Callable) -> str:
    """The importable module of `build` (the script itself when it runs as `python -m benchmarks.X`)."""
    name = build.__module__
    if name == "__main__":
        spec = sys.modules["__main__"].__spec__
        if spec is None:
            raise SystemExit("run a benchmark as a module: python -m benchmarks.NAME")
        name = spec.name
    return name


def run(bench: Benchmark, args: argparse.Namespace) -> list[dict]:
    """Every case of the benchmark, group after group; one JSON object per case."""
    module = module_name(bench.build)
    target = f"{module}:{bench.build.__name__}"
    env = machine()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = bench.cases(args, folder)
        by_name = {case.name: case for case in cases}
        groups: dict[str, list[Case]] = {}
        for case in cases:
            groups.setdefault(case.group, []).append(case)
        records = []
        for group in groups.values():
            records += run_group(target, group, args, folder)
        outputs = {name: folder / f"{name.replace('/', '_')}.pt" for name in by_name}
        if any(path.exists() for path in outputs.values()):
            compare(records, by_name, outputs)
    return [{"benchmark": module.rsplit(".", 1)[-1], **record, "machine": env} for record in records]


def main(bench: Benchmark, argv: list[str] | None = None) -> None:
    """Parse the shared and the benchmark's own options, run every case, write one JSON object per case."""
    parser = arguments(sys.modules[bench.build.__module__].__doc__)
    parser.add_argument("--rounds", type=int, help="timed rounds per case (default: by case; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=bench.warmup, help="untimed rounds first (0 with --quick)")
    parser.add_argument("--threads", type=int, help="torch threads in each case's process (default: torch's)")
    bench.options(parser)
    args = parser.parse_args(argv)
    write(run(bench, args), args.out)


if __name__ == "__main__":
    serving = argparse.ArgumentParser(description="one case's process (started by the harness)")
    serving.add_argument("--serve", nargs=2, metavar=("MODULE:FUNCTION", "PARAMS"), required=True)
    serving.add_argument("--output", required=True)
    serving.add_argument("--threads", type=int)
    given = serving.parse_args()
    serve(given.serve[0], json.loads(given.serve[1]), given.threads, given.output)
