"""A photo's latent from an encoder, in one forward pass: what `project --encoder` writes (and, with tuning,
the pivot that pivotal tuning starts from)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facegen_cli.encoder.store import EncoderFile, find_encoder
from facegen_cli.images import to_uint8
from facegen_cli.latent.project import align_photo, goal_image, image_stats, psnr, write_projection
from facegen_cli.latent.tuning import TuneOptions, run_tune
from facegen_cli.networks import Network
from facegen_cli.precision import resolve_precision, synthesis_in_precision


@torch.no_grad()
def encode(net: Network, found: EncoderFile, target: np.ndarray,
           precision: str = "fp32") -> tuple[np.ndarray, np.ndarray, dict]:
    """W+ [num_ws, w_dim] for the HWC uint8 `target` (at the network's size), its image, its distances."""
    G = net.G_ema
    device = next(G.parameters()).device
    goal = goal_image(target, G, device)
    ws = found.encoder(goal)
    image = synthesis_in_precision(G, ws, resolve_precision(precision, device), noise_mode="const")
    return ws[0].cpu().numpy(), to_uint8(image)[0], {"pixel_mse": float((image - goal).square().mean()),
                                                     "psnr_db": psnr(image, goal)}


def run_encode(net: Network, photo: str | Path, out: str | Path, encoder: str | os.PathLike,
               how: str = "ffhq", precision: str = "fp32", tune_opts: TuneOptions | None = None,
               on_tune_step: Callable[[int, dict], None] | None = None,
               on_faces: Callable[[int], None] | None = None) -> tuple[list[Path], dict]:
    """Align `photo` and encode it with `encoder` (a file, or `default` for the network's shipped one); write
    what `run_project` writes, or with `tune_opts` tune the network around the encoder's latent and write what
    `run_tune` writes."""
    found = find_encoder(encoder, net)
    if tune_opts is not None:
        return run_tune(net, photo, out, tune_opts=tune_opts, how=how, on_tune_step=on_tune_step,
                        on_faces=on_faces, find_pivot=lambda target: (*encode(net, found, target, precision), []))
    target = align_photo(photo, net.G_ema.img_resolution, how, on_faces)
    ws, image, stats = encode(net, found, target, precision)
    stats.update(image_stats(image, target))
    return write_projection(out, Path(photo).stem, target, image, ws, []), stats
