"""StyleGAN2 networks from NVIDIA's TensorFlow-era pickles (stylegan2, stylegan2-ada TF).

Such a pickle holds `(G, D, Gs)`, each a `dnnlib.tflib.network.Network` whose state lists
its variables as `(name, numpy array)` pairs, sub-networks under `components`. The names
map onto ours as NVIDIA's `legacy.py` maps them:

- dense weights are stored `[in, out]` (we use `[out, in]`);
- conv weights are stored `[kh, kw, in, out]` (we use `[out, in, kh, kw]`); the upsampling
  convolutions are run by TF as transposed convolutions, so their kernels are also
  flipped in both spatial directions;
- the style affine's bias is stored without the constant 1 TF adds after it;
- per-layer constant noise is a list `synthesis/noiseN` over the layers in order.

Geometry (resolution, channels, latent sizes) is read from the variables' shapes; the
static kwargs supply only what shapes cannot tell (learning-rate multipliers, clamping).
"""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from torch import nn

from facegen_cli.convert.nvidia_stylegan2 import D_MAPPING_LR, channel_settings, load_exact
from facegen_cli.convert.safe_pickle import TFNetworkRecord
from facegen_cli.errors import FacegenError
from facegen_cli.models.stylegan2 import Discriminator, Generator

DEFAULT_RESAMPLE_KERNEL = [1, 3, 3, 1]


def _require_supported(kwargs: dict, what: str) -> None:
    """Refuse settings our StyleGAN2 cannot reproduce, naming the setting."""
    expected = {"nonlinearity": "lrelu", "mapping_nonlinearity": "lrelu", "fmap_decay": 1, "use_noise": True,
                "resample_kernel": DEFAULT_RESAMPLE_KERNEL}
    for key, want in expected.items():
        value = kwargs.get(key, want)
        if (list(value) if isinstance(value, (list, tuple)) else value) != want:
            raise FacegenError(f"{what}: {key}={value!r} is not supported (facegen needs {want!r})")


def _res_blocks(params: dict[str, np.ndarray], pattern: str) -> list[int]:
    return sorted({int(m.group(1)) for name in params if (m := re.fullmatch(pattern, name))})


def _count(params: dict[str, np.ndarray], pattern: str) -> int:
    return sum(1 for name in params if re.fullmatch(pattern, name))


def _dense(dst: str, src: str, params: dict[str, np.ndarray], out: dict[str, Any]) -> None:
    out[f"{dst}.weight"] = params[f"{src}/weight"].T
    out[f"{dst}.bias"] = params[f"{src}/bias"]


def _conv(weight: np.ndarray, flip: bool = False) -> np.ndarray:
    """[kh, kw, in, out] -> [out, in, kh, kw], flipped spatially for TF's transposed convolutions."""
    if flip:
        weight = weight[::-1, ::-1]
    return weight.transpose(3, 2, 0, 1)


def generator_state(params: dict[str, np.ndarray], resolution: int) -> dict[str, Any]:
    """Our Generator's state dict from a TF generator's variables."""
    out: dict[str, Any] = {"mapping.w_avg": params["dlatent_avg"],
                           "synthesis.b4.const": params["synthesis/4x4/Const/const"][0]}
    for i in range(_count(params, r"mapping/Dense\d+/weight")):
        _dense(f"mapping.fc{i}", f"mapping/Dense{i}", params, out)
    if "mapping/LabelEmbed/weight" in params:
        _dense("mapping.embed", "mapping/LabelEmbed", params, out)

    def modulated(dst: str, src: str, noise_idx: int | None, flip: bool = False) -> None:
        out[f"{dst}.weight"] = _conv(params[f"{src}/weight"], flip)
        out[f"{dst}.bias"] = params[f"{src}/bias"]
        out[f"{dst}.affine.weight"] = params[f"{src}/mod_weight"].T
        out[f"{dst}.affine.bias"] = params[f"{src}/mod_bias"] + 1
        if noise_idx is not None:
            out[f"{dst}.noise_strength"] = params[f"{src}/noise_strength"]
            out[f"{dst}.noise_const"] = params[f"synthesis/noise{noise_idx}"][0, 0]

    modulated("synthesis.b4.conv1", "synthesis/4x4/Conv", 0)
    modulated("synthesis.b4.torgb", "synthesis/4x4/ToRGB", None)
    for log2 in range(3, int(math.log2(resolution)) + 1):
        r = 2 ** log2
        modulated(f"synthesis.b{r}.conv0", f"synthesis/{r}x{r}/Conv0_up", 2 * log2 - 5, flip=True)
        modulated(f"synthesis.b{r}.conv1", f"synthesis/{r}x{r}/Conv1", 2 * log2 - 4)
        modulated(f"synthesis.b{r}.torgb", f"synthesis/{r}x{r}/ToRGB", None)
    return out


def discriminator_state(params: dict[str, np.ndarray], resolution: int) -> dict[str, Any]:
    """Our (residual) Discriminator's state dict from a TF discriminator's variables."""
    out: dict[str, Any] = {}
    _conv_layer(out, f"b{resolution}.fromrgb", params, f"{resolution}x{resolution}/FromRGB")
    for log2 in range(int(math.log2(resolution)), 2, -1):
        r = 2 ** log2
        _conv_layer(out, f"b{r}.conv0", params, f"{r}x{r}/Conv0")
        _conv_layer(out, f"b{r}.conv1", params, f"{r}x{r}/Conv1_down")
        out[f"b{r}.skip.weight"] = _conv(params[f"{r}x{r}/Skip/weight"])
    _conv_layer(out, "b4.conv", params, "4x4/Conv")
    _dense("b4.fc", "4x4/Dense0", params, out)
    _dense("b4.out", "Output", params, out)
    if "LabelEmbed/weight" in params:
        _dense("mapping.embed", "LabelEmbed", params, out)
        for i in range(_count(params, r"Mapping\d+/weight")):
            _dense(f"mapping.fc{i}", f"Mapping{i}", params, out)
    return out


