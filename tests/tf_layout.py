"""TensorFlow-era StyleGAN2 pickles for tests: random variables in TF's names, shapes and order,
and what those variables compute, following NVIDIA's TF code (stylegan2 / stylegan2-ada
`networks*.py`, `upfirdn_2d.py`) operation by operation in float64.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nvidia_layout import TFNetwork, numpy_legacy_names, fake_nvidia_modules


def _nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return int(np.clip(int(fmap_base / 2.0 ** stage), 1, fmap_max))


def tf_generator_variables(rng: np.random.RandomState, resolution: int, fmap_base: int, fmap_max: int,
                           latent: int, dlatent: int, mapping_layers: int, label_size: int = 0,
                           num_channels: int = 3) -> tuple[list, list, list]:
    """(G own, mapping, synthesis) variable lists of a TF StyleGAN2 generator, random values, TF order."""
    def rand(*shape: int) -> np.ndarray:
        return rng.randn(*shape).astype(np.float32)

    mapping = []
    if label_size:
        mapping += [("LabelEmbed/weight", rand(label_size, latent)), ("LabelEmbed/bias", rand(latent) * 0.1)]
    fan_in = latent * (2 if label_size else 1)
    for i in range(mapping_layers):
        mapping += [(f"Dense{i}/weight", rand(fan_in, dlatent)), (f"Dense{i}/bias", rand(dlatent))]
        fan_in = dlatent
    log2 = int(math.log2(resolution))
    synthesis = [(f"noise{i}", rand(1, 1, 2 ** ((i + 5) // 2), 2 ** ((i + 5) // 2))) for i in range(log2 * 2 - 3)]

    def modulated(scope: str, k: int, cin: int, cout: int, noise: bool = True) -> None:
        synthesis.extend([(f"{scope}/weight", rand(k, k, cin, cout)), (f"{scope}/mod_weight", rand(dlatent, cin)),
                          (f"{scope}/mod_bias", rand(cin) * 0.2)])
        if noise:
            synthesis.append((f"{scope}/noise_strength", np.float32(rng.randn() * 0.3)))
        synthesis.append((f"{scope}/bias", rand(cout) * 0.2))

    c4 = _nf(1, fmap_base, fmap_max)
    synthesis.append(("4x4/Const/const", rand(1, c4, 4, 4)))
    modulated("4x4/Conv", 3, c4, c4)
    modulated("4x4/ToRGB", 1, c4, num_channels, noise=False)
    for res in range(3, log2 + 1):
        cin, cout = _nf(res - 2, fmap_base, fmap_max), _nf(res - 1, fmap_base, fmap_max)
        modulated(f"{2 ** res}x{2 ** res}/Conv0_up", 3, cin, cout)
        modulated(f"{2 ** res}x{2 ** res}/Conv1", 3, cout, cout)
        modulated(f"{2 ** res}x{2 ** res}/ToRGB", 1, cout, num_channels, noise=False)
    own = [("lod", np.float32(0)), ("dlatent_avg", rand(dlatent))]
    return own, mapping, synthesis


def tf_discriminator_variables(rng: np.random.RandomState, resolution: int, fmap_base: int, fmap_max: int,
                               mbstd_num_features: int = 1, label_size: int = 0, mapping_layers: int = 0,
                               num_channels: int = 3) -> list:
    """Variables of a TF StyleGAN2 residual discriminator (conditional: stylegan2-ada's), random values."""
    def rand(*shape: int) -> np.ndarray:
        return rng.randn(*shape).astype(np.float32)

    log2 = int(math.log2(resolution))
    nf0 = _nf(0, fmap_base, fmap_max)
    out = []
    if label_size:
        out += [("LabelEmbed/weight", rand(label_size, nf0)), ("LabelEmbed/bias", rand(nf0))]
        for i in range(mapping_layers):
            out += [(f"Mapping{i}/weight", rand(nf0, nf0)), (f"Mapping{i}/bias", rand(nf0))]
    for res in range(log2, 2, -1):
        scope = f"{2 ** res}x{2 ** res}"
        cin, cout = _nf(res - 1, fmap_base, fmap_max), _nf(res - 2, fmap_base, fmap_max)
        if res == log2:
            out += [(f"{scope}/FromRGB/weight", rand(1, 1, num_channels, cin)), (f"{scope}/FromRGB/bias", rand(cin))]
        out += [(f"{scope}/Conv0/weight", rand(3, 3, cin, cin)), (f"{scope}/Conv0/bias", rand(cin)),
                (f"{scope}/Conv1_down/weight", rand(3, 3, cin, cout)), (f"{scope}/Conv1_down/bias", rand(cout)),
                (f"{scope}/Skip/weight", rand(1, 1, cin, cout))]
    c4 = _nf(1, fmap_base, fmap_max)
    out += [("4x4/Conv/weight", rand(3, 3, c4 + mbstd_num_features, c4)), ("4x4/Conv/bias", rand(c4)),
            ("4x4/Dense0/weight", rand(c4 * 16, nf0)), ("4x4/Dense0/bias", rand(nf0)),
            ("Output/weight", rand(nf0, nf0 if label_size else 1)), ("Output/bias", rand(nf0 if label_size else 1))]
    return out


def tf_generator_network(own: list, mapping: list, synthesis: list, static_kwargs: dict,
                         version: int = 4, name: str = "G") -> TFNetwork:
    """A TF `G_main` network with its `synthesis` and `mapping` components (in TF's creation order)."""
    comps = {"synthesis": TFNetwork("G_synthesis", "G_synthesis_stylegan2", synthesis, static_kwargs=static_kwargs,
                                    version=version),
             "mapping": TFNetwork("G_mapping", "G_mapping", mapping, static_kwargs=static_kwargs, version=version)}
    return TFNetwork(name, "G_main", own, comps, static_kwargs, version=version)


def tf_pickle(path: Path, nets: Any, protocol: int = 4, numpy_legacy: bool = True) -> Path:
    """Write `nets` (the `(G, D, Gs)` tuple) as NVIDIA's TF code did (numpy 1.x names by default)."""
    with fake_nvidia_modules():
        data = pickle.dumps(nets, protocol=protocol)
    path.write_bytes(numpy_legacy_names(data) if numpy_legacy else data)
    return path


# --- What the TF variables compute, following the TF code step by step -------------------------------

def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).double()


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2)


