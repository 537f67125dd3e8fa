"""Model families by name: how to build each one's networks and what it can do."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from facegen_cli.errors import FacegenError
from facegen_cli.models import cgan, dcgan, stylegan2, stylegan3, vae


@dataclass(frozen=True)
class Architecture:
    """A model family: its generator and discriminator builders and its capabilities."""

    name: str
    make_G: Callable[..., nn.Module]
    make_D: Callable[..., nn.Module] | None
    has_wplus: bool = False  # per-layer latents (style mixing, layer-wise edits)
    default_kwargs: dict = field(default_factory=dict)


ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> None:
    ARCHITECTURES[arch.name] = arch


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise FacegenError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None


register(Architecture("stylegan2", stylegan2.Generator, stylegan2.Discriminator, has_wplus=True))
# NVIDIA trains StyleGAN3 generators against the StyleGAN2 discriminator.
register(Architecture("stylegan3", stylegan3.Generator, stylegan2.Discriminator, has_wplus=True))
register(Architecture("dcgan", dcgan.Generator, dcgan.Discriminator))
register(Architecture("cgan", dcgan.Generator, dcgan.Discriminator))
register(Architecture("acgan", dcgan.Generator, cgan.ACGANDiscriminator))
register(Architecture("wgan-gp", dcgan.Generator, dcgan.Discriminator))
register(Architecture("vae", dcgan.Generator, vae.Encoder))
