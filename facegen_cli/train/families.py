"""What the shared loop needs from a model family: networks, optimisers, phases, loss.

The families are derived from the `training` entries of facegen_cli/models/registry.py, the one
table of families; each objective there maps to a class here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.models.dcgan import RESOLUTIONS
from facegen_cli.models.registry import ARCHITECTURES, Architecture
from facegen_cli.models.stylegan3 import CONFIG_R_CHANGES, config_name
from facegen_cli.train.augment import AugmentPipe
from facegen_cli.train.classic_losses import GANLoss, VAELoss
from facegen_cli.train.options import TrainOptions
from facegen_cli.train.stylegan2_loss import StyleGAN2Loss


@dataclass
class Phase:
    """One optimiser step of the schedule: run `name` every `interval` steps with `gain`;
    parameters named in `frozen` never get gradients, so the optimiser leaves them as they are."""

    name: str
    module: nn.Module
    opt: torch.optim.Optimizer
    interval: int = 1
    gain: float = 1.0
    frozen: frozenset[str] = frozenset()

    def set_trainable(self, on: bool) -> None:
        for name, p in self.module.named_parameters():
            p.requires_grad_(on and name not in self.frozen)


class Family(Protocol):
    arch: str
    sample_kwargs: dict  # extra arguments for G when drawing the snapshot grids
    conditional: bool  # trains on the dataset's labels whether or not --cond is given
    options: tuple[str, ...]  # the model_kwargs it reads
    defaults: dict  # option values that replace the preset's where the command line leaves them unset

    def build(self, opts: TrainOptions, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
        """(G_kwargs, D_kwargs) for this run."""

    def network_options(self, G_kwargs: dict) -> dict:
        """The option values that rebuild a network with `G_kwargs` (for `--resume-from`)."""

    def phases(self, G: nn.Module, D: nn.Module, opts: TrainOptions) -> list[Phase]:
        """The optimiser steps of one training step, with their intervals."""

    def loss(self, G: nn.Module, D: nn.Module, augment: AugmentPipe | None, opts: TrainOptions):
        """An object with `accumulate(phase, real, real_c, gen_z, gen_c, gain, cur_nimg) -> stats`: scalar
        tensors by name; a `D_real_sign` entry (mean sign of D on reals) drives the ADA controller."""


def lazy_phases(name: str, module: nn.Module, lr: float, betas: tuple[float, float], reg_interval: int | None,
                make_opt: Callable = torch.optim.Adam, frozen: frozenset[str] = frozenset()) -> list[Phase]:
    """Main + lazily regularised phases, with Adam's lr and betas corrected for the lazy interval."""
    if not reg_interval:
        return [Phase(f"{name}both", module, make_opt(module.parameters(), lr=lr, betas=betas), frozen=frozen)]
    ratio = reg_interval / (reg_interval + 1)
    opt = make_opt(module.parameters(), lr=lr * ratio, betas=tuple(b ** ratio for b in betas))
    return [Phase(f"{name}main", module, opt, frozen=frozen),
            Phase(f"{name}reg", module, opt, reg_interval, float(reg_interval), frozen=frozen)]


def frozen_discriminator_layers(D: nn.Module, count: int) -> frozenset[str]:
    """Parameter names of D's first `count` layers, counted from the image as NVIDIA's `--freezed`
    counts them: each block's fromrgb, conv0, conv1 and skip, highest resolution first."""
    layers = [f"b{res}.{layer}" for res in getattr(D, "block_resolutions", [])
              for layer in ("fromrgb", "conv0", "conv1", "skip") if hasattr(getattr(D, f"b{res}"), layer)]
    if not 0 <= count <= len(layers):
        raise BadParameter("freezed", f"freezed {count}: D has {len(layers)} layers that can be frozen")
    chosen = tuple(f"{layer}." for layer in layers[:count])
    return frozenset(name for name, _ in D.named_parameters() if name.startswith(chosen))


def check_model_kwargs(arch: str, model_kwargs: dict, options: tuple[str, ...]) -> None:
    """Refuse a model_kwargs key family `arch` does not read (it reads `options`), naming the families that do."""
    unknown = sorted(set(model_kwargs) - set(options))
    if not unknown:
        return
    key = unknown[0]
    owners = [name for name, family in FAMILIES.items() if key in family.options]
    elsewhere = f"; {', '.join(owners)} take{'s' if len(owners) == 1 else ''} it" if owners else ""
    raise BadParameter(key, f"{key}: not an option of {arch}{elsewhere}")


