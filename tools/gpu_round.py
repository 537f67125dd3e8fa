"""One round on a lent GPU, inside a wall-clock budget it never exceeds; results land in --out.

1. kernels: build the CUDA ops, say which path each op takes, `pytest -m cuda tests/test_ops_cuda.py`
   (skipped without CUDA; on a failure training runs the reference ops);
2. train: `facegen train DATA --resume-from NETWORK --minutes M` for what the budget leaves after the
   FID's share, snapshotting every --snap kimg, stopped cleanly by the clock;
3. fid: what `facegen fid SNAPSHOT DATA --seeds 0-9999 --psi 1 --kid` measures (the same engine
   calls, clean mode), when Inception weights are at hand; else skipped, and the CPU side measures the
   returned checkpoint. The fakes' feature mean and covariance come back too, so that here
   `python3 -m tools.gpu_round --fid-against faces64.zip fakes-inception.npz` gives the FID against the
   original PNG faces (whose features facegen caches) without generating or running Inception again;
4. --out receives network-fp16.safetensors (G, D, G_ema in fp16), fakes.png, stats.jsonl, fid.json,
   fakes-inception.npz, summary.json (kimg, sec/kimg, stage timings, failures; rewritten after every
   stage) and round.log.

Every stage is a child process in its own process group, killed when its share of the time is up.

Prepare here (out/ is git-ignored; tools/README.md has the sizes), then carry exactly these two files:
    .venv/bin/python tools/pack_faces.py /work/train/faces64.zip out/gpu/faces64-webp.zip --format webp --quality 90
    .venv/bin/python tools/pack_inception.py out/gpu/inception-fp16.pt.xz

The device tool's call (one `run`, 9 minutes at most):
    command:   PYTHONUNBUFFERED=1 python3 -m tools.gpu_round --data out/gpu/faces64-webp.zip --inception out/gpu/inception-fp16.pt.xz --minutes 8.5 --out "$OUT"
    timeout_s: 540
    carry:     ["out/gpu/faces64-webp.zip", "out/gpu/inception-fp16.pt.xz"]

Dry run on a CPU: `python3 -m tools.gpu_round --data FACES --network NET --device cpu --minutes 1 --out DIR`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from facegen_cli.fileio import atomic_path, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]

FACEGEN = "from facegen_cli.cli.main import main; main()"
NO_TOOLKIT = "/nonexistent/facegen-reference-ops"  # as CUDA_HOME: the ops find no toolkit and run their references
MAX_FILE = 16 * 2 ** 20  # the device tool brings back files up to 16 MiB


@dataclass
class Round:
    """The clock, the log and the summary of one round."""

    out: Path
    budget_s: float
    start: float = field(default_factory=time.monotonic)
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out / "round.log"
        self.summary.update(budget_s=self.budget_s, stages={}, failures=[])

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def note(self, text: str) -> None:
        line = f"[gpu_round {time.monotonic() - self.start:6.1f}s] {text}"
        print(line, file=sys.stderr, flush=True)
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def stage(self, name: str, **info) -> None:
        self.summary["stages"][name] = {**self.summary["stages"].get(name, {}), **info}
        if info.get("status") in ("failed", "timeout"):
            self.summary["failures"].append(f"{name}: {info.get('detail') or info['status']}")
        self.save()

    def save(self) -> None:
        self.summary["elapsed_s"] = round(time.monotonic() - self.start, 1)
        write_text_atomic(self.out / "summary.json", json.dumps(self.summary, indent=2) + "\n")

    def call(self, args: list[str], timeout: float, env: dict | None = None,
             stdout: Path | None = None) -> tuple[int | None, float]:
        """Run a child in its own process group (output to the log, or stdout to a file); kill the
        group after `timeout` seconds. Returns (exit code or None when killed, seconds)."""
        self.note(f"$ {shlex.join(args)}  (limit {timeout:.0f} s)")
        began = time.monotonic()
        with open(self.log_path, "a") as log, open(stdout or os.devnull, "w") as out:
            child = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})}, start_new_session=True,
                                     stdout=out if stdout else log, stderr=log)
            try:
                rc: int | None = child.wait(timeout=max(timeout, 1))
            except subprocess.TimeoutExpired:
                stop_group(child)
                rc = None
        seconds = round(time.monotonic() - began, 1)
        self.note(f"exit {rc if rc is not None else 'killed at its limit'} after {seconds} s")
        return rc, seconds


def stop_group(child: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL it 10 s later if it is still there."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def python_env() -> dict:
    """Children import facegen_cli from this checkout (the device machine has it uninstalled)."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""), "PYTHONUNBUFFERED": "1"}


