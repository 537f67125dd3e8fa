"""Adaptive discriminator augmentation (ADA): differentiable geometric and colour transforms.

Each transform is applied to each image independently with probability `p`; the training
loop raises `p` while D grows overconfident on reals and lowers it otherwise. Geometric
transforms are composed into one affine matrix and applied with a single `grid_sample`
(reflection padding), colour transforms into one 4x4 matrix in RGB space.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

LUMA = torch.tensor([1, 1, 1, 0], dtype=torch.float32) / math.sqrt(3)  # unit luma axis


def _rotation_2d(theta: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(theta), torch.sin(theta)
    m = torch.zeros([theta.shape[0], 3, 3], device=theta.device)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1], m[:, 2, 2] = c, -s, s, c, 1
    return m


def _scale_2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.zeros([sx.shape[0], 3, 3], device=sx.device)
    m[:, 0, 0], m[:, 1, 1], m[:, 2, 2] = sx, sy, 1
    return m


def _translate_2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, device=tx.device).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


class AugmentPipe(nn.Module):
    """The 'bgc' pipeline: blit (flip, 90-degree turns, translation), general geometry, colour."""

    def __init__(self, xflip: float = 1, rotate90: float = 1, xint: float = 1, scale: float = 1, rotate: float = 1,
                 aniso: float = 1, xfrac: float = 1, brightness: float = 1, contrast: float = 1, lumaflip: float = 1,
                 hue: float = 1, saturation: float = 1):
        super().__init__()
        self.register_buffer("p", torch.zeros([]))
        self.weights = dict(xflip=xflip, rotate90=rotate90, xint=xint, scale=scale, rotate=rotate, aniso=aniso,
                            xfrac=xfrac, brightness=brightness, contrast=contrast, lumaflip=lumaflip, hue=hue,
                            saturation=saturation)

    def _gate(self, name: str, n: int, device: torch.device) -> torch.Tensor:
        """1 for the samples that get transform `name`, 0 for the rest."""
        prob = float(self.p) * self.weights[name]
        return (torch.rand([n], device=device) < prob).float()

    def _geometry(self, n: int, device: torch.device) -> torch.Tensor:
        """A random affine matrix per sample, in normalised [-1, 1] image coordinates."""
        m = torch.eye(3, device=device).repeat(n, 1, 1)
        g = self._gate("xflip", n, device)
        m = m @ _scale_2d(1 - 2 * g * torch.randint(0, 2, [n], device=device), torch.ones([n], device=device))
        g = self._gate("rotate90", n, device)
        m = m @ _rotation_2d(g * torch.randint(0, 4, [n], device=device) * (math.pi / 2))
        g = self._gate("xint", n, device)
        t = (torch.rand([2, n], device=device) * 2 - 1) * 0.125 * 2
        m = m @ _translate_2d(t[0] * g, t[1] * g)
        g = self._gate("scale", n, device)
        s = torch.exp2(torch.randn([n], device=device) * 0.2 * g)
        m = m @ _scale_2d(s, s)
        p_rot = 1 - math.sqrt(max(0.0, 1 - min(float(self.p) * self.weights["rotate"], 1)))
        g = (torch.rand([n], device=device) < p_rot).float()
        m = m @ _rotation_2d(g * (torch.rand([n], device=device) * 2 - 1) * math.pi)
        g = self._gate("aniso", n, device)
        s = torch.exp2(torch.randn([n], device=device) * 0.2 * g)
        m = m @ _scale_2d(s, 1 / s)
        g = (torch.rand([n], device=device) < p_rot).float()
        m = m @ _rotation_2d(g * (torch.rand([n], device=device) * 2 - 1) * math.pi)
        g = self._gate("xfrac", n, device)
        t = torch.randn([2, n], device=device) * 0.125 * 2
        return m @ _translate_2d(t[0] * g, t[1] * g)

    def _colour(self, n: int, device: torch.device) -> torch.Tensor:
        """A random 4x4 colour matrix per sample acting on homogeneous RGB."""
        eye = torch.eye(4, device=device)
        m = eye.repeat(n, 1, 1)
        luma = LUMA.to(device)
        g = self._gate("brightness", n, device)
        b = torch.randn([n], device=device) * 0.2 * g
        shift = eye.repeat(n, 1, 1)
        shift[:, :3, 3] = b[:, None]
        m = shift @ m
        g = self._gate("contrast", n, device)
        c = torch.exp2(torch.randn([n], device=device) * 0.5 * g)
        scale = eye.repeat(n, 1, 1)
        scale[:, 0, 0] = scale[:, 1, 1] = scale[:, 2, 2] = c
        m = scale @ m
        outer = torch.outer(luma, luma)
        g = self._gate("lumaflip", n, device)
        flip = torch.randint(0, 2, [n], device=device) * g
        m = (eye - 2 * outer * flip[:, None, None]) @ m
        g = self._gate("hue", n, device)
        theta = (torch.rand([n], device=device) * 2 - 1) * math.pi * g
        m = _rotate_about_luma(theta) @ m
        g = self._gate("saturation", n, device)
        s = torch.exp2(torch.randn([n], device=device) * 1.0 * g)
        m = (outer + (eye - outer) * s[:, None, None]) @ m
        return m

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if float(self.p) <= 0:
            return images
        n, c, h, w = images.shape
        device = images.device
        theta = self._geometry(n, device)[:, :2, :]
        grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        if c == 3:
            m = self._colour(n, device)
            flat = images.reshape(n, 3, h * w)
            images = (m[:, :3, :3] @ flat + m[:, :3, 3:]).reshape(n, 3, h, w)
        return images


def _rotate_about_luma(theta: torch.Tensor) -> torch.Tensor:
    """Rotation of RGB space about the grey axis (a hue shift), as 4x4 matrices."""
    axis = LUMA[:3].to(theta.device)
    k = torch.zeros([3, 3], device=theta.device)
    k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = -axis[2], axis[1], axis[2], -axis[0], -axis[1], axis[0]
    s, c = torch.sin(theta)[:, None, None], torch.cos(theta)[:, None, None]
    rot = torch.eye(3, device=theta.device) + s * k + (1 - c) * (k @ k)
    m = torch.eye(4, device=theta.device).repeat(theta.shape[0], 1, 1)
    m[:, :3, :3] = rot
    return m


class AdaController:
    """Adjusts the augmentation probability from the sign of D's outputs on real images."""

    def __init__(self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, speed_kimg: float = 100):
        self.pipe = pipe
        self.target = target
        self.interval = interval
        self.speed_kimg = speed_kimg
        self.signs: list[float] = []

    def observe(self, real_sign: float) -> None:
        """Record one batch's mean of sign(D(real)) (averaged over the ranks in a distributed run)."""
        self.signs.append(float(real_sign))

    def update(self, batch_size: int) -> None:
        """Called every `interval` steps: move p by batch*interval / (speed_kimg*1000), up while the
        mean sign observed since the last update exceeds the target, down otherwise."""
        if not self.signs:
            return
        rt = sum(self.signs) / len(self.signs)
        self.signs.clear()
        direction = (rt > self.target) - (rt < self.target)
        step = direction * batch_size * self.interval / (self.speed_kimg * 1000)
        self.pipe.p.copy_((self.pipe.p + step).clamp(0, 1))
