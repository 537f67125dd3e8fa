"""Convolutional VAE: the DCGAN generator is its decoder, this encoder maps images to q(z|x)."""
from __future__ import annotations

import torch

from facegen_cli.models.dcgan import Discriminator


class Encoder(Discriminator):
    """DCGAN discriminator body whose last conv yields the mean and log-variance of q(z|x).

    Constructor kwargs (stored in checkpoint headers): `z_dim` the size of z (the decoder, dcgan.Generator,
    takes the same); `img_resolution`, `img_channels`, `width` as in dcgan.Discriminator.
    """

    def __init__(self, z_dim: int = 128, img_resolution: int = 64, img_channels: int = 3, width: int = 64):
        super().__init__(img_resolution=img_resolution, img_channels=img_channels, width=width, out_dim=2 * z_dim)
        self.z_dim = z_dim

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar), each [N, z_dim]."""
        return self.outputs(img).chunk(2, dim=1)

    def sample(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The reparameterised draw z = mu + sigma * eps, with mu and logvar."""
        mu, logvar = self(img)
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp(), mu, logvar
