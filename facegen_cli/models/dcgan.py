"""DCGAN networks for 32-128 px: a transposed-conv generator and a conv discriminator.

Both take an optional label vector (`c_dim > 0`): the generator concatenates it to z, the
discriminator to the image as constant feature maps (the classic conditional GAN). Options:
spectral norm on every discriminator conv, pixel norm in the generator (ProGAN's per-pixel
feature normalisation after every block, on top of batch norm, which keeps the samples of a
batch apart: pixel norm alone let G collapse to one image on faces) and a minibatch-stddev
layer before D's output.
The same discriminator body serves ACGAN (models/cgan.py), the VAE encoder (models/vae.py)
and the WGAN-GP critic (without batch norm).
"""
from __future__ import annotations

import torch
from torch import nn

from facegen_cli.models.layers import MinibatchStdLayer, normalize_2nd_moment

RESOLUTIONS = (32, 64, 128)
INIT_STD = 0.02  # DCGAN's weight initialisation


def channels_at(res: int, img_resolution: int, width: int) -> int:
    """Feature maps at resolution `res`: `width` next to the image, doubling per halving, capped at 8x."""
    return min(width * img_resolution // (2 * res), width * 8)


def check_resolution(res: int) -> int:
    """Raise ValueError unless `res` is one of the resolutions DCGAN builds."""
    if res not in RESOLUTIONS:
        raise ValueError(f"DCGAN-style networks build {', '.join(map(str, RESOLUTIONS))} px, not {res}")
    return res


def init_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_STD)
        nn.init.zeros_(module.bias)


class PixelNorm(nn.Module):
    """Scales each pixel's feature vector to unit root-mean-square (ProGAN's pixel norm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x, dim=1)


class Generator(nn.Module):
    """z (+ label) -> 4x4 by a transposed conv, then one stride-2 transposed conv per doubling, tanh.

    Keyword arguments (stored in checkpoint headers as `G_kwargs`, so part of the file format):
    z_dim: length of z. c_dim: length of the label concatenated to z (0: unconditional; cGAN/ACGAN).
    img_resolution: 32, 64 or 128. img_channels: 3 (RGB) or 1. width: feature maps next to the image
    (doubling at each halving). pixel_norm: ProGAN's pixel norm after each block.
    """

    def __init__(self, z_dim: int = 128, c_dim: int = 0, img_resolution: int = 64, img_channels: int = 3,
                 width: int = 64, pixel_norm: bool = False):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.img_resolution = check_resolution(img_resolution)
        self.img_channels = img_channels
        layers: list[nn.Module] = []
        res, ch = 1, z_dim + c_dim
        while res < img_resolution // 2:
            out = channels_at(res * 4 if res == 1 else res * 2, img_resolution, width)
            conv = (nn.ConvTranspose2d(ch, out, 4, 1, 0, bias=False) if res == 1
                    else nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=False))
            layers += [conv, nn.BatchNorm2d(out), nn.ReLU(True)] + ([PixelNorm()] if pixel_norm else [])
            res, ch = (4 if res == 1 else res * 2), out
        layers += [nn.ConvTranspose2d(ch, img_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
        """Images in [-1, 1]; `truncation_psi` < 1 pulls z toward its prior's mean (zero)."""
        x = z.to(torch.float32) * truncation_psi
        if self.c_dim:
            x = torch.cat([x, c.to(torch.float32)], dim=1)
        return self.net(x[:, :, None, None])


class Discriminator(nn.Module):
    """Image (+ label maps) -> stride-2 convs down to 4x4 -> [minibatch stddev] -> a 4x4 conv to `out_dim`.

    Keyword arguments (checkpoint `D_kwargs`, part of the file format): c_dim: label maps stacked on
    the image (cGAN). img_resolution, img_channels, width: as for the Generator. spectral_norm:
    spectral normalisation of every conv. mbstd: a minibatch-stddev feature map before the last conv.
    batch_norm: batch norm after the inner convs (off for the WGAN-GP critic). out_dim: outputs per
    image (1 logit; subclasses ask for more).
    """

    def __init__(self, c_dim: int = 0, img_resolution: int = 64, img_channels: int = 3, width: int = 64,
                 spectral_norm: bool = False, mbstd: bool = False, batch_norm: bool = True, out_dim: int = 1):
        super().__init__()
        self.c_dim = c_dim
        self.img_resolution = check_resolution(img_resolution)
        self.img_channels = img_channels
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        norm = batch_norm and not spectral_norm  # spectral norm replaces batch norm, as in SNGAN
        layers: list[nn.Module] = []
        res, ch = img_resolution, img_channels + c_dim
        while res > 4:
            out = channels_at(res // 2, img_resolution, width)
            layers.append(sn(nn.Conv2d(ch, out, 4, 2, 1, bias=not norm or res == img_resolution)))
            if norm and res != img_resolution:  # no normalisation on the image itself
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            res, ch = res // 2, out
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStdLayer(group_size=4) if mbstd else None
        self.head = sn(nn.Conv2d(ch + (1 if mbstd else 0), out_dim, 4, 1, 0))
        self.apply(init_weights)

    def outputs(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """All `out_dim` outputs per image, [N, out_dim]."""
        x = img.to(torch.float32)
        if self.c_dim:
            x = torch.cat([x, c.to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        x = self.body(x)
        if self.mbstd is not None:
            x = self.mbstd(x)
        return self.head(x).flatten(1)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Real/fake logits (or critic scores), [N, 1]."""
        return self.outputs(img, c)[:, :1]
