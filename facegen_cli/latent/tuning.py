"""Pivotal tuning (Roich et al. 2021): fine-tune the synthesis weights around a projected W so the
network draws the photo's own face at that latent, and stays itself away from it.

The pivot is a W projection (`project.py`). The loss at the pivot is the perceptual distance plus
pixel MSE to the photo. The locality regulariser draws w's by mapping random z, moves each to a
fixed distance from the pivot along its line to the pivot, and penalises the tuned network's image
there drifting from the base network's (pixel MSE + perceptual). Only the synthesis network is
tuned; its weights end rounded to fp16, as the tuned file stores them, so the file draws exactly
what `tune` returns.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facegen_cli.checkpoint import TUNED_FROM, TUNED_PART, save_tuned
from facegen_cli.errors import BadParameter
from facegen_cli.images import save_image, to_uint8
from facegen_cli.latent.project import (ProjectOptions, align_photo, check_optimisation, goal_image, image_stats,
                                        project_photo, psnr, w_statistics, write_projection)
from facegen_cli.metrics.perceptual import Perceptual
from facegen_cli.networks import Network
from facegen_cli.precision import resolve_precision, synthesis_in_precision
from facegen_cli.sampler import require_wplus


@dataclass
class TuneOptions:
    """Fine-tuning settings (PTI's, with fewer, larger steps to fit a CPU)."""

    steps: int = 150  # Adam steps on the synthesis weights (PTI: 350); more fit the photo closer, ~0.3 CPU s each
    lr: float = 1e-3  # Adam learning rate (PTI: 3e-4 over 350 steps)
    perceptual_weight: float = 1.0  # of the perceptual distance (at the pivot and in the regulariser); 0 = pixels only
    pixel_weight: float = 1.0  # of the pixel MSE to the photo at the pivot
    locality_weight: float = 0.5  # of the locality regulariser (PTI's lambda_R: 0.1); 0 turns it off
    locality_distance: float = 1.5  # how far from the pivot its w's lie, in units of W's RMS spread (PTI: alpha)
    locality_samples: int = 2  # w's drawn for the regulariser at each step
    seed: int = 0  # of the regulariser's random z
    precision: str = "fp32"  # of the synthesis while tuning; see facegen_cli.precision

    def __post_init__(self) -> None:
        check_optimisation(self)
        if not (math.isfinite(self.locality_weight) and self.locality_weight >= 0):
            raise BadParameter("locality_weight", f"locality_weight {self.locality_weight} must be 0 or more")
        if not (math.isfinite(self.locality_distance) and self.locality_distance > 0):
            raise BadParameter("locality_distance", f"locality_distance {self.locality_distance} must be positive")
        if self.locality_samples < 1:
            raise BadParameter("locality_samples", f"locality_samples {self.locality_samples} must be at least 1")


def locality_ws(G, pivot: torch.Tensor, count: int, distance: float, generator: torch.Generator) -> torch.Tensor:
    """`count` W+ latents: mapped random z, each moved to `distance` from `pivot` along its line to it."""
    z = torch.randn([count, G.z_dim], generator=generator).to(pivot.device)
    w = G.mapping(z, None)[:, :1]
    offset = w - pivot[:, :1]
    w = pivot[:, :1] + distance * offset / offset.norm(dim=2, keepdim=True).clamp_min(1e-8)
    return w.expand(-1, G.num_ws, -1)


def round_to_half(module: torch.nn.Module) -> None:
    """Round every floating parameter of `module` to fp16 precision (kept in its own dtype)."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().to(p.dtype))


def tune(net: Network, target: np.ndarray, pivot_ws: np.ndarray, opts: TuneOptions = TuneOptions(),
         on_step: Callable[[int, dict], None] | None = None) -> tuple[Network, np.ndarray, dict]:
    """Fine-tune `net`'s synthesis so W+ `pivot_ws` [num_ws, w_dim] draws the HWC uint8 `target`;
    returns the tuned network (its provenance naming `net` as the base), its image there, distances."""
    require_wplus(net, "pivotal tuning")
    base = net.G_ema
    device = next(base.parameters()).device
    precision = resolve_precision(opts.precision, device)
    G = copy.deepcopy(base).eval().requires_grad_(False)
    synthesis = getattr(G, TUNED_PART)
    synthesis.requires_grad_(True)
    goal = goal_image(target, G, device)
    perceptual = Perceptual(device) if opts.perceptual_weight else None
    goal_features = perceptual.features(goal) if perceptual else None
    pivot = torch.as_tensor(pivot_ws, dtype=torch.float32, device=device)[None]
    _, w_std = w_statistics(base, seed=opts.seed)
    generator = torch.Generator().manual_seed(opts.seed)
    optimizer = torch.optim.Adam(synthesis.parameters(), lr=opts.lr, betas=(0.9, 0.999))
    use_locality = opts.locality_weight > 0
    for step in range(opts.steps):
        ws = pivot
        if use_locality:
            with torch.no_grad():
                reg_ws = locality_ws(base, pivot, opts.locality_samples, opts.locality_distance * w_std, generator)
                reg_goal = synthesis_in_precision(base, reg_ws, precision, noise_mode="const")
                reg_features = perceptual.features(reg_goal) if perceptual else None
            ws = torch.cat([pivot, reg_ws])
        images = synthesis_in_precision(G, ws, precision, noise_mode="const")
        pixel = (images[:1] - goal).square().mean()
        dist = perceptual(images[:1], goal_features).sum() if perceptual else pixel.new_zeros([])
        loss = opts.perceptual_weight * dist + opts.pixel_weight * pixel
        stats = {"pixel_mse": pixel.item(), "perceptual": dist.item()}
        if use_locality:
            drift = (images[1:] - reg_goal).square().mean()
            if perceptual:
                drift = drift + perceptual(images[1:], reg_features).mean()
            loss = loss + opts.locality_weight * drift
            stats["locality"] = drift.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step, stats)
    G.requires_grad_(False)
    round_to_half(synthesis)
    with torch.no_grad():
        image = synthesis_in_precision(G, pivot, precision, noise_mode="const")
        stats = {"pixel_mse": float((image - goal).square().mean()), "psnr_db": psnr(image, goal)}
        if perceptual:
            stats["perceptual"] = float(perceptual(image, goal_features).sum())
    provenance = {TUNED_FROM: {"id": net.network_id, "path": str(net.path.resolve()) if net.path else None},
                  "tuning": asdict(opts)}
    tuned = Network(arch=net.arch, G_kwargs=net.G_kwargs, G_ema=G, provenance=provenance)
    return tuned, to_uint8(image)[0], stats


def run_tune(net: Network, photo: str | Path, out: str | Path, opts: ProjectOptions = ProjectOptions(),
             tune_opts: TuneOptions = TuneOptions(), how: str = "ffhq", video: bool = False,
             on_step: Callable[[int, dict], None] | None = None,
             on_tune_step: Callable[[int, dict], None] | None = None,
             on_faces: Callable[[int], None] | None = None,
             find_pivot: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, dict, list]] | None = None
             ) -> tuple[list[Path], dict]:
    """Align `photo`, project it into W (the pivot), tune the network around it; write what `run_project`
    writes plus the tuned reconstruction `STEM-tuned.png` and the tuned network `STEM-tuned.safetensors`.
    `find_pivot(target)` -> (W+, image, distances, frames), e.g. an encoder's, replaces the W projection."""
    if opts.wplus:
        raise BadParameter("wplus", "wplus: pivotal tuning starts from a W projection, not W+")
    target = align_photo(photo, net.G_ema.img_resolution, how, on_faces)
    ws, image, pivot_stats, frames = (find_pivot(target) if find_pivot
                                      else project_photo(net, target, opts, video, on_step))
    tuned, tuned_image, stats = tune(net, target, ws, tune_opts, on_tune_step)
    stem, out = Path(photo).stem, Path(out)
    paths = write_projection(out, stem, target, image, ws, frames)
    paths += [save_image(tuned_image, out / f"{stem}-tuned.png"),
              save_tuned(out / f"{stem}-tuned.safetensors", tuned.arch, tuned.G_kwargs, tuned.G_ema, tuned.provenance)]
    pivot_stats.update(image_stats(image, target))
    return paths, {**stats, **image_stats(tuned_image, target), "pivot": pivot_stats}
