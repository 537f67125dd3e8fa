"""The training loop every family shares: data, phases, EMA, ADA, snapshots, resume, DDP.

A run is four steps: `plan_training` (train/plan.py) checks and resolves the options; `Trainer(plan)`
opens the run (networks, optimizers, restored or copied weights, the run folder); `train_step` is one
step of every phase due; `snapshot` writes a checkpoint, a fakes grid and a stats line when `run` says
one is due."""
from __future__ import annotations

import copy
import json
import math
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.data.dataset import ImageDataset
from facegen_cli.devices import memory_format_for
from facegen_cli.errors import FacegenError
from facegen_cli.fileio import write_text_atomic
from facegen_cli.models.registry import get_architecture
from facegen_cli.networks import Network, load_checkpoint
from facegen_cli.train import snapshots
from facegen_cli.train.augment import AdaController, AugmentPipe
from facegen_cli.train.cputime import CpuClock
from facegen_cli.train.distributed import (DistEnv, all_gather_objects, average_buffers, average_gradients,
                                           broadcast_module, init_distributed, reduce_mean)
from facegen_cli.train.families import Phase
from facegen_cli.train.options import TrainOptions, new_run_dir
from facegen_cli.train.plan import Log, TrainPlan, plan_training, quiet

EMA_RAMPUP = 0.05
GRID_SEED = 123  # latents and labels of the fakes grids


def infinite_batches(dataset: ImageDataset, batch: int, seed: int, env: DistEnv, workers: int,
                     start: int = 0) -> Iterator:
    """Shuffled batches forever, from sample `start` of this rank's stream (so a resumed run
    sees exactly the images an uninterrupted one would); each rank reads its own slice."""
    def indices() -> Iterator[int]:
        g = torch.Generator().manual_seed(seed)
        skip = start
        while True:
            perm = torch.randperm(len(dataset), generator=g)[env.rank::env.world_size].tolist()
            if skip >= len(perm):
                skip -= len(perm)
                continue
            yield from perm[skip:]
            skip = 0

    # The loader draws its workers' base seed when iteration starts; from its own generator,
    # so that starting the stream (at step 0 or at a resume) leaves the global RNG untouched.
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=_IterSampler(indices),
                                         num_workers=workers, pin_memory=torch.cuda.is_available(),
                                         persistent_workers=workers > 0, drop_last=True,
                                         generator=torch.Generator().manual_seed(seed + env.rank + start))
    while True:
        yield from loader


class _IterSampler(torch.utils.data.Sampler):
    def __init__(self, make: Callable[[], Iterator[int]]):
        self.make = make

    def __iter__(self) -> Iterator[int]:
        return self.make()


def update_ema(G_ema: nn.Module, G: nn.Module, batch: int, cur_nimg: int, ema_kimg: float) -> None:
    """Exponential moving average of G's weights, with a ramp-up over the first images."""
    ema_nimg = min(ema_kimg * 1000, cur_nimg * EMA_RAMPUP)
    beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for p_ema, p in zip(G_ema.parameters(), G.parameters()):
            p_ema.copy_(p.lerp(p_ema, beta))
        for b_ema, b in zip(G_ema.buffers(), G.buffers()):
            b_ema.copy_(b)


def past_deadline(stop_at: float, env: DistEnv, device: torch.device) -> bool:
    """Whether the clock has passed `stop_at` (--minutes); with several processes, any one's clock stops all."""
    late = time.time() >= stop_at
    if env.world_size == 1 or math.isinf(stop_at):
        return late
    return float(reduce_mean(torch.tensor(float(late), device=device), env)) > 0


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Tick:
    """The statistics since the last snapshot, and the image count and clock they began at."""

    nimg: int
    start: float = field(default_factory=time.time)
    running: dict[str, list[float]] = field(default_factory=dict)

    def sec_per_kimg(self, nimg: int, now: float) -> float:
        return (now - self.start) / max((nimg - self.nimg) / 1000, 1e-9)

    def progress(self, nimg: int) -> dict[str, float]:
        """What `on_step` is told: kimg, the pace since the tick began and each statistic's latest value."""
        return {"kimg": nimg / 1000, "sec_per_kimg": self.sec_per_kimg(nimg, time.time()),
                **{k: v[-1] for k, v in self.running.items()}}