def kernels(r: Round, limit: float, device: str) -> bool:
    """Stage 1; True when training may use the CUDA kernels."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        r.stage("kernels", status="skipped", detail=f"no CUDA device (--device {device})")
        return False
    began = time.monotonic()
    rc, _ = r.call([sys.executable, "-m", "facegen_cli.ops.build"], limit, python_env())
    paths = ops_paths(r.log_path)
    if rc == 0 and paths and all(p.startswith("cuda kernel") for p in paths.values()):
        rc, _ = r.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda",
                        "tests/test_ops_cuda.py"], limit - (time.monotonic() - began), python_env())
        ok = rc == 0
        detail = last_line(r.log_path) if ok else f"kernel tests {'timed out' if rc is None else 'failed'}: " \
                                                  f"{last_line(r.log_path)}"
    else:
        ok = False
        how = "timed out" if rc is None else "failed or fell back"
        detail = f"build {how}: {paths or last_line(r.log_path)}"
    r.stage("kernels", status="ok" if ok else ("timeout" if rc is None else "failed"), detail=detail, ops=paths,
            seconds=round(time.monotonic() - began, 1))
    return ok


def ops_paths(log: Path) -> dict[str, str]:
    """The `op<TAB>path` lines that `python -m facegen_cli.ops.build` printed into the log."""
    from facegen_cli.ops.build import OPS

    found = {}
    for line in log.read_text(errors="replace").splitlines():
        name, tab, reason = line.partition("\t")
        if tab and name in OPS:
            found[name] = reason
    return found


def last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip() and "[gpu_round" not in ln]
    return lines[-1].strip()[:300] if lines else ""


def train(r: Round, a: argparse.Namespace, window: float, use_kernels: bool, work: Path) -> Path | None:
    """Stage 2: train for `window` seconds at most; returns the run folder."""
    runs = work / "runs"
    startup = min(30.0, window * 0.3)  # imports, data check, CUDA start: outside the loop's --minutes
    minutes = max((window - startup) / 60, 0.05)
    args = [sys.executable, "-c", FACEGEN, "train", a.data, "--out", str(runs), "--resume-from", a.network,
            "--kimg", "100000", "--minutes", f"{minutes:.3f}", "--snap", f"{a.snap:g}", "--batch", str(a.batch),
            "--batch-gpu", str(a.batch_gpu or a.batch), "--workers", str(a.workers), "--device", a.device,
            "--seed", str(a.seed)] + (["--mirror"] if a.mirror else []) + shlex.split(a.train_args)
    env = python_env() if use_kernels else {**python_env(), "CUDA_HOME": NO_TOOLKIT}
    rc, seconds = r.call(args, window, env)
    run_dirs = sorted(p for p in runs.glob("*") if p.is_dir()) if runs.is_dir() else []
    run = run_dirs[-1] if run_dirs else None
    rows = read_stats(run / "stats.jsonl") if run else []
    info = dict(seconds=seconds, minutes_asked=round(minutes, 3), exit=rc, ops="cuda kernels" if use_kernels else
                "reference", command=shlex.join(args[3:]), run=run.name if run else None)
    if rows:
        rates = [row["sec_per_kimg"] for row in rows]
        info.update(kimg=rows[-1]["kimg"], snapshots=len(rows), sec_per_kimg_median=round(
            statistics.median(rates[1:] or rates), 3), sec_per_kimg_first_tick=round(rates[0], 3),
            final_snapshot=rows[-1]["snapshot"], augment_p=rows[-1].get("augment_p"))
    status = "ok" if rc == 0 and rows else ("timeout" if rc is None else "failed")
    detail = None if status == "ok" else last_line(r.log_path)
    if rc is None:
        detail = f"killed at its {window:.0f} s limit; " + (f"{rows[-1]['snapshot']} stands" if rows else "no snapshot")
    r.stage("train", status=status, detail=detail, **info)
    return run if rows else None


def read_stats(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def export(r: Round, run: Path) -> Path:
    """Stage 4 (before the FID, so a later kill keeps it): the snapshot of the last line of stats.jsonl (a kill
    may leave a newer one without its line) small, its grid and the stats."""
    from facegen_cli.checkpoint import save_checkpoint
    from facegen_cli.networks import load_checkpoint

    last = read_stats(run / "stats.jsonl")[-1]
    snapshot, grid = run / last["snapshot"], run / f"fakes{last['kimg']:010.3f}.png"
    net = load_checkpoint(snapshot, modules=("G_ema", "G", "D"))
    # The training loop's provenance already counts the kimg of the network the run started from (kimg_total).
    provenance = {k: v for k, v in net.provenance.items() if k != "date"}
    small = save_checkpoint(r.out / "network-fp16.safetensors", net.arch, net.G_kwargs, net.G_ema, G=net.G, D=net.D,
                            D_kwargs=net.D_kwargs, half=True, provenance={**provenance, "snapshot": snapshot.name})
    shutil.copyfile(grid, r.out / "fakes.png")
    shutil.copyfile(run / "stats.jsonl", r.out / "stats.jsonl")
    size = small.stat().st_size
    r.stage("export", status="ok" if size <= MAX_FILE else "failed", snapshot=snapshot.name, network_bytes=size,
            fakes=grid.name, detail=None if size <= MAX_FILE else f"{small.name} is {size} bytes, over 16 MiB")
    return snapshot


def inception_for_fid(r: Round, spec: str | None, work: Path) -> tuple[str | None, str]:
    """(fp32 Inception file or None, why not); a copy from pack_inception.py is unpacked to fp32."""
    from facegen_cli.errors import FacegenError
    from facegen_cli.metrics.inception import find_weights
    from tools.pack_inception import fp32_copy

    if spec == "none":
        return None, "--inception none"
    try:
        found = find_weights(spec)
        path = fp32_copy(found, work)
    except FacegenError as e:
        return None, str(e)
    if path != found:
        r.note(f"Inception weights: {found} unpacked to fp32 in {path}")
    return str(path), ""


def measure(network: str, data: str, count: int, device: str, weights: str, batch: int, workers: int,
            stats_path: Path) -> dict:
    """FID and KID of `count` samples (seeds 0..count-1, psi 1) of `network` against `data`, as `facegen fid`
    computes them; the samples' feature mean and covariance (upper triangle, fp32) go to `stats_path`."""
    import numpy as np

    from facegen_cli.metrics.fid import (FidResult, extract_features, feature_stats, fid_from_features,
                                         kernel_distance, open_stream)
    from facegen_cli.metrics.inception import InceptionFeatures

    extractor = InceptionFeatures("clean", device=device, weights=weights)
    fakes, reals = (extract_features(open_stream(spec, range(count), count, 1.0, batch, workers, device), extractor,
                                     batch) for spec in (network, data))
    mu, sigma = feature_stats(fakes)
    with atomic_path(stats_path) as tmp, open(tmp, "wb") as f:
        np.savez(f, mu=mu, sigma_triu=sigma[np.triu_indices(len(mu))].astype(np.float32), count=len(fakes))
    return FidResult(fid=fid_from_features(fakes, reals), mode="clean", count_a=len(fakes), count_b=len(reals),
                     kid=kernel_distance(fakes, reals), inception=str(extractor.path)).as_dict()


