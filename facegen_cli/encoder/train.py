"""Train an encoder for a network (e4e / pSp style, on a CPU in pieces).

Each step draws `batch` images. Most are the network's own: random z mapped to w and drawn, so the true latent
is known and a latent loss compares the encoder's W+ with it (squared distance over W's mean squared spread, so
answering w_avg scores 1). With a prepared dataset a fraction are real faces (mirrored at random), which have
image losses only. Every image is redrawn from the encoder's latent through the frozen generator and compared
with the pixel MSE and the projection's perceptual distance; the offsets' mean length (over W's spread) is
penalised so the latent stays editable. The file is written every `snapshot_minutes` and at the end with the
optimizer state, so a run resumes from its own file.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facegen_cli.data.dataset import ImageDataset
from facegen_cli.devices import memory_format_for
from facegen_cli.encoder.model import Encoder, offset_norm
from facegen_cli.encoder.store import check_network, check_sizes, load_encoder, save_encoder
from facegen_cli.errors import BadInput, BadParameter, Bounds, check_bounds
from facegen_cli.latent.project import w_statistics
from facegen_cli.metrics.perceptual import Perceptual
from facegen_cli.networks import Network
from facegen_cli.precision import check_precision, resolve_precision, synthesis_in_precision
from facegen_cli.sampler import require_wplus
from facegen_cli.seeds import check_seed

LOSSES = ("latent", "pixel", "perceptual", "offsets", "total")


# The range of each number a run may be given, (low, high, whether low itself is allowed): kimg and minutes up to
# a million, Adam's lr at most 1, batches up to 4096 images, loss weights up to 1e4.
BOUNDS: Bounds = {"kimg": (0, 1e6, False), "minutes": (0, 1e6, False), "snapshot_minutes": (0, 1e6, False),
                  "lr": (0, 1, False), "batch": (1, 4096, True), "latent_weight": (0, 1e4, True),
                  "pixel_weight": (0, 1e4, True), "perceptual_weight": (0, 1e4, True), "offset_weight": (0, 1e4, True)}


@dataclass
class EncoderTrainOptions:
    """What a run trains with; kimg is the total to reach (counting a resumed file's), minutes this run's limit."""

    kimg: float = 100.0
    minutes: float | None = None
    batch: int = 8
    lr: float = 1e-3  # Adam
    latent_weight: float = 1.0
    pixel_weight: float = 1.0
    perceptual_weight: float = 1.0  # 0 = no perceptual distance (faster)
    offset_weight: float = 0.1
    real_fraction: float = 0.5  # of each batch drawn from the data, when there is data
    seed: int = 0
    precision: str = "fp32"  # encoder and synthesis; bf16 took 17x the CPU time on a CPU without native bf16
    snapshot_minutes: float = 5.0
    encoder: dict = field(default_factory=dict)  # Encoder kwargs beyond the network's sizes (a new encoder only)

    def __post_init__(self) -> None:
        check_precision(self.precision)
        check_bounds(self, BOUNDS)
        if not 0 <= self.real_fraction < 1:
            raise BadParameter("real_fraction", f"real_fraction {self.real_fraction} must be in [0, 1)")
        check_seed(self.seed, "seed")


class EncoderTrainer:
    """A network's frozen generator, the encoder being trained, its optimizer and the record so far."""

    def __init__(self, net: Network, opts: EncoderTrainOptions, data: str | Path | None = None,
                 resume: str | Path | None = None, start_from: str | Path | None = None):
        if resume is not None and start_from is not None:
            raise BadParameter("start_from", "give either a file to resume or one to start from, not both")
        require_wplus(net, "an encoder")
        self.net, self.opts = net, opts
        self.device = next(net.G_ema.parameters()).device
        self.precision = resolve_precision(opts.precision, self.device)
        self.layout = memory_format_for(self.device)
        self.G = copy.deepcopy(net.G_ema).eval().requires_grad_(False).to(memory_format=self.layout)
        if self.G.c_dim:
            raise BadInput("encoders for conditional networks are not supported")
        self.w_avg = self.G.mapping.w_avg.detach().clone()
        _, self.w_std = w_statistics(self.G, seed=0)
        self.data = self._open(data) if data is not None else None
        found = check_network(load_encoder(resume, self.device), net) if resume is not None else None
        start = check_sizes(load_encoder(start_from, self.device), net) if start_from is not None else None
        if start:  # another network's encoder: its weights, answering relative to this network's w_avg
            start.encoder.w_avg.copy_(self.w_avg)
        source = found or start
        self.encoder = source.encoder if source else self._new_encoder()
        self.encoder.train().requires_grad_(True).to(memory_format=self.layout)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=opts.lr, betas=(0.9, 0.99))
        if found and found.optimizer:
            self.optimizer.load_state_dict(found.optimizer)
            for group in self.optimizer.param_groups:
                group["lr"] = opts.lr
        self.record = dict(found.training) if found else {"kimg": 0.0, "seconds": 0.0, "steps": 0, "history": []}
        if start:  # what the start had learned, for the record: a fresh count and optimizer here
            self.record["started_from"] = {"network_id": start.network_id, "file": Path(start_from).name,
                                           **{k: start.training.get(k, 0) for k in ("kimg", "steps", "seconds")}}
        self.perceptual = Perceptual(self.device) if opts.perceptual_weight else None

    def _new_encoder(self) -> Encoder:
        G = self.G
        try:
            encoder = Encoder(G.img_resolution, G.img_channels, G.w_dim, G.num_ws, **self.opts.encoder)
        except TypeError as e:
            raise BadParameter("encoder", f"encoder settings {self.opts.encoder}: {e}") from None
        encoder.w_avg.copy_(self.w_avg)
        return encoder.to(self.device)

    def _open(self, data: str | Path) -> ImageDataset:
        dataset = ImageDataset(data, mirror=True, channels=self.G.img_channels)
        if dataset.resolution != self.G.img_resolution:
            raise BadInput(f"{data}: faces of {dataset.resolution} px; the network draws {self.G.img_resolution} px "
                           "(prepare the data at its size)")
        return dataset

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step `step`'s images [N, C, H, W] in [-1, 1] (the network's first, then real faces) and the true W+
        of the network's images."""
        opts = self.opts
        real = round(opts.batch * opts.real_fraction) if self.data is not None else 0
        generator = torch.Generator().manual_seed(opts.seed * 1_000_003 + step)
        images, ws = [], None
        if real < opts.batch:
            z = torch.randn([opts.batch - real, self.G.z_dim], generator=generator).to(self.device)
            with torch.no_grad():
                ws = self.G.mapping(z, None)
                images.append(synthesis_in_precision(self.G, ws, self.precision, noise_mode="const"))
        if real:
            picks = torch.randint(len(self.data), [real], generator=generator).tolist()  # mirrored: the upper half
            faces = torch.stack([self.data[i][0] for i in picks])
            images.append(faces.to(self.device).float() / 127.5 - 1)
        return torch.cat(images).contiguous(memory_format=self.layout), ws

    def step(self) -> dict[str, float]:
        """One optimizer step; returns its losses."""
        opts = self.opts
        images, true_ws = self.batch(self.record["steps"])
        with self.precision.autocast():
            ws = self.encoder(images).float()
        drawn = synthesis_in_precision(self.G, ws, self.precision, noise_mode="const")
        losses = {"pixel": (drawn - images).square().mean()}
        if true_ws is not None:
            losses["latent"] = (ws[:len(true_ws)] - true_ws).square().sum(2).mean() / self.w_std ** 2
        if self.perceptual:
            with torch.no_grad():
                goal = self.perceptual.features(images)
            losses["perceptual"] = self.perceptual(drawn, goal).mean()
        losses["offsets"] = offset_norm(ws).mean() / self.w_std
        weights = {"latent": opts.latent_weight, "pixel": opts.pixel_weight, "perceptual": opts.perceptual_weight,
                   "offsets": opts.offset_weight}
        total = sum(weights[k] * v for k, v in losses.items())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.record["steps"] += 1
        self.record["kimg"] += len(images) / 1000
        return {**{k: v.item() for k, v in losses.items()}, "total": total.item()}

    def save(self, path: str | Path) -> Path:
        """The encoder file with the optimizer state, for resuming."""
        self.record["options"] = {k: v for k, v in asdict(self.opts).items() if k not in ("kimg", "minutes")}
        return save_encoder(path, self.encoder, self.net.network_id, self.record, self.optimizer.state_dict())

    def run(self, out: str | Path, on_step: Callable[[dict], None] | None = None, record_every: int = 50) -> Path:
        """Train until `kimg` (in all) or `minutes` (this run), writing `out` every `snapshot_minutes` and at
        the end; every `record_every` steps the mean losses join the record's history."""
        opts = self.opts
        start = last_save = time.monotonic()
        stop_at = start + opts.minutes * 60 if opts.minutes else math.inf
        running: dict[str, list[float]] = {}
        seconds = self.record["seconds"]
        while self.record["kimg"] < opts.kimg and time.monotonic() < stop_at:
            losses = self.step()
            for k, v in losses.items():
                running.setdefault(k, []).append(v)
            now = time.monotonic()
            self.record["seconds"] = seconds + now - start
            if self.record["steps"] % record_every == 0:
                self.record["history"].append({"kimg": round(self.record["kimg"], 3),
                                               "seconds": round(self.record["seconds"], 1),
                                               **{k: round(float(np.mean(v)), 5) for k, v in running.items()}})
                running = {}
            if on_step:
                on_step({"kimg": self.record["kimg"], "steps": self.record["steps"], **losses})
            if now - last_save > opts.snapshot_minutes * 60:
                self.save(out)
                last_save = now
        return self.save(out)


def train_encoder(net: Network, out: str | Path | None, opts: EncoderTrainOptions = EncoderTrainOptions(),
                  data: str | Path | None = None, resume: str | Path | None = None,
                  on_step: Callable[[dict], None] | None = None,
                  start_from: str | Path | None = None) -> tuple[Path, dict]:
    """Train (or go on training, from `resume`; or from `start_from`'s weights, an encoder of another network of
    the same sizes) an encoder for `net`; write it to `out` (default: `resume`, else
    out/encoders/<network id>.safetensors). Returns the file and its training record."""
    trainer = EncoderTrainer(net, opts, data, resume, start_from)
    if trainer.record["kimg"] >= opts.kimg:
        raise BadParameter("kimg", f"kimg {opts.kimg:g}: {resume} has already trained {trainer.record['kimg']:.3f} "
                                   "kimg; ask for more")
    out = Path(out if out is not None else resume or Path("out") / "encoders" / f"{net.network_id}.safetensors")
    return trainer.run(out, on_step), trainer.record

