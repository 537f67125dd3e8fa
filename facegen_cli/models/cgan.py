"""Conditional GANs on labels: the classic cGAN is the DCGAN pair with `c_dim > 0` (labels
concatenated into G and D); ACGAN's discriminator sees only the image and also predicts the
labels (multi-label logits, e.g. the 40 CelebA attributes)."""
from __future__ import annotations

import torch

from facegen_cli.models.dcgan import Discriminator


class ACGANDiscriminator(Discriminator):
    """DCGAN discriminator whose last conv also yields `c_dim` auxiliary attribute logits.

    Constructor kwargs (stored in checkpoint headers): `c_dim` the number of attribute logits (the image
    alone goes in; no label is concatenated); the others are dcgan.Discriminator's, documented there.
    """

    def __init__(self, c_dim: int = 40, img_resolution: int = 64, img_channels: int = 3, width: int = 64,
                 spectral_norm: bool = False, mbstd: bool = False, batch_norm: bool = True):
        if c_dim <= 0:
            raise ValueError("ACGAN needs labels to classify (c_dim > 0)")
        super().__init__(c_dim=0, img_resolution=img_resolution, img_channels=img_channels, width=width,
                         spectral_norm=spectral_norm, mbstd=mbstd, batch_norm=batch_norm, out_dim=1 + c_dim)
        self.aux_dim = c_dim

    def heads(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(real/fake logits [N, 1], attribute logits [N, c_dim])."""
        out = self.outputs(img)
        return out[:, :1], out[:, 1:]

    def classify(self, img: torch.Tensor) -> torch.Tensor:
        """Attribute probabilities for images in [-1, 1], [N, c_dim]."""
        return torch.sigmoid(self.heads(img)[1])