class StyleGAN2Family:
    """StyleGAN2: NVIDIA's loss with style mixing, lazy R1 and lazy path-length regularisation."""

    sample_kwargs = {"noise_mode": "const"}
    min_resolution = 32
    G_reg_interval: int | None = 4
    D_reg_interval = 16

    def __init__(self, arch: Architecture):
        self.arch = arch.name
        self.conditional = arch.training.conditional
        self.options = arch.training.options
        self.defaults = arch.training.defaults

    def build(self, opts: TrainOptions, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
        check_model_kwargs(self.arch, opts.model_kwargs, self.options)
        if not self.min_resolution <= resolution <= 1024:
            raise BadInput(f"{self.arch} trains at {self.min_resolution}-1024 px; the data is {resolution}px")
        fp16 = dict(num_fp16_res=4, conv_clamp=256) if opts.fp16 else {}
        G_kwargs = dict(z_dim=opts.z_dim, c_dim=c_dim, w_dim=opts.w_dim, img_resolution=resolution,
                        img_channels=channels, mapping_layers=opts.map, channel_base=opts.cbase,
                        channel_max=opts.cmax, **fp16)
        D_kwargs = dict(c_dim=c_dim, img_resolution=resolution, img_channels=channels, channel_base=opts.cbase,
                        channel_max=opts.cmax, mbstd_group_size=min(opts.batch_gpu, 4), **fp16)
        return {**G_kwargs, **self.generator_kwargs(opts)}, D_kwargs

    def generator_kwargs(self, opts: TrainOptions) -> dict:
        """G's settings beyond those it shares with D."""
        return {}

    def network_options(self, G_kwargs: dict) -> dict:
        return dict(z_dim=G_kwargs["z_dim"], w_dim=G_kwargs["w_dim"], map=G_kwargs.get("mapping_layers", 8),
                    cbase=G_kwargs.get("channel_base", 32768), cmax=G_kwargs.get("channel_max", 512))

    def phases(self, G: nn.Module, D: nn.Module, opts: TrainOptions) -> list[Phase]:
        G_reg_interval = None if opts.pl_weight == 0 else self.G_reg_interval  # no lazy G step without path length
        return (lazy_phases("G", G, opts.glr, (0.0, 0.99), G_reg_interval)
                + lazy_phases("D", D, opts.dlr, (0.0, 0.99), self.D_reg_interval,
                              frozen=frozen_discriminator_layers(D, opts.freezed)))

    def loss(self, G: nn.Module, D: nn.Module, augment: AugmentPipe | None, opts: TrainOptions) -> StyleGAN2Loss:
        return StyleGAN2Loss(G, D, augment=augment, r1_gamma=opts.gamma, precision=opts.precision,
                             **self.loss_options(opts))

    def loss_options(self, opts: TrainOptions) -> dict:
        """StyleGAN2Loss's settings beyond R1 and precision: its defaults are StyleGAN2's, or the run's own."""
        chosen = dict(pl_weight=opts.pl_weight, style_mixing_prob=opts.style_mixing)
        return {key: value for key, value in chosen.items() if value is not None}


R_CHANNELS = 2  # config R doubles G's channel_base and channel_max (not D's)
BLUR_SIGMA = 10  # config R: D's images blurred this much at the start ...
BLUR_FADE = 200 / 32  # ... fading out over this many kimg per image of the batch


class StyleGAN3Family(StyleGAN2Family):
    """StyleGAN3 as NVIDIA's stylegan3 train.py sets it up: StyleGAN2's loss and discriminator, no style
    mixing and no path length (so no lazy G step: train.py sets G_reg_interval for stylegan2 only), G's
    magnitude EMAs over 20 kimg, and for config R (`--cfg stylegan3-r`) CONFIG_R_CHANGES and the blur."""

    min_resolution = 16
    G_reg_interval = None

    def generator_kwargs(self, opts: TrainOptions) -> dict:
        kw: dict = dict(magnitude_ema_beta=0.5 ** (opts.batch / 20000))
        if not opts.fp16:  # the generator's defaults are NVIDIA's fp16 layers
            kw.update(num_fp16_res=0, conv_clamp=None)
        if opts.cfg == "stylegan3-r":
            kw.update(CONFIG_R_CHANGES, channel_base=opts.cbase * R_CHANNELS, channel_max=opts.cmax * R_CHANNELS)
        return kw

    def network_options(self, G_kwargs: dict) -> dict:
        radial = config_name(G_kwargs) == "R"
        scale = R_CHANNELS if radial else 1
        shared = {"mapping_layers": 2, **G_kwargs, "channel_base": G_kwargs.get("channel_base", 32768) // scale,
                  "channel_max": G_kwargs.get("channel_max", 512) // scale}
        return {**super().network_options(shared), "cfg": "stylegan3-r" if radial else "stylegan3-t"}

    def loss_options(self, opts: TrainOptions) -> dict:
        # The blur is NVIDIA's train.py's (sigma 10 fading over batch * 200 / 32 kimg, for stylegan3-r alone: T
        # sees sharp images throughout), so a run here is set up as one there. The magnitude EMAs move with w_avg
        # in G's own pass of each step; NVIDIA moves both in the pass that draws D's fakes, also once a step.
        radial = opts.cfg == "stylegan3-r"
        blur = dict(blur_init_sigma=BLUR_SIGMA, blur_fade_kimg=opts.batch * BLUR_FADE) if radial else {}
        return dict(style_mixing_prob=0.0, pl_weight=0.0, synthesis_emas=True, **blur)


WGAN_N_CRITIC = 5
RECONSTRUCTIONS = ("bce", "mse")
CLASSIC_DEFAULTS = dict(batch=64, z_dim=128, glr=2e-4, dlr=2e-4, aug="noaug", ema_kimg=2.0, gamma=0.0)


class ClassicFamily:
    """DCGAN, cGAN, ACGAN, WGAN-GP and the VAE: DCGAN-style networks with their own objective."""

    sample_kwargs: dict = {}

    def __init__(self, arch: Architecture):
        self.arch = arch.name
        self.objective = arch.training.objective  # bce, acgan, wgan or vae
        self.conditional = arch.training.conditional
        self.options = arch.training.options
        self.defaults = {**CLASSIC_DEFAULTS, **arch.training.defaults}

    def build(self, opts: TrainOptions, resolution: int, channels: int, c_dim: int) -> tuple[dict, dict]:
        kw = opts.model_kwargs
        check_model_kwargs(self.arch, kw, self.options)
        if opts.freezed:
            raise BadParameter("freezed", "freezed freezes StyleGAN2 discriminator layers; the classic families "
                                          "take none")
        if resolution not in RESOLUTIONS:
            raise BadInput(f"{self.arch} trains at {', '.join(map(str, RESOLUTIONS))} px; the data is {resolution}px")
        if self.conditional and c_dim == 0:
            raise BadInput(f"{self.arch} needs labels: prepare the data with its labels (facegen prepare's labels "
                           "option)")
        if self.objective == "vae" and (c_dim or opts.aug != "noaug"):
            raise BadInput("vae trains unconditionally and without augmentation (cond off, aug noaug)")
        if kw.get("recon", "bce") not in RECONSTRUCTIONS:
            raise BadParameter("recon", f"recon must be one of {', '.join(RECONSTRUCTIONS)}, got {kw['recon']!r}")
        if opts.gamma and self.objective != "wgan":
            raise BadParameter("gamma", f"gamma weighs R1 (stylegan2) or the gradient penalty (wgan-gp), not "
                                        f"{self.arch}")
        width = kw.get("width", 64)
        G_kwargs = dict(z_dim=opts.z_dim, c_dim=c_dim, img_resolution=resolution, img_channels=channels,
                        width=width, pixel_norm=kw.get("pixel_norm", False))
        if self.objective == "vae":
            return G_kwargs, dict(z_dim=opts.z_dim, img_resolution=resolution, img_channels=channels, width=width)
        D_kwargs = dict(c_dim=c_dim, img_resolution=resolution, img_channels=channels, width=width,
                        spectral_norm=kw.get("spectral_norm", False), mbstd=kw.get("mbstd", False),
                        batch_norm=self.objective != "wgan")
        return G_kwargs, D_kwargs

    def network_options(self, G_kwargs: dict) -> dict:
        kw = {key: G_kwargs[key] for key in ("width", "pixel_norm") if key in G_kwargs}
        return dict(z_dim=G_kwargs["z_dim"], model_kwargs=kw)

    def phases(self, G: nn.Module, D: nn.Module, opts: TrainOptions) -> list[Phase]:
        if self.objective == "vae":
            both = nn.ModuleList([G, D])
            return [Phase("VAE", both, torch.optim.Adam(both.parameters(), lr=opts.glr))]
        betas = (0.0, 0.9) if self.objective == "wgan" else (0.5, 0.999)
        n_critic = WGAN_N_CRITIC if self.objective == "wgan" else 1
        return [Phase("Dmain", D, torch.optim.Adam(D.parameters(), lr=opts.dlr, betas=betas)),
                Phase("Gmain", G, torch.optim.Adam(G.parameters(), lr=opts.glr, betas=betas), interval=n_critic)]

    def loss(self, G: nn.Module, D: nn.Module, augment: AugmentPipe | None, opts: TrainOptions) -> GANLoss | VAELoss:
        if self.objective == "vae":
            return VAELoss(G, D, beta=opts.model_kwargs.get("beta", 1.0), recon=opts.model_kwargs.get("recon", "bce"))
        return GANLoss(G, D, augment, wasserstein=self.objective == "wgan", gp_weight=opts.gamma,
                       auxiliary=self.objective == "acgan")


OBJECTIVES: dict[str, Callable[[Architecture], Family]] = {
    "stylegan2": StyleGAN2Family, "stylegan3": StyleGAN3Family, "bce": ClassicFamily, "acgan": ClassicFamily,
    "wgan": ClassicFamily, "vae": ClassicFamily,
}
FAMILIES: dict[str, Family] = {name: OBJECTIVES[arch.training.objective](arch)
                               for name, arch in ARCHITECTURES.items() if arch.training is not None}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise BadParameter("model", f"model {name!r} is not a family facegen trains; use one of "
                                    f"{', '.join(FAMILIES)}") from None