def _conv_layer(out: dict[str, Any], dst: str, params: dict[str, np.ndarray], src: str) -> None:
    out[f"{dst}.weight"] = _conv(params[f"{src}/weight"])
    out[f"{dst}.bias"] = params[f"{src}/bias"]


def _checked(net: TFNetworkRecord, what: str, part: str, lod_pattern: str, wanted: str) -> tuple[dict, dict]:
    """Static kwargs and variables of a TF network, refusing settings or an architecture we cannot reproduce.

    Per-resolution `*_lod<N>` layers belong to the 'orig' architecture."""
    kw = net.static_kwargs
    _require_supported(kw, what)
    params = net.variables()
    arch = "orig" if any(re.fullmatch(lod_pattern, n) for n in params) else kw.get("architecture", wanted)
    if arch != wanted:
        raise FacegenError(f"{what}: {part} architecture {arch!r} is not supported (only {wanted!r})")
    return kw, params


def _fp16_and_clamp(kw: dict) -> dict:
    clamp = kw.get("conv_clamp")
    return dict(num_fp16_res=int(kw.get("num_fp16_res", 0)), conv_clamp=None if clamp is None else float(clamp))


def import_tf_generator(net: TFNetworkRecord, what: str) -> tuple[dict, nn.Module]:
    """(kwargs, our Generator) for a TF StyleGAN2 generator (`G` or `Gs`)."""
    kw, params = _checked(net, what, "synthesis", r"synthesis/ToRGB_lod\d+/.*", "skip")
    if "synthesis/4x4/Conv/mod_weight" not in params or "dlatent_avg" not in params:
        raise FacegenError(f"{what}: not a StyleGAN2 generator (no modulated convolutions; StyleGAN1 and "
                           f"StyleGAN2 configs A-D are not supported)")
    res_list = _res_blocks(params, r"synthesis/(\d+)x\1/Conv1/weight")
    resolution = max(res_list, default=4)
    channels = {4: params["synthesis/4x4/Conv/weight"].shape[3]}
    channels.update({r: params[f"synthesis/{r}x{r}/Conv1/weight"].shape[3] for r in res_list})
    channel_base, channel_max = channel_settings(channels)
    w_dim = params["dlatent_avg"].shape[0]
    embed = params.get("mapping/LabelEmbed/weight")
    c_dim = 0 if embed is None else embed.shape[0]
    z_dim = params["mapping/Dense0/weight"].shape[0] - (0 if embed is None else embed.shape[1])
    kwargs = dict(z_dim=int(z_dim), c_dim=int(c_dim), w_dim=int(w_dim), img_resolution=resolution,
                  img_channels=int(params["synthesis/4x4/ToRGB/weight"].shape[3]),
                  mapping_layers=_count(params, r"mapping/Dense\d+/weight"),
                  mapping_lr_multiplier=float(kw.get("mapping_lrmul", 0.01)),
                  channel_base=int(channel_base), channel_max=int(channel_max), **_fp16_and_clamp(kw))
    return kwargs, load_exact(Generator(**kwargs), generator_state(params, resolution), what)


def import_tf_discriminator(net: TFNetworkRecord, what: str) -> tuple[dict, nn.Module]:
    """(kwargs, our Discriminator) for a TF StyleGAN2 residual discriminator."""
    kw, params = _checked(net, what, "discriminator", r"FromRGB_lod\d+/.*", "resnet")
    res_list = _res_blocks(params, r"(\d+)x\1/Conv0/weight")
    if not res_list or "Output/weight" not in params:
        raise FacegenError(f"{what}: not a StyleGAN2 discriminator")
    resolution = max(res_list)
    channels = {r: params[f"{r}x{r}/Conv0/weight"].shape[3] for r in res_list}
    channels[4] = params["4x4/Conv/weight"].shape[3]
    channel_base, channel_max = channel_settings(channels)
    label_size = int(params["LabelEmbed/weight"].shape[0]) if "LabelEmbed/weight" in params else 0
    if int(kw.get("label_size", 0)) and not label_size:
        raise FacegenError(f"{what}: conditional discriminators of the original TF StyleGAN2 are not supported")
    conv_in = params["4x4/Conv/weight"].shape[2]
    kwargs = dict(c_dim=label_size, img_resolution=resolution,
                  img_channels=int(params[f"{resolution}x{resolution}/FromRGB/weight"].shape[2]),
                  channel_base=int(channel_base), channel_max=int(channel_max), **_fp16_and_clamp(kw),
                  cmap_dim=int(params["Output/weight"].shape[1]) if label_size else None,
                  mbstd_group_size=kw.get("mbstd_group_size", 4), mbstd_num_channels=int(conv_in - channels[4]))
    scale = {}
    if label_size:
        layers = _count(params, r"Mapping\d+/weight")
        kwargs["mapping_layers"] = layers
        ratio = float(kw.get("mapping_lrmul", 0.1)) / D_MAPPING_LR
        scale = {f"mapping.fc{i}.{p}": ratio for i in range(layers) for p in ("weight", "bias")}
    return kwargs, load_exact(Discriminator(**kwargs), discriminator_state(params, resolution), what, scale=scale)
