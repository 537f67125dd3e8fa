"""Training objectives of the classic families, split into the phases the shared loop schedules.

`GANLoss` covers DCGAN and cGAN (non-saturating BCE), ACGAN (plus the auxiliary multi-label
BCE on real and generated images) and WGAN-GP (Wasserstein critic with gradient penalty);
`VAELoss` is the VAE's evidence lower bound, one phase for encoder and decoder together.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GP_WEIGHT = 10.0


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's (||grad D(x_hat)|| - 1)^2 on random points between real and generated images, per image."""
    eps = torch.rand([real.shape[0], 1, 1, 1], device=real.device)
    x_hat = real.lerp(fake, eps).requires_grad_(True)
    grads, = torch.autograd.grad(D(x_hat, c).sum(), x_hat, create_graph=True)
    return (grads.flatten(1).norm(dim=1) - 1).square()


class GANLoss:
    """Phases `Gmain` and `Dmain` of a DCGAN-style model: BCE or Wasserstein, optionally ACGAN."""

    def __init__(self, G: nn.Module, D: nn.Module, augment: nn.Module | None = None, wasserstein: bool = False,
                 gp_weight: float = GP_WEIGHT, auxiliary: bool = False):
        self.G = G
        self.D = D
        self.augment = augment
        self.wasserstein = wasserstein
        self.gp_weight = gp_weight
        self.auxiliary = auxiliary

    def run_D(self, img: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits, attribute logits or None) for possibly augmented images."""
        if self.augment is not None:
            img = self.augment(img)
        return self.D.heads(img) if self.auxiliary else (self.D(img, c), None)

    def accumulate(self, phase: str, real: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                   gen_c: torch.Tensor, gain: float, cur_nimg: int = 0) -> dict[str, torch.Tensor]:
        """Backpropagate this phase's loss (times `gain`) and return its statistics; nothing here follows
        `cur_nimg`, the images shown so far."""
        stats: dict[str, torch.Tensor] = {}
        if phase == "Gmain":
            logits, aux = self.run_D(self.G(gen_z, gen_c), gen_c)
            loss = -logits.mean() if self.wasserstein else F.softplus(-logits).mean()
            stats["loss_G"] = loss.detach()
            if aux is not None:
                loss_aux = F.binary_cross_entropy_with_logits(aux, gen_c)
                stats["loss_G_aux"] = loss_aux.detach()
                loss = loss + loss_aux
            loss.mul(gain).backward()
        elif phase == "Dmain":
            with torch.no_grad():
                fake = self.G(gen_z, gen_c)
            fake_logits, fake_aux = self.run_D(fake, gen_c)
            real_logits, real_aux = self.run_D(real, real_c)
            stats["D_real_sign"] = real_logits.detach().sign().mean()  # drives ADA
            if self.wasserstein:
                distance = real_logits.mean() - fake_logits.mean()
                penalty = gradient_penalty(self.D, real, fake, real_c).mean()
                stats["wasserstein"] = distance.detach()
                stats["gp_penalty"] = penalty.detach()
                loss = -distance + self.gp_weight * penalty
            else:
                loss_real, loss_fake = F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()
                stats["loss_D_real"] = loss_real.detach()
                stats["loss_D_fake"] = loss_fake.detach()
                loss = loss_real + loss_fake
            if real_aux is not None:
                loss_aux = F.binary_cross_entropy_with_logits(real_aux, real_c)
                stats["loss_D_aux"] = loss_aux.detach()
                stats["aux_accuracy"] = ((real_aux > 0) == (real_c > 0.5)).float().mean()
                loss = loss + loss_aux + F.binary_cross_entropy_with_logits(fake_aux, gen_c)
            loss.mul(gain).backward()
        else:
            raise ValueError(f"unknown phase {phase!r}")
        return stats


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample."""
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)


def reconstruction_loss(x: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-sample reconstruction error summed over pixels: BCE on [0, 1] intensities, or squared error."""
    if kind == "bce":
        p = ((x + 1) / 2).clamp(1e-6, 1 - 1e-6)
        return F.binary_cross_entropy(p, (target + 1) / 2, reduction="none").flatten(1).sum(dim=1)
    return (x - target).square().flatten(1).sum(dim=1)


class VAELoss:
    """Phase `VAE`: reconstruction + beta * KL through the reparameterised encoder draw."""

    def __init__(self, G: nn.Module, E: nn.Module, beta: float = 1.0, recon: str = "bce"):
        self.G = G
        self.E = E
        self.beta = beta
        self.recon = recon

    def accumulate(self, phase: str, real: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                   gen_c: torch.Tensor, gain: float, cur_nimg: int = 0) -> dict[str, torch.Tensor]:
        """Backpropagate the negative ELBO (times `gain`) and return its parts (at any `cur_nimg`)."""
        if phase != "VAE":
            raise ValueError(f"unknown phase {phase!r}")
        z, mu, logvar = self.E.sample(real)
        recon = reconstruction_loss(self.G(z, real_c), real, self.recon).mean()
        kl = kl_divergence(mu, logvar).mean()
        loss = recon + self.beta * kl
        loss.mul(gain).backward()
        return {"loss_recon": recon.detach(), "loss_kl": kl.detach(), "loss_VAE": loss.detach()}
