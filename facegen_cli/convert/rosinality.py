"""Import rosinality/stylegan2-pytorch checkpoints (`.pt` with g, g_ema, d, latent_avg).

Their layers use the same equalised-learning-rate parametrisation as NVIDIA's, so the
import is a renaming plus reshapes; the file is read with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import argparse
import math
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from facegen_cli.checkpoint import NetworkParts
from facegen_cli.convert.nvidia_stylegan2 import channel_settings, load_exact
from facegen_cli.errors import FacegenError, torch_load_reason
from facegen_cli.models.stylegan2 import Discriminator, Generator


def _read(path: Path) -> dict:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols before refusing a file
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for foreign files
        raise FacegenError(f"{path}: not a loadable rosinality checkpoint: {torch_load_reason(e)}") from None
    if not isinstance(ckpt, dict) or "g_ema" not in ckpt:
        raise FacegenError(f"{path}: not a rosinality checkpoint (no g_ema inside)")
    return ckpt


def _g_layout(g: dict[str, torch.Tensor]) -> tuple[int, dict[int, int], int, int]:
    """(resolution, channels per resolution, mapping layers, w_dim) of a rosinality generator."""
    num_rgb = sum(1 for k in g if re.fullmatch(r"to_rgbs\.\d+\.bias", k))  # not the .conv.modulation.bias
    resolution = 2 ** (num_rgb + 2)
    channels = {4: g["conv1.conv.weight"].shape[1]}
    for i in range(num_rgb):
        channels[2 ** (i + 3)] = g[f"convs.{2 * i}.conv.weight"].shape[1]
    n_mlp = sum(1 for k in g if k.startswith("style.") and k.endswith(".weight"))
    return resolution, channels, n_mlp, g["style.1.weight"].shape[1]


def generator_state(g: dict[str, torch.Tensor], resolution: int) -> dict[str, torch.Tensor]:
    """Rename a rosinality generator state dict to our (NVIDIA's) layout."""
    out: dict[str, torch.Tensor] = {}

    def styled(src: str, dst: str, noise_idx: int) -> None:
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.noise_strength"] = g[f"{src}.noise.weight"].reshape([])
        out[f"{dst}.bias"] = g[f"{src}.activate.bias"]
        out[f"{dst}.noise_const"] = g[f"noises.noise_{noise_idx}"][0, 0]

    def torgb(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = g[f"{src}.bias"].reshape(-1)

    out["synthesis.b4.const"] = g["input.input"][0]
    styled("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    for i in range(int(math.log2(resolution)) - 2):
        res = 2 ** (i + 3)
        styled(f"convs.{2 * i}", f"synthesis.b{res}.conv0", 2 * i + 1)
        styled(f"convs.{2 * i + 1}", f"synthesis.b{res}.conv1", 2 * i + 2)
        torgb(f"to_rgbs.{i}", f"synthesis.b{res}.torgb")
    idx = 0
    while f"style.{idx + 1}.weight" in g:
        out[f"mapping.fc{idx}.weight"] = g[f"style.{idx + 1}.weight"]
        out[f"mapping.fc{idx}.bias"] = g[f"style.{idx + 1}.bias"]
        idx += 1
    return out


def discriminator_state(d: dict[str, torch.Tensor], resolution: int) -> dict[str, torch.Tensor]:
    """Rename a rosinality discriminator state dict to our (NVIDIA's) residual layout."""
    out = {f"b{resolution}.fromrgb.weight": d["convs.0.0.weight"], f"b{resolution}.fromrgb.bias": d["convs.0.1.bias"]}
    for i in range(1, int(math.log2(resolution)) - 1):
        res = resolution // 2 ** (i - 1)
        out[f"b{res}.conv0.weight"] = d[f"convs.{i}.conv1.0.weight"]
        out[f"b{res}.conv0.bias"] = d[f"convs.{i}.conv1.1.bias"]
        out[f"b{res}.conv1.weight"] = d[f"convs.{i}.conv2.1.weight"]
        out[f"b{res}.conv1.bias"] = d[f"convs.{i}.conv2.2.bias"]
        out[f"b{res}.skip.weight"] = d[f"convs.{i}.skip.1.weight"]
    out["b4.conv.weight"] = d["final_conv.0.weight"]
    out["b4.conv.bias"] = d["final_conv.1.bias"]
    for src, dst in (("final_linear.0", "b4.fc"), ("final_linear.1", "b4.out")):
        out[f"{dst}.weight"] = d[f"{src}.weight"]
        out[f"{dst}.bias"] = d[f"{src}.bias"]
    return out


def estimate_w_avg(G: Generator, samples: int = 10_000) -> torch.Tensor:
    """Mean of w over random z (fixed seed), for checkpoints saved without `latent_avg`."""
    z = torch.from_numpy(np.random.RandomState(123).randn(samples, G.z_dim)).float()
    with torch.no_grad():
        return G.mapping(z, None)[:, 0].mean(dim=0)


def import_rosinality(path: Path, modules: tuple[str, ...] = ("G_ema", "G", "D")) -> NetworkParts:
    """Read a rosinality checkpoint into a StyleGAN2 network's parts.

    Only the networks named in `modules` are built (G_ema always is).
    """
    ckpt = _read(path)
    try:
        resolution, channels, n_mlp, w_dim = _g_layout(ckpt["g_ema"])
    except KeyError as e:
        raise FacegenError(f"{path}: g_ema lacks {e} and is not a StyleGAN2 generator") from None
    channel_base, channel_max = channel_settings(channels)
    G_kwargs = dict(z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
                    mapping_layers=n_mlp, mapping_lr_multiplier=0.01, channel_base=channel_base,
                    channel_max=channel_max)

    def build_G(key: str, w_avg: torch.Tensor) -> Generator:
        state = generator_state(ckpt[key], resolution)
        state["mapping.w_avg"] = w_avg
        return load_exact(Generator(**G_kwargs), state, f"{path}: {key}")

    latent_avg = ckpt.get("latent_avg")
    G_ema = build_G("g_ema", torch.zeros([w_dim]) if latent_avg is None else latent_avg.reshape(-1))
    if latent_avg is None:
        G_ema.mapping.w_avg.copy_(estimate_w_avg(G_ema))
    G = build_G("g", G_ema.mapping.w_avg) if "g" in ckpt and "G" in modules else None
    out = NetworkParts(arch="stylegan2", G_kwargs=G_kwargs, G_ema=G_ema, G=G, D_kwargs={}, D=None,
                       provenance={"source": "rosinality-checkpoint", "source_file": path.name}, training_state=None)
    if "d" in ckpt and "D" in modules:
        out["D_kwargs"] = dict(c_dim=0, img_resolution=resolution, img_channels=3, channel_base=channel_base,
                               channel_max=channel_max)
        out["D"] = load_exact(Discriminator(**out["D_kwargs"]), discriminator_state(ckpt["d"], resolution),
                              f"{path}: d")
    return out
