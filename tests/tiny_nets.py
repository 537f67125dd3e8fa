"""Tiny StyleGAN2 networks for tests: 32x32, 64 channels at most, 64-d latents, 2 mapping layers.

Every parameter is perturbed away from its initial value (biases and noise strengths start at
zero), so tests that compare noise modes, biases or imported weights compare something real.
"""
from __future__ import annotations

from pathlib import Path

import torch

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.models.stylegan2 import Discriminator, Generator

G_KWARGS = dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=32, img_channels=3, mapping_layers=2,
                mapping_lr_multiplier=0.01, channel_base=1024, channel_max=64, num_fp16_res=0, conv_clamp=None)
D_KWARGS = dict(c_dim=0, img_resolution=32, img_channels=3, channel_base=1024, channel_max=64)


def perturb(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Add seeded noise to every parameter and set a random w_avg; returns the module in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
        for name, buf in module.named_buffers():
            if name.endswith("w_avg"):
                buf.copy_(torch.randn(buf.shape, generator=gen))
    return module.eval().requires_grad_(False)


def tiny_G(seed: int = 0, **overrides) -> Generator:
    torch.manual_seed(seed)
    return perturb(Generator(**{**G_KWARGS, **overrides}), seed + 1000)


def tiny_D(seed: int = 0, **overrides) -> Discriminator:
    torch.manual_seed(seed)
    return perturb(Discriminator(**{**D_KWARGS, **overrides}), seed + 2000)


def tiny_checkpoint(path: Path, seed: int = 0, **overrides) -> Path:
    """A facegen checkpoint holding a tiny G_ema (and nothing else)."""
    G = tiny_G(seed, **overrides)
    return save_checkpoint(path, "stylegan2", {**G_KWARGS, **overrides}, G, provenance={"dataset": "tiny-test"})


# Tiny StyleGAN3 (T unless R settings are passed): 16x16, 6 alias-free layers, num_ws 8.
SG3_KWARGS = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=256, channel_max=32,
                  num_layers=6)
SG3_R = dict(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=64)


def tiny_sg3(seed: int = 0, **overrides) -> torch.nn.Module:
    """A perturbed tiny StyleGAN3 generator whose layers' input magnitudes are tracked (not 1)."""
    from facegen_cli.models.stylegan3 import Generator as StyleGAN3

    torch.manual_seed(seed)
    G = perturb(StyleGAN3(**{**SG3_KWARGS, **overrides}), seed + 3000)
    with torch.no_grad():
        for name, buf in G.named_buffers():
            if name.endswith("magnitude_ema"):
                buf.fill_(0.5 + (sum(map(ord, name)) % 7) / 7)
    return G
