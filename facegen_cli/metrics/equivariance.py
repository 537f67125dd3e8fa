"""Translation equivariance as "Alias-Free Generative Adversarial Networks" measures it (EQ-T).

EQ-T is the PSNR, in dB over the image range [-1, 1], between the image drawn from an input
translated by a whole number of output pixels and the untranslated image shifted by the same
amount, over the pixels both cover. Higher is better; a perfectly equivariant network scores
infinity.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from facegen_cli.seeds import check_seed

# Renders a batch with the input translated by (tx, ty) in fractions of the image size.
Renderer = Callable[[float, float], torch.Tensor]


def shift_image(img: torch.Tensor, dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`img` moved right by `dx` and down by `dy` pixels, zero-filled, and the mask of covered pixels."""
    h, w = img.shape[-2:]
    out = torch.zeros_like(img)
    mask = torch.zeros_like(img)
    if abs(dx) < w and abs(dy) < h:
        src = img[..., max(-dy, 0): h - max(dy, 0), max(-dx, 0): w - max(dx, 0)]
        out[..., max(dy, 0): h - max(-dy, 0), max(dx, 0): w - max(-dx, 0)] = src
        mask[..., max(dy, 0): h - max(-dy, 0), max(dx, 0): w - max(-dx, 0)] = 1
    return out, mask


def psnr(sq_error_sum: float, count: float) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2) from a summed squared error over `count` values."""
    if count == 0:
        raise ValueError("no overlapping pixels to compare")
    mse = sq_error_sum / count
    return math.inf if mse == 0 else 20 * math.log10(2) - 10 * math.log10(mse)


def translation_psnr(render: Renderer, shifts: list[tuple[int, int]], resolution: int) -> float:
    """EQ-T of `render` over integer pixel `shifts`: PSNR of render(shift) against the shifted render(0, 0)."""
    reference = render(0.0, 0.0).to(torch.float64)
    err = count = 0.0
    for dx, dy in shifts:
        img = render(dx / resolution, dy / resolution).to(torch.float64)
        ref, mask = shift_image(reference, dx, dy)
        err += float(((img - ref).square() * mask).sum())
        count += float(mask.sum())
    return psnr(err, count)


def random_shifts(num: int, resolution: int, translate_max: float = 0.125, seed: int = 0) -> list[tuple[int, int]]:
    """`num` whole-pixel shifts, each axis uniform within +-translate_max of the image size."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(-translate_max, translate_max, size=[num, 2]) * resolution
    return [(int(x), int(y)) for x, y in np.rint(t)]


@torch.no_grad()
def generator_eqt(G: nn.Module, num_samples: int = 16, num_shifts: int = 4, translate_max: float = 0.125,
                  seed: int = 0, psi: float = 1.0) -> float:
    """EQ-T in dB of a generator whose synthesis input takes a user transform (StyleGAN3): `num_samples`
    latents, each drawn at `num_shifts` random whole-pixel translations."""
    check_seed(seed, "seed")
    synthesis = G.synthesis
    transform = getattr(getattr(synthesis, "input", None), "transform", None)
    if transform is None:
        raise ValueError("EQ-T needs a generator whose input can be translated (StyleGAN3)")
    device = transform.device
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn([num_samples, G.z_dim], generator=rng).to(device)
    c = None
    if G.c_dim:
        classes = torch.randint(G.c_dim, [num_samples], generator=rng)
        c = torch.nn.functional.one_hot(classes, G.c_dim).float().to(device)
    ws = G.mapping(z, c, truncation_psi=psi)
    saved = transform.clone()

    def render(tx: float, ty: float) -> torch.Tensor:
        m = torch.eye(3, device=device)
        m[0, 2], m[1, 2] = -tx, -ty
        transform.copy_(m)
        return synthesis(ws, noise_mode="const")

    try:
        return translation_psnr(render, random_shifts(num_shifts, G.img_resolution, translate_max, seed),
                                G.img_resolution)
    finally:
        transform.copy_(saved)
