"""The encoder network: image -> W+ as one w plus per-layer offsets (e4e), relative to the network's w_avg.

The trunk is the residual discriminator's blocks (FromRGB, conv, downsampling conv, skip) from the image's
resolution down to 4x4; a 3x3 conv and a dense layer make a feature vector; two dense heads read it: one w
(the first layer's latent) and an offset for every later layer. Both heads start at zero, so an untrained
encoder answers w_avg for every image. The offsets' size is what `offset_norm` measures (its regulariser
keeps the latent near W, where edits work).
"""
from __future__ import annotations

import torch
from torch import nn

from facegen_cli.models.layers import Conv2dLayer, FullyConnectedLayer
from facegen_cli.models.stylegan2 import DiscriminatorBlock, channels_for
from facegen_cli.precision import fp32_part


class Encoder(nn.Module):
    """NCHW images in [-1, 1] -> W+ [N, num_ws, w_dim].

    The keyword arguments are stored in encoder files, so they are part of the file format:
    img_resolution: input size in pixels, a power of two from 8 (the network's own).
    img_channels: 3 for RGB, 1 for grayscale.
    w_dim: length of w (the network's).
    num_ws: W+ entries (the network's).
    channel_base: feature maps at a resolution are min(channel_base / resolution, channel_max).
    channel_max: the most feature maps of any block.
    features: length of the feature vector the heads read.
    """

    def __init__(self, img_resolution: int, img_channels: int, w_dim: int, num_ws: int, channel_base: int = 4096,
                 channel_max: int = 128, features: int = 256):
        super().__init__()
        self.kwargs = dict(img_resolution=img_resolution, img_channels=img_channels, w_dim=w_dim, num_ws=num_ws,
                           channel_base=channel_base, channel_max=channel_max, features=features)
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.w_dim, self.num_ws = w_dim, num_ws
        self.block_resolutions = [r for r in (img_resolution >> i for i in range(img_resolution.bit_length()))
                                  if r > 4]
        for res in self.block_resolutions:
            self.add_module(f"b{res}", DiscriminatorBlock(
                channels_for(res, channel_base, channel_max) if res < img_resolution else 0,
                channels_for(res, channel_base, channel_max), channels_for(res // 2, channel_base, channel_max),
                res, img_channels))
        top = channels_for(4, channel_base, channel_max)
        self.conv = Conv2dLayer(top, top, kernel_size=3, activation="lrelu")
        self.fc = FullyConnectedLayer(top * 16, features, activation="lrelu")
        self.w = FullyConnectedLayer(features, w_dim)
        self.offsets = FullyConnectedLayer(features, (num_ws - 1) * w_dim)
        with torch.no_grad():
            self.w.weight.zero_()
            self.offsets.weight.zero_()
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, images)
        x = self.conv(x)
        with fp32_part("mapping", x):  # the heads answer in W, which stays fp32 as the mapping network's output
            h = self.fc(x.float().flatten(1))
            w = self.w_avg + self.w(h)
            offsets = self.offsets(h).view(-1, self.num_ws - 1, self.w_dim)
            return torch.cat([w[:, None], w[:, None] + offsets], dim=1)


def offset_norm(ws: torch.Tensor) -> torch.Tensor:
    """Per image, the mean length of the offsets of W+ entries from the first one (0 for a latent in W)."""
    return (ws[:, 1:] - ws[:, :1]).norm(dim=2).mean(dim=1)