class Trainer:
    """An open run: its networks, optimizers and state; `run()` trains until `opts.kimg`."""

    def __init__(self, opts: TrainOptions | TrainPlan, resume: str | None = None, log: Log = print):
        """Open the run `opts` describes (planned here, continuing `resume`, unless it is a `TrainPlan`
        already): networks built, weights restored or copied, the run folder made on rank 0. Its CPU time
        (`cpu_s` in every stats line) counts from here, on from the resumed run's."""
        self.cpu = CpuClock()
        plan = opts if isinstance(opts, TrainPlan) else plan_training(opts, resume, log)
        self.opts, self.family, self.dataset = plan.opts, plan.family, plan.dataset
        self.G_kwargs, self.D_kwargs = plan.G_kwargs, plan.D_kwargs
        self.device, self.env = plan.device, plan.env
        self.log = log if self.env.is_main else quiet
        init_distributed(self.env, self.device)
        self._build()
        self.run_dir: Path | None = None
        self.written: list[Path] = []  # every file this run wrote, in order (rank 0)
        if plan.resume is not None:
            self._restore(plan.resume)
        if plan.source is not None:
            self._start_from(plan.source)
        for module in (self.G, self.D, self.G_ema):
            broadcast_module(module, self.env)
        self._open_folder()
        self._draw_grid()

    def _build(self) -> None:
        """G, D, G_ema, augmentation, the optimizer phases and the loss, initialised from `opts.seed`."""
        snapshots.seed_all(self.opts.seed + self.env.rank)
        arch = get_architecture(self.family.arch)
        layout = memory_format_for(self.device, self.opts.channels_last)
        self.G = arch.make_G(**self.G_kwargs).to(self.device, memory_format=layout).train().requires_grad_(False)
        self.D = arch.make_D(**self.D_kwargs).to(self.device, memory_format=layout).train().requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        self.augment = AugmentPipe().to(self.device) if self.opts.aug == "ada" else None
        self.ada = AdaController(self.augment, target=self.opts.target) if self.augment is not None else None
        self.phases = self.family.phases(self.G, self.D, self.opts)
        self.loss = self.family.loss(self.G, self.D, self.augment, self.opts)
        self.cur_nimg = 0
        self.step = 0
        self.start_kimg: float | None = 0.0  # what G and D had seen before this run (None: not known)

    def _start_from(self, source: Network) -> None:
        """Copy `source`'s weights into a new run; what it lacks starts fresh, said once."""
        self.G_ema.load_state_dict(source.G_ema.state_dict())
        self.G.load_state_dict((source.G or source.G_ema).state_dict())
        if source.D is not None:
            self.D.load_state_dict(source.D.state_dict())
        missing = [text for text, absent in (("G (copied from G_ema)", source.G is None),
                                             ("D (fresh)", source.D is None)) if absent]
        note = f"; it holds no {' and no '.join(missing)}" if missing else ""
        self.start_kimg = snapshots.network_kimg(source.provenance)
        seen = f" ({self.start_kimg:g} kimg)" if self.start_kimg is not None else ""
        self.log(f"fine-tuning from {source.path}{seen}{note}; optimizers start fresh"
                 + (f", D's first {self.opts.freezed} layers frozen" if self.opts.freezed else ""))

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {p.name[0]: p.opt for p in self.phases}

    def _restore(self, path: Path) -> None:
        """Continue the run that wrote checkpoint `path`: weights, optimizers, counters, ADA, path length, RNG."""
        ckpt = load_checkpoint(path, modules=("G_ema", "G", "D"), with_training_state=True)
        state = ckpt.training_state
        for name in ("G", "D", "G_ema"):
            source = getattr(ckpt, name)
            if source is None:
                raise FacegenError(f"{path}: holds no {name} to resume from")
            getattr(self, name).load_state_dict(source.state_dict())
        for key, opt in self._optimizers().items():
            opt.load_state_dict(state["optimizers"][key])
        self.cur_nimg, self.step = int(state["cur_nimg"]), int(state["step"])
        self.start_kimg = state.get("start_kimg", None if self.opts.resume_from else 0.0)  # older files lack it
        if self.augment is not None:
            self.augment.p.fill_(float(state["augment_p"]))
            self.ada.signs = list(state["ada_signs"])
        if hasattr(self.loss, "pl_mean"):
            self.loss.pl_mean = torch.as_tensor(state["pl_mean"])
        if len(state["rng"]) == self.env.world_size:
            snapshots.set_rng_state(state["rng"][self.env.rank])
        else:  # a different number of processes: the stored streams do not map onto the ranks
            self.log(f"note: {path} was written by {len(state['rng'])} processes, this run has "
                     f"{self.env.world_size}; random streams restart from the run's seed")
            snapshots.seed_all(self.opts.seed + self.env.rank + self.step)
        self.run_dir = path.parent
        self.log(f"resuming {self.run_dir} at {self.cur_nimg / 1000:.3f} kimg")
        self._continue_cpu_time()
        before = state["options"].get("precision")
        if before != self.opts.precision:
            self.log(f"note: continuing in {self.opts.precision} (the run trained in {before} until here)")

    def _continue_cpu_time(self) -> None:
        """Start the CPU count from what the resumed run's stats record at its kimg (0 where they record none)."""
        stats = self.run_dir / "stats.jsonl"
        before = snapshots.recorded_cpu_s(stats, self.cur_nimg / 1000)
        if before is None:
            self.log(f"note: {stats} records no cpu_s up to {self.cur_nimg / 1000:.3f} kimg; the run's CPU time "
                     "counts from 0 here")
        self.cpu.start = before or 0.0

    def _open_folder(self) -> None:
        """Rank 0's run folder (a new one unless continuing), its training_options.json and TensorBoard log."""
        if not self.env.is_main:
            self.scalars = snapshots.ScalarLog(None)
            return
        if self.run_dir is None:
            self.run_dir = new_run_dir(self.opts)
        write_text_atomic(self.run_dir / "training_options.json", self.opts.to_json())
        self.scalars = snapshots.ScalarLog(self.run_dir)
        self._wrote(self.run_dir / "training_options.json", self.scalars.path)
        if not self.scalars.enabled:
            self.log("note: tensorboard is not installed; statistics go to stats.jsonl only")

    def _draw_grid(self) -> None:
        """The latents and labels of every snapshot's fakes grid."""
        self.grid = (8, 8) if self.dataset.resolution <= 128 else (4, 4)
        gen = torch.Generator().manual_seed(GRID_SEED)  # not the global RNG: a resume must not see these draws
        self.grid_z = torch.randn([self.grid[0] * self.grid[1], self.G.z_dim], generator=gen).to(self.device)
        self.grid_c = self._random_labels(len(self.grid_z), generator=gen)

    def training_state(self, rng: list[dict]) -> dict:
        """What a resume needs besides the weights; `rng` holds every rank's random states."""
        return {"options": asdict(self.opts), "cur_nimg": self.cur_nimg, "step": self.step,
                "optimizers": {k: opt.state_dict() for k, opt in self._optimizers().items()},
                "augment_p": float(self.augment.p) if self.augment is not None else 0.0,
                "ada_signs": list(self.ada.signs) if self.ada is not None else [],
                "pl_mean": float(getattr(self.loss, "pl_mean", 0.0)), "start_kimg": self.start_kimg, "rng": rng}

    def save_snapshot(self, stats: dict, rng: list[dict], walltime: float) -> Path:
        """Checkpoint, fakes grid, stats.jsonl line and TensorBoard scalars at the current kimg."""
        kimg = self.cur_nimg / 1000
        total = round(self.start_kimg + kimg, 3) if self.start_kimg is not None else None
        provenance = {"dataset": str(self.opts.data), "kimg": kimg, "kimg_total": total, "run": self.run_dir.name,
                      "label_names": self.dataset.label_names, "label_means": self._label_means()}
        path = save_checkpoint(self.run_dir / snapshots.snapshot_name(kimg), self.family.arch, self.G_kwargs,
                               self.G_ema, G=self.G, D=self.D, D_kwargs=self.D_kwargs, provenance=provenance,
                               training_state=self.training_state(rng))
        fakes = snapshots.save_fakes(self.G_ema, self.grid_z, self.grid_c, self.grid,
                                     self.run_dir / f"fakes{kimg:010.3f}.png", **self.family.sample_kwargs)
        snapshots.append_stats(self.run_dir / "stats.jsonl",
                               {"kimg": kimg, **stats, "time": walltime, "snapshot": path.name})
        self.scalars.add(self.cur_nimg, {"kimg": kimg, **stats}, walltime=walltime)
        self._wrote(path, fakes, self.run_dir / "stats.jsonl")
        return path

    def _wrote(self, *paths: Path | None) -> None:
        """Add `paths` (None: no file) to `written`, each once."""
        self.written += [p for p in paths if p is not None and p not in self.written]

    def _label_means(self) -> list[float] | None:
        if self.dataset.label_dim == 0:
            return None
        return self.dataset.labels.mean(axis=0).round(4).tolist()

    def _random_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Labels of `n` random training images (empty when unconditional)."""
        if self.dataset.label_dim == 0:
            return torch.zeros([n, 0], device=self.device)
        idx = torch.randint(0, len(self.dataset.names), [n], generator=generator)
        return torch.from_numpy(self.dataset.labels[idx.numpy()]).to(self.device)

    def run(self, on_step: Callable[[dict], None] | None = None) -> Path | None:
        """Train to `opts.kimg` (or for `opts.minutes`), snapshotting every `opts.snap` kimg and at the end;
        returns the last snapshot (None on every rank but the first)."""
        opts, env = self.opts, self.env
        batches = infinite_batches(self.dataset, opts.batch // env.world_size, opts.seed, env, opts.workers,
                                   start=self.cur_nimg // env.world_size)
        total = round(opts.kimg * 1000)
        stop_at = time.time() + opts.minutes * 60 if opts.minutes else math.inf  # --minutes
        snap_nimg = max(round(opts.snap * 1000), 1)
        next_snap = (self.cur_nimg // snap_nimg + 1) * snap_nimg
        tick, last, out_of_time = Tick(self.cur_nimg), None, False
        try:
            while self.cur_nimg < total and not out_of_time:
                self.train_step(next(batches), tick.running)
                if on_step is not None and env.is_main:
                    on_step(tick.progress(self.cur_nimg))
                out_of_time = past_deadline(stop_at, env, self.device)
                if self.cur_nimg >= next_snap or self.cur_nimg >= total or out_of_time:
                    last = self.snapshot(tick)
                    tick = Tick(self.cur_nimg)
                    next_snap += snap_nimg
            if out_of_time:
                self.log(f"stopped by the time limit of {opts.minutes:g} minutes at {self.cur_nimg / 1000:.3f} kimg")
        finally:
            self.scalars.close()
        return last

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], running: dict[str, list[float]]) -> None:
        """One step on this rank's share of a batch of reals: every phase that is due (their statistics appended
        to `running`), then G's buffers, the EMA and ADA."""
        opts, device = self.opts, self.device
        per_rank = opts.batch // self.env.world_size
        real, real_c = batch
        inputs = (real.to(device, torch.float32) / 127.5 - 1, real_c.to(device),
                  torch.randn([per_rank, self.G.z_dim], device=device), self._random_labels(per_rank))
        for phase in self.phases:
            if self.step % phase.interval == 0:
                self._run_phase(phase, inputs, running)
        average_buffers(self.G, self.env)  # running averages (w_avg) saw each rank's own latents
        update_ema(self.G_ema, self.G, opts.batch, self.cur_nimg, opts.ema_kimg)
        self.cur_nimg += opts.batch
        self.step += 1
        if self.ada is not None and self.step % self.ada.interval == 0:
            self.ada.update(opts.batch)

    def _run_phase(self, phase: Phase, inputs: tuple[torch.Tensor, ...], running: dict[str, list[float]]) -> None:
        """One optimizer step of `phase` on (reals, their labels, latents, fake labels): gradients accumulated in
        rounds of `opts.batch_gpu` and averaged over the ranks."""
        phase.opt.zero_grad(set_to_none=True)
        phase.set_trainable(True)
        rounds = list(zip(*(t.split(self.opts.batch_gpu) for t in inputs)))
        for real, real_c, gen_z, gen_c in rounds:
            losses = self.loss.accumulate(phase.name, real, real_c, gen_z, gen_c, gain=phase.gain / len(rounds),
                                          cur_nimg=self.cur_nimg)
            stats = self._record(losses, running, phase.name)
            if self.ada is not None and "D_real_sign" in stats:
                self.ada.observe(stats["D_real_sign"])
        phase.set_trainable(False)
        average_gradients(phase.module, self.env)
        phase.opt.step()

    def snapshot(self, tick: Tick) -> Path | None:
        """A snapshot with `tick`'s statistics: every rank's random states gathered, rank 0 writes and says it;
        returns the checkpoint written (None on the other ranks)."""
        now = time.time()
        stats = {k: sum(v) / len(v) for k, v in tick.running.items()}
        stats.update({"sec_per_kimg": tick.sec_per_kimg(self.cur_nimg, now),
                      "augment_p": float(self.augment.p) if self.augment is not None else 0.0,
                      "memory_mb": round(memory_mb(self.device), 1), "cpu_s": round(self.cpu.seconds(), 1)})
        rng = all_gather_objects(snapshots.rng_state(), self.env)
        if not self.env.is_main:
            return None
        path = self.save_snapshot(stats, rng, now)
        self.log(f"kimg {self.cur_nimg / 1000:.3f}: " + json.dumps({k: round(v, 4) for k, v in stats.items()}))
        return path

    def _record(self, stats: dict[str, torch.Tensor], running: dict[str, list[float]], phase: str) -> dict[str, float]:
        """Average `stats` over the ranks, append them to `running`, stop on NaN/Inf; returns the averages."""
        averaged = {}
        for key, value in stats.items():
            value = float(reduce_mean(value, self.env))
            if not math.isfinite(value):
                last = snapshots.latest_snapshot(self.run_dir) if self.run_dir else None
                raise FacegenError(f"{key} became {value} at {self.cur_nimg / 1000:.3f} kimg ({phase}); "
                                   f"last good checkpoint: {last or 'none yet'}")
            running.setdefault(key, []).append(value)
            averaged[key] = value
        return averaged