def _dense(x: torch.Tensor, p: dict, scope: str, lrmul: float = 1.0) -> torch.Tensor:
    """dense_layer + apply_bias_act: x @ (w * he * lrmul) + b * lrmul, w stored [in, out]."""
    w = _t(p[f"{scope}/weight"])
    return x @ (w * lrmul / math.sqrt(w.shape[0])) + _t(p[f"{scope}/bias"]) * lrmul


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


def _fir(x: torch.Tensor, k: torch.Tensor, pad0: int, pad1: int) -> torch.Tensor:
    """upfirdn_2d's FIR step: pad, then filter every channel with the 2D kernel `k`."""
    c = x.shape[1]
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    return F.conv2d(x, k.flip([0, 1])[None, None].repeat(c, 1, 1, 1).to(x.dtype), groups=c)


def _kernel(gain: float = 1.0) -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    k = torch.outer(k, k)
    return k / k.sum() * gain


def _conv_tf(x: torch.Tensor, w: torch.Tensor, up: bool = False, down: bool = False) -> torch.Tensor:
    """TF conv2d on NCHW with a [kh, kw, in, out] kernel; up/down as upsample_conv_2d / conv_downsample_2d."""
    kh = w.shape[0]
    if up:  # conv2d_transpose with the kernel flipped and in/out swapped, then the FIR filter
        wt = w.flip([0, 1]).permute(2, 3, 0, 1)  # [in, out, kh, kw] for conv_transpose2d
        x = F.conv_transpose2d(x, wt, stride=2)
        p = (4 - 2) - (kh - 1)
        return _fir(x, _kernel(4.0), (p + 1) // 2 + 1, p // 2 + 1)
    if down:
        p = (4 - 2) + (kh - 1)
        x = _fir(x, _kernel(), (p + 1) // 2, p // 2)
        return F.conv2d(x, w.permute(3, 2, 0, 1), stride=2)
    return F.conv2d(x, w.permute(3, 2, 0, 1), padding=kh // 2)


def _modulated(x: torch.Tensor, dlatent: torch.Tensor, p: dict, scope: str, demodulate: bool = True,
               up: bool = False) -> torch.Tensor:
    """modulated_conv2d_layer, one sample at a time (TF's fused_modconv=True path)."""
    w = _t(p[f"{scope}/weight"])
    kh, _, cin, _ = w.shape
    w = w / math.sqrt(kh * kh * cin)
    s = dlatent @ (_t(p[f"{scope}/mod_weight"]) / math.sqrt(dlatent.shape[1])) + _t(p[f"{scope}/mod_bias"]) + 1
    out = []
    for b in range(x.shape[0]):
        ww = w * s[b][None, None, :, None]
        if demodulate:
            ww = ww * (ww.square().sum(dim=[0, 1, 2]) + 1e-8).rsqrt()[None, None, None, :]
        out.append(_conv_tf(x[b:b + 1], ww, up=up))
    return torch.cat(out)


def tf_generator(params: dict, z: np.ndarray, resolution: int, mapping_lrmul: float = 0.01,
                 truncation_psi: float = 1.0, labels: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(dlatents, images) of a TF StyleGAN2 generator with noise read from its variables (float64)."""
    x = _normalize(_t(z))
    if labels is not None:
        x = torch.cat([x, _normalize(_dense(_t(labels), params, "mapping/LabelEmbed"))], dim=1)
    i = 0
    while f"mapping/Dense{i}/weight" in params:
        x = _lrelu(_dense(x, params, f"mapping/Dense{i}", mapping_lrmul))
        i += 1
    log2 = int(math.log2(resolution))
    num_layers = log2 * 2 - 2
    dlatents = x[:, None].repeat(1, num_layers, 1)
    if truncation_psi != 1:
        avg = _t(params["dlatent_avg"])
        dlatents = avg + (dlatents - avg) * truncation_psi

    def layer(x: torch.Tensor, idx: int, scope: str, up: bool = False) -> torch.Tensor:
        x = _modulated(x, dlatents[:, idx], params, scope, up=up)
        x = x + _t(params[f"synthesis/noise{idx}"]) * float(params[f"{scope}/noise_strength"])
        return _lrelu(x + _t(params[f"{scope}/bias"])[None, :, None, None])

    def torgb(x: torch.Tensor, idx: int, scope: str) -> torch.Tensor:
        return _modulated(x, dlatents[:, idx], params, scope, demodulate=False) + \
            _t(params[f"{scope}/bias"])[None, :, None, None]

    x = _t(params["synthesis/4x4/Const/const"]).repeat(z.shape[0], 1, 1, 1)
    x = layer(x, 0, "synthesis/4x4/Conv")
    y = torgb(x, 1, "synthesis/4x4/ToRGB")
    for res in range(3, log2 + 1):
        scope = f"synthesis/{2 ** res}x{2 ** res}"
        x = layer(x, res * 2 - 5, f"{scope}/Conv0_up", up=True)
        x = layer(x, res * 2 - 4, f"{scope}/Conv1")
        y = _upsample(y) + torgb(x, res * 2 - 3, f"{scope}/ToRGB")
    return dlatents, y


def _upsample(y: torch.Tensor) -> torch.Tensor:
    """upsample_2d: insert zeros, then the FIR filter with gain 4."""
    n, c, h, w = y.shape
    up = y.new_zeros(n, c, h * 2, w * 2)
    up[:, :, ::2, ::2] = y
    return _fir(up, _kernel(4.0), 2, 1)


def tf_discriminator(params: dict, images: np.ndarray, resolution: int, mbstd_group_size: int = 4,
                     mbstd_num_features: int = 1, labels: np.ndarray | None = None,
                     mapping_lrmul: float = 0.1) -> torch.Tensor:
    """Scores of a TF StyleGAN2 residual discriminator (stylegan2-ada's label mapping when conditional)."""
    def conv(x: torch.Tensor, scope: str, down: bool = False, act: bool = True) -> torch.Tensor:
        x = _conv_tf(x, _t(params[f"{scope}/weight"]) / math.sqrt(np.prod(params[f"{scope}/weight"].shape[:3])),
                     down=down)
        if f"{scope}/bias" in params:
            x = x + _t(params[f"{scope}/bias"])[None, :, None, None]
        return _lrelu(x) if act else x

    log2 = int(math.log2(resolution))
    x = conv(_t(images), f"{resolution}x{resolution}/FromRGB")
    for res in range(log2, 2, -1):
        scope = f"{2 ** res}x{2 ** res}"
        t = x
        x = conv(x, f"{scope}/Conv0")
        x = conv(x, f"{scope}/Conv1_down", down=True)
        t = conv(t, f"{scope}/Skip", down=True, act=False)
        x = (x + t) * (1 / math.sqrt(2))
    if mbstd_num_features:
        g = min(mbstd_group_size, x.shape[0])
        n, c, h, w = x.shape
        y = x.reshape(g, -1, mbstd_num_features, c // mbstd_num_features, h, w)
        y = (y - y.mean(dim=0, keepdim=True)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4], keepdim=True).mean(dim=2)
        x = torch.cat([x, y.repeat(g, 1, h, w)], dim=1)
    x = conv(x, "4x4/Conv")
    x = _lrelu(_dense(x.reshape(x.shape[0], -1), params, "4x4/Dense0"))
    x = _dense(x, params, "Output")
    if labels is None:
        return x
    y = _normalize(_dense(_t(labels), params, "LabelEmbed"))
    i = 0
    while f"Mapping{i}/weight" in params:
        y = _lrelu(_dense(y, params, f"Mapping{i}", mapping_lrmul))
        i += 1
    return (x * y).sum(dim=1, keepdim=True) / math.sqrt(y.shape[1])
