"""StyleGAN2's training objective: non-saturating logistic loss, lazy R1, path-length
regularisation and style-mixing regularisation, split into phases the loop schedules. StyleGAN3 trains
with it as NVIDIA's stylegan3 repository does: no style mixing or path length, magnitude EMAs moved by
G's training passes, and (config R) D's images blurred early in the run.

Under `precision="bf16"` the synthesis and discriminator passes run in bf16 autocast (with the
parts listed in `facegen_cli.precision.FP32_PARTS` in fp32); the mapping network, the images
handed between G and D, the logits, losses and penalties are fp32, and so are the parameters
and optimizers the gradients reach."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from facegen_cli.ops.upfirdn2d import upfirdn2d
from facegen_cli.precision import Precision, resolve_precision, synthesis_in_precision


def blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """`img` low-passed as NVIDIA blurs D's images: taps 2^-(x/sigma)^2 out to 3 sigma, summing to 1."""
    size = math.floor(sigma * 3)
    if size <= 0:
        return img
    taps = torch.arange(-size, size + 1, device=img.device, dtype=torch.float32).div(sigma).square().neg().exp2()
    return upfirdn2d(img, taps / taps.sum(), padding=size)


class StyleGAN2Loss:
    """Accumulates the gradients of one phase (`Gmain`, `Greg`, `Dmain`, `Dreg`, `*both`)."""

    def __init__(self, G: nn.Module, D: nn.Module, augment: nn.Module | None = None, r1_gamma: float = 10.0,
                 style_mixing_prob: float = 0.9, pl_weight: float = 2.0, pl_batch_shrink: int = 2,
                 pl_decay: float = 0.01, precision: str | Precision = "fp32", blur_init_sigma: float = 0.0,
                 blur_fade_kimg: float = 0.0, synthesis_emas: bool = False):
        """`blur_init_sigma`: the blur of every image D sees at the start, fading linearly to none over
        `blur_fade_kimg`; `synthesis_emas`: G's synthesis tracks statistics (StyleGAN3's magnitude EMAs), moved
        by the same passes that move w_avg."""
        self.G = G
        self.D = D
        self.augment = augment
        self.r1_gamma = r1_gamma
        self.style_mixing_prob = style_mixing_prob
        self.pl_weight = pl_weight
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_mean = torch.zeros([])
        self.precision = resolve_precision(precision, next(G.parameters()).device)
        self.blur_init_sigma = blur_init_sigma
        self.blur_fade_kimg = blur_fade_kimg
        self.synthesis_emas = synthesis_emas

    def blur_sigma(self, cur_nimg: int) -> float:
        """The blur of D's images once `cur_nimg` images have been shown."""
        if self.blur_fade_kimg <= 0:
            return 0.0
        return max(1 - cur_nimg / (self.blur_fade_kimg * 1000), 0.0) * self.blur_init_sigma

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self.G.mapping(z, c, update_w_avg=update_emas)
        if self.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            cutoff = torch.randint(1, num_ws, [], device=ws.device)
            cutoff = torch.where(torch.rand([], device=ws.device) < self.style_mixing_prob, cutoff,
                                 torch.full_like(cutoff, num_ws))
            mixed = self.G.mapping(torch.randn_like(z), c, update_w_avg=False)
            layer = torch.arange(num_ws, device=ws.device)[None, :, None]
            ws = torch.where(layer < cutoff, ws, mixed)
        tracked = {"update_emas": update_emas} if self.synthesis_emas else {}
        return synthesis_in_precision(self.G, ws, self.precision, **tracked), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor, blur_sigma: float = 0.0) -> torch.Tensor:
        img = blur(img, blur_sigma)
        if self.augment is not None:
            img = self.augment(img)
        with self.precision.autocast():
            return self.D(img, c, force_fp32=self.precision.force_fp32).float()

    def accumulate(self, phase: str, real: torch.Tensor, real_c: torch.Tensor, gen_z: torch.Tensor,
                   gen_c: torch.Tensor, gain: float, cur_nimg: int = 0) -> dict[str, torch.Tensor]:
        """Backpropagate this phase's loss (times `gain`), `cur_nimg` images into the run; return its statistics."""
        stats: dict[str, torch.Tensor] = {}
        sigma = self.blur_sigma(cur_nimg)
        do_Gmain = phase in ("Gmain", "Gboth")
        do_Gpl = phase in ("Greg", "Gboth") and self.pl_weight > 0
        do_Dmain = phase in ("Dmain", "Dboth")
        do_Dr1 = phase in ("Dreg", "Dboth") and self.r1_gamma > 0

        if do_Gmain:
            img, _ = self.run_G(gen_z, gen_c)
            logits = self.run_D(img, gen_c, sigma)
            loss = F.softplus(-logits).mean()
            stats["loss_G"] = loss.detach()
            loss.mul(gain).backward()

        if do_Gpl:
            n = max(1, gen_z.shape[0] // self.pl_batch_shrink)
            img, ws = self.run_G(gen_z[:n], gen_c[:n])
            noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            grads, = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
            lengths = grads.square().sum(2).mean(1).sqrt()
            self.pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(), self.pl_decay)
            penalty = (lengths - self.pl_mean).square()
            stats["pl_penalty"] = penalty.mean().detach()
            # Adding img[:, 0, 0, 0] * 0 keeps every synthesis parameter in the graph.
            (img[:, 0, 0, 0] * 0 + penalty * self.pl_weight).mean().mul(gain).backward()

        if do_Dmain:
            with torch.no_grad():
                img, _ = self.run_G(gen_z, gen_c, update_emas=False)
            logits = self.run_D(img, gen_c, sigma)
            loss = F.softplus(logits).mean()
            stats["loss_D_fake"] = loss.detach()
            loss.mul(gain).backward()

        if do_Dmain or do_Dr1:
            real_in = real.detach().requires_grad_(do_Dr1)
            logits = self.run_D(real_in, real_c, sigma)
            loss = torch.zeros([], device=real.device)
            if do_Dmain:
                loss_real = F.softplus(-logits).mean()
                stats["loss_D_real"] = loss_real.detach()
                stats["D_real_sign"] = logits.detach().sign().mean()
                loss = loss + loss_real
            if do_Dr1:
                grads, = torch.autograd.grad(logits.sum(), real_in, create_graph=True)
                r1 = grads.square().sum([1, 2, 3])
                stats["r1_penalty"] = r1.mean().detach()
                loss = loss + (r1 * (self.r1_gamma / 2)).mean()
            loss.mul(gain).backward()
        return stats
