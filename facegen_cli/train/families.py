"""What the shared loop needs from a model family: networks, optimisers, phases, loss."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from facegen_cli.errors import BadInput
from facegen_cli.train.augment import AugmentPipe
from facegen_cli.train.options import TrainOptions
from facegen_cli.train.stylegan2_loss import StyleGAN2Loss


@dataclass
class Phase:
    """One optimiser step of the schedule: run `name` every `interval` steps with `gain`."""

    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    interval: int = 1
    gain: float = 1.0


class Family(Protocol):
    arch: str
    sample_kwargs: dict  # extra arguments for G when drawing the snapshot grids

    def build(self, opts: TrainOptions, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
        """(G_kwargs, D_kwargs) for this run."""

    def phases(self, G: nn.Module, D: nn.Module, opts: TrainOptions) -> list[Phase]:
        """The optimiser steps of one training step, with their intervals."""

    def loss(self, G: nn.Module, D: nn.Module, augment: AugmentPipe | None, opts: TrainOptions):
        """An object with `accumulate(phase, real, real_c, gen_z, gen_c, gain) -> stats`: scalar tensors
        by name; a `D_real_sign` entry (mean sign of D on reals) drives the ADA controller."""


def lazy_phases(name: str, module: nn.Module, lr: float, betas: tuple[float, float], reg_interval: int | None,
                make_opt: Callable = torch.optim.Adam) -> list[Phase]:
    """Main + lazily regularised phases, with Adam's lr and betas corrected for the lazy interval."""
    if not reg_interval:
        return [Phase(f"{name}both", module, make_opt(module.parameters(), lr=lr, betas=betas))]
    ratio = reg_interval / (reg_interval + 1)
    opt = make_opt(module.parameters(), lr=lr * ratio, betas=tuple(b ** ratio for b in betas))
    return [Phase(f"{name}main", module, opt), Phase(f"{name}reg", module, opt, reg_interval, float(reg_interval))]


class StyleGAN2Family:
    arch = "stylegan2"
    sample_kwargs = {"noise_mode": "const"}
    G_reg_interval = 4
    D_reg_interval = 16

    def build(self, opts: TrainOptions, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
        if not 32 <= resolution <= 1024:
            raise BadInput(f"StyleGAN2 trains at 32-1024 px; the data is {resolution}px")
        fp16 = dict(num_fp16_res=4, conv_clamp=256) if opts.fp16 else {}
        G_kwargs = dict(z_dim=opts.z_dim, c_dim=c_dim, w_dim=opts.w_dim, img_resolution=resolution,
                        img_channels=channels, mapping_layers=opts.map, channel_base=opts.cbase,
                        channel_max=opts.cmax, **fp16, **opts.model_kwargs)
        D_kwargs = dict(c_dim=c_dim, img_resolution=resolution, img_channels=channels, channel_base=opts.cbase,
                        channel_max=opts.cmax, mbstd_group_size=min(opts.batch_gpu, 4), **fp16)
        return G_kwargs, D_kwargs

    def phases(self, G: nn.Module, D: nn.Module, opts: TrainOptions) -> list[Phase]:
        return (lazy_phases("G", G, opts.glr, (0.0, 0.99), self.G_reg_interval)
                + lazy_phases("D", D, opts.dlr, (0.0, 0.99), self.D_reg_interval))

    def loss(self, G: nn.Module, D: nn.Module, augment: AugmentPipe | None, opts: TrainOptions) -> StyleGAN2Loss:
        return StyleGAN2Loss(G, D, augment=augment, r1_gamma=opts.gamma)


FAMILIES: dict[str, Family] = {"stylegan2": StyleGAN2Family()}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise BadInput(f"unknown --model {name!r}; use one of {', '.join(FAMILIES)}") from None
