"""Latent inputs for mix / interpolate / edit: seeds or `.npy` files, as W+ or z.

A W+ model (StyleGAN2, StyleGAN3) works with W+ arrays `[num_ws, w_dim]`; the classic families
(DCGAN, VAE, cGAN) have no W, so their latents are z vectors `[z_dim]`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from facegen_cli.errors import BadInput
from facegen_cli.latent.io import load_latent
from facegen_cli.sampler import Sampler

Source = Union[int, Path]  # a seed, or a latent file


def latent_shape(sampler: Sampler, space: str = "w") -> tuple[int, ...]:
    """`(num_ws, w_dim)` for W+ on a W+ model, else `(z_dim,)`."""
    G = sampler.G
    return (G.num_ws, G.w_dim) if sampler.has_wplus and space == "w" else (G.z_dim,)


def read_latent(sampler: Sampler, source: Source, space: str = "w") -> np.ndarray:
    """One latent: a seed drawn alone (W+ through the sampler's mapping, or z) or a file (W+ on a W+ model), whose
    values lie within the sampler's bound."""
    if isinstance(source, int):
        return sampler.seed_latent(source) if space == "w" else sampler.zs([source])[0]
    if sampler.has_wplus and space == "z":
        raise BadInput(f"{source}: a latent file holds W; interpolating in z needs seed:N inputs")
    return sampler.check_latent(load_latent(source, latent_shape(sampler)), str(source))


def source_name(source: Source) -> str:
    """A short file-name-safe name: `seed0007` or the file's stem."""
    return f"seed{source:04d}" if isinstance(source, int) else Path(source).stem
