"""Fixtures shared by the latent-tool tests: tiny networks (W+ and z-only) and a private cache."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facegen_cli.checkpoint import Network, save_checkpoint
from facegen_cli.models import registry
from facegen_cli.models.stylegan2 import Generator
from facegen_cli.networks import load_network
from tiny_nets import G_KWARGS, tiny_checkpoint


class ToyZGenerator(nn.Module):
    """A classic-family stand-in: z (+ label) -> 8x8 image, `G(z, c, truncation_psi)`, no W."""

    def __init__(self, z_dim: int = 16):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, 0, 8, 3
        self.fc = nn.Linear(z_dim, 3 * 8 * 8)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
        return torch.tanh(self.fc(z * truncation_psi)).reshape(-1, 3, 8, 8)


@pytest.fixture(autouse=True)
def one_thread():
    """The shared 2-core machine runs tiny nets far faster on one thread than on two oversubscribed ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_net(tmp_path_factory) -> Network:
    return load_network(tiny_checkpoint(tmp_path_factory.mktemp("nets") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def other_net(tmp_path_factory) -> Network:
    return load_network(tiny_checkpoint(tmp_path_factory.mktemp("nets") / "other.safetensors", seed=1))


@pytest.fixture(scope="module")
def smooth_net(tmp_path_factory) -> Network:
    """A tiny net at its initialisation (no perturbation), whose images change smoothly with W."""
    torch.manual_seed(0)
    G = Generator(**G_KWARGS).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, G.z_dim), None)[:, 0].mean(0))
    return load_network(save_checkpoint(tmp_path_factory.mktemp("nets") / "smooth.safetensors", "stylegan2",
                                        G_KWARGS, G))


@pytest.fixture
def z_net(monkeypatch) -> Network:
    """A network without W+, registered like the classic families."""
    monkeypatch.setitem(registry.ARCHITECTURES, "toy-z", registry.Architecture("toy-z", ToyZGenerator, None))
    torch.manual_seed(0)
    return Network(arch="toy-z", G_kwargs={}, G_ema=ToyZGenerator().eval().requires_grad_(False))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = ((a.astype(np.float64) - b) ** 2).mean()
    return float(10 * np.log10(255 ** 2 / mse)) if mse else float("inf")
