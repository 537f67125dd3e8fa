"""Model families by name: how to build each one's networks, what it can do and how it trains.

This is the one table of families: checkpoints rebuild networks from it, and `facegen train`
derives its training families from the `training` entries (facegen_cli/train/families.py), so
adding a family is one `register` call here (plus its loss, if its objective is new).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from facegen_cli.errors import FacegenError
from facegen_cli.models import cgan, dcgan, stylegan2, stylegan3, vae


@dataclass(frozen=True)
class Training:
    """How the shared training loop trains a family: plain data, so models never import train."""

    objective: str  # stylegan2, stylegan3, bce, acgan, wgan or vae: the loss and optimiser schedule
    conditional: bool = False  # trains on the dataset's labels whether or not cond is asked for
    options: tuple[str, ...] = ()  # the TrainOptions.model_kwargs it reads
    defaults: dict = field(default_factory=dict)  # option values replacing the preset's where left unset


@dataclass(frozen=True)
class Architecture:
    """A model family: its generator and discriminator builders and its capabilities."""

    name: str
    make_G: Callable[..., nn.Module]
    make_D: Callable[..., nn.Module] | None
    has_wplus: bool = False  # per-layer latents (style mixing, layer-wise edits)
    training: Training | None = None  # None: loaded and converted, not trained here


ARCHITECTURES: dict[str, Architecture] = {}


def register(arch: Architecture) -> None:
    ARCHITECTURES[arch.name] = arch


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise FacegenError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None


GAN_OPTIONS = ("width", "pixel_norm", "spectral_norm", "mbstd")  # dcgan.Generator / Discriminator settings
VAE_OPTIONS = ("width", "pixel_norm", "beta", "recon")  # the generator's settings, then the loss's

register(Architecture("stylegan2", stylegan2.Generator, stylegan2.Discriminator, has_wplus=True,
                      training=Training("stylegan2")))
# NVIDIA trains StyleGAN3 generators against the StyleGAN2 discriminator, with StyleGAN2's loss set its own way.
register(Architecture("stylegan3", stylegan3.Generator, stylegan2.Discriminator, has_wplus=True,
                      training=Training("stylegan3")))
register(Architecture("dcgan", dcgan.Generator, dcgan.Discriminator, training=Training("bce", options=GAN_OPTIONS)))
register(Architecture("cgan", dcgan.Generator, dcgan.Discriminator,
                      training=Training("bce", conditional=True, options=GAN_OPTIONS)))
register(Architecture("acgan", dcgan.Generator, cgan.ACGANDiscriminator,
                      training=Training("acgan", conditional=True, options=GAN_OPTIONS)))
register(Architecture("wgan-gp", dcgan.Generator, dcgan.Discriminator,
                      training=Training("wgan", options=GAN_OPTIONS, defaults=dict(glr=1e-4, dlr=1e-4, gamma=10.0))))
register(Architecture("vae", dcgan.Generator, vae.Encoder,
                      training=Training("vae", options=VAE_OPTIONS, defaults=dict(glr=1e-3, dlr=1e-3))))
