"""What a run leaves on disk: checkpoints, sample grids, stats.jsonl, TensorBoard scalars; and finding them again."""
from __future__ import annotations

import json
import random
import re
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facegen_cli.checkpoint import read_header, unpack_state
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.fileio import refuse_special, write_text_atomic
from facegen_cli.images import make_grid, save_image, to_uint8
from facegen_cli.train.options import TrainOptions

SNAPSHOT_GLOB = "network-snapshot-*.safetensors"


def snapshot_name(kimg: float) -> str:
    return f"network-snapshot-{kimg:010.3f}.safetensors"


def latest_snapshot(run_dir: Path) -> Path | None:
    snaps = sorted(run_dir.glob(SNAPSHOT_GLOB))
    return snaps[-1] if snaps else None


def find_resume(spec: str, out: Path) -> Path:
    """`--resume` value -> checkpoint file: a file, a run folder, or `latest` (newest run in OUT)."""
    if spec == "latest":
        runs = sorted((p for p in out.glob("*") if re.match(r"\d{5}-", p.name) and latest_snapshot(p)),
                      key=lambda p: latest_snapshot(p).stat().st_mtime)
        if not runs:
            raise BadParameter("resume", f"resume latest: no run with a snapshot in {out}")
        return latest_snapshot(runs[-1])
    path = refuse_special(spec, "a checkpoint or run folder")
    if path.is_dir():
        snap = latest_snapshot(path)
        if snap is None:
            raise FacegenError(f"{path}: run folder without a snapshot to resume from")
        return snap
    if not path.is_file():
        raise BadParameter("resume", f"resume {spec}: no such checkpoint or run folder (nor latest)")
    return path


def stored_state(path: Path) -> dict | None:
    """The training state of checkpoint `path` without its tensors (options, cur_nimg, ...; None for weights
    only), read from its header alone."""
    state = read_header(path).get("training_state")
    if state is None:
        return None
    no_tensors = defaultdict(type(None))  # the options hold none; the tensors of the rest are not needed here
    return unpack_state(state, no_tensors)


def rng_state() -> dict:
    """Every random state a resumed run must continue from."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                        int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def seed_all(seed: int) -> None:
    """Seed every generator rng_state keeps (torch, numpy's global one, Python's), so one seed gives one run."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2 ** 32)
    random.seed(seed)


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_fakes(G: torch.nn.Module, z: torch.Tensor, c: torch.Tensor, grid: tuple[int, int], path: Path,
               **forward_kwargs) -> Path:
    """A grid of G's images for fixed latents and labels."""
    with torch.no_grad():
        images = torch.cat([G(zz, cc, **forward_kwargs) for zz, cc in zip(z.split(8), c.split(8))])
    return save_image(make_grid(to_uint8(images), *grid), path)


def append_stats(path: Path, record: dict) -> None:
    """One JSON line per snapshot; the file is rewritten atomically so a kill never truncates it."""
    old = path.read_text() if path.exists() else ""
    write_text_atomic(path, old + json.dumps(record) + "\n")


def read_stats(path: Path) -> list[dict]:
    """The lines of a run's stats.jsonl (none when it has no file yet)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def stats_at(path: Path, kimg: float) -> dict | None:
    """The line of stats file `path` for the snapshot at `kimg`: its last line at or before it (a stats line is
    written just after its checkpoint, so a kill between them leaves the one before); None without one."""
    lines = [line for line in read_stats(path) if line["kimg"] <= kimg + 1e-9]
    return lines[-1] if lines else None


def check_new_run_folder(dest: Path) -> None:
    """Refuse `dest` for a run folder made from another run's snapshot unless it is absent or an empty folder."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BadInput(f"{dest}: exists and is not an empty folder; a run made from a snapshot gets a new one")


def write_run_folder(dest: Path, snap: Path, state: dict, origin: str, save: Callable[[Path], Path]) -> Path:
    """The resumable run folder `dest` made from snapshot `snap`, whole or not at all: its snapshot (`save`, at the
    kimg `state` counts), training_options.json from `state`'s options, and `snap`'s stats line at that kimg (so
    the CPU count goes on from it) marked `origin: snap`; returns the snapshot."""
    kimg = int(state["cur_nimg"]) / 1000
    partial = dest.parent / f".{dest.name}.making"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        name = save(partial / snapshot_name(kimg)).name
        write_text_atomic(partial / "training_options.json", TrainOptions(**state["options"]).to_json())
        line = stats_at(snap.parent / "stats.jsonl", kimg)
        if line is not None:
            write_text_atomic(partial / "stats.jsonl", json.dumps({**line, origin: str(snap)}) + "\n")
        if dest.exists():
            dest.rmdir()
        partial.rename(dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dest / name


def recorded_cpu_s(path: Path, kimg: float) -> float | None:
    """The cumulative CPU seconds stats file `path` records at `kimg`; None where its line has none (written
    before runs recorded it)."""
    line = stats_at(path, kimg)
    return float(line["cpu_s"]) if line is not None and "cpu_s" in line else None


class ScalarLog:
    """TensorBoard scalars in the run folder when tensorboard is installed; nothing otherwise, or without a folder.
    TensorBoard's event file is a log that only grows, by whole records, so it is appended to, not replaced."""

    def __init__(self, run_dir: Path | None):
        self.writer = None
        self.path: Path | None = None  # the event file
        if run_dir is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.writer = SummaryWriter(str(run_dir))
        self.path = max(run_dir.glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime, default=None)

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def add(self, nimg: int, stats: dict, walltime: float | None = None) -> None:
        """One point per numeric statistic, at step `nimg` (images shown so far)."""
        if self.writer is None:
            return
        for key, value in stats.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(key, value, global_step=nimg, walltime=walltime)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def network_kimg(provenance: dict) -> float | None:
    """The kimg a network's G and D have seen in all: a run's `kimg_total` (its own kimg plus what the network it
    started from had seen), the shipped file's `G_D_kimg` (where its G_ema is older than its G and D), else its
    `kimg`; None where the file does not say (an imported network)."""
    return next((float(provenance[k]) for k in ("kimg_total", "G_D_kimg", "kimg") if provenance.get(k) is not None),
                None)