def fid_against(data: str, stats_path: str | Path, workers: int = 2) -> dict:
    """FID of the samples summarised in `stats_path` (from `measure`) against `data`, whose features are read
    from facegen's cache or extracted (on CPU) and cached; the CPU-side half of a round's FID."""
    import numpy as np

    from facegen_cli.metrics.fid import cached_features, feature_stats, frechet_distance
    from facegen_cli.metrics.inception import InceptionFeatures
    from facegen_cli.metrics.sources import dataset_stream

    saved = np.load(stats_path)
    dim = len(saved["mu"])
    sigma = np.zeros([dim, dim])
    sigma[np.triu_indices(dim)] = saved["sigma_triu"]
    sigma = sigma + np.triu(sigma, 1).T
    reals, cached = cached_features(dataset_stream(data, workers=workers), InceptionFeatures("clean"))
    return {"fid": frechet_distance(saved["mu"], sigma, *feature_stats(reals)), "count_a": int(saved["count"]),
            "count_b": len(reals), "data": data, "data_features_cached": cached}


def fid(r: Round, a: argparse.Namespace, snapshot: Path, limit: float, work: Path) -> None:
    """Stage 3: FID and KID of `a.fid_images` samples of `snapshot` against the training faces."""
    began = time.monotonic()
    weights, why = inception_for_fid(r, a.inception, work)
    if weights is None:
        skipped = {"fid": None, "skipped": why,
                   "measure_on_cpu": f"facegen fid network-fp16.safetensors DATA --seeds 0-{a.fid_images - 1} "
                                     "--psi 1 --kid --json"}
        write_text_atomic(r.out / "fid.json", json.dumps(skipped, indent=2) + "\n")
        r.stage("fid", status="skipped", detail=why)
        return
    args = [sys.executable, "-m", "tools.gpu_round", "--measure-into", str(r.out / "fakes-inception.npz"),
            "--network", str(snapshot),
            "--data", a.data, "--fid-images", str(a.fid_images), "--device", a.device, "--inception", weights,
            "--fid-batch", str(a.fid_batch), "--workers", str(a.workers)]
    raw = work / "fid-stdout.json"
    rc, seconds = r.call(args, limit - (time.monotonic() - began), python_env(), stdout=raw)
    result = json.loads(raw.read_text()) if rc == 0 and raw.is_file() else None
    record = {**(result or {"fid": None}), "network": snapshot.name, "data": a.data, "images": a.fid_images,
              "inception": a.inception or weights, "seconds": seconds}
    write_text_atomic(r.out / "fid.json", json.dumps(record, indent=2) + "\n")
    status = "ok" if result else ("timeout" if rc is None else "failed")
    detail = None if result else (f"killed at its limit after {seconds} s" if rc is None else last_line(r.log_path))
    r.stage("fid", status=status, seconds=round(time.monotonic() - began, 1), fid=record["fid"],
            kid=record.get("kid"), detail=detail)


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fid-against", nargs=2, metavar=("DATA", "STATS"), help="(here, after a round) the FID of a "
                   "round's fakes-inception.npz against DATA, e.g. the PNG faces; prints JSON and exits")
    p.add_argument("--measure-into", type=Path, help="(stage 3's child) measure --network against --data, "
                   "write the fakes' statistics to this file, print the result as JSON")
    p.add_argument("--data", help="training faces (folder or zip), also FID's reference")
    p.add_argument("--out", type=Path, help="folder that receives the results ($OUT)")
    p.add_argument("--minutes", type=float, default=8.5, help="wall-clock budget of the whole round (8.5)")
    p.add_argument("--network", default="default", help="what training starts from (--resume-from; default)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batch-gpu", type=int, default=None, help="samples per pass (default: --batch)")
    p.add_argument("--workers", type=int, default=8, help="data-loading processes (training and FID)")
    p.add_argument("--snap", type=float, default=20, help="snapshot every N kimg (20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-mirror", dest="mirror", action="store_false", help="no x-flipped copies of the data")
    p.add_argument("--train-args", default="", help="more `facegen train` options, e.g. '--gamma 0.05'")
    p.add_argument("--kernel-minutes", type=float, default=2.5, help="limit of the kernel stage (2.5)")
    p.add_argument("--fid-minutes", type=float, default=2.0, help="time kept back for the FID (2.0)")
    p.add_argument("--fid-images", type=int, default=10_000, help="generated images for the FID (10000)")
    p.add_argument("--fid-batch", type=int, default=250)
    p.add_argument("--inception", default=None, help="Inception file (fp16 copies are cast back), or 'none'")
    p.add_argument("--work", type=Path, default=None, help="scratch folder for runs (default: a temporary one)")
    a = p.parse_args(argv)
    if not a.fid_against and (a.data is None or (a.out is None and a.measure_into is None)):
        p.error("--data and --out are required")
    if a.minutes <= 0 or a.fid_images < 2:
        p.error("--minutes must be positive and --fid-images at least 2")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    if a.fid_against:
        print(json.dumps(fid_against(*a.fid_against, workers=min(a.workers, os.cpu_count() or 1))))
        return 0
    if a.measure_into:
        print(json.dumps(measure(a.network, a.data, a.fid_images, a.device, a.inception, a.fid_batch, a.workers,
                                 a.measure_into)))
        return 0
    r = Round(a.out, a.minutes * 60)
    work = a.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"facegen-gpu-round-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    total = r.budget_s
    finish = min(15.0, 0.1 * total)  # the summary, and slack for the children's exits
    fid_share = min(a.fid_minutes * 60, 0.25 * total)
    r.summary.update(started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), device=device_name(a.device),
                     python=platform.python_version(), torch=__import__("torch").__version__,
                     options={k: str(v) for k, v in vars(a).items()})
    r.save()
    use_kernels = kernels(r, min(a.kernel_minutes * 60, 0.3 * total), a.device)
    run = train(r, a, r.left() - fid_share - finish, use_kernels, work)
    kimg_total = None
    if run is None:
        r.stage("fid", status="skipped", detail="no snapshot to measure")
        write_text_atomic(r.out / "fid.json", json.dumps({"fid": None, "skipped": "no snapshot"}) + "\n")
    else:
        from facegen_cli.checkpoint import read_header

        snapshot = export(r, run)
        kimg_total = read_header(snapshot)["provenance"].get("kimg_total")
        fid(r, a, snapshot, r.left() - finish, work)
    stats = r.summary["stages"].get("train", {})
    r.summary.update(kimg=stats.get("kimg"), resumed_from=a.network, kimg_total=kimg_total,
                     sec_per_kimg=stats.get("sec_per_kimg_median"),
                     fid=r.summary["stages"].get("fid", {}).get("fid"))
    r.save()
    r.note(f"done: {json.dumps({k: r.summary.get(k) for k in ('kimg', 'sec_per_kimg', 'fid', 'failures')})}")
    return 0 if not r.summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
