"""Shared test setup: the torch thread count for the whole session, and the latent tools' tiny networks."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.models import registry
from facegen_cli.models.stylegan2 import Generator
from facegen_cli.networks import Network, load_network
from tiny_nets import G_KWARGS, tiny_checkpoint

DEFAULT_THREADS = 2


def session_threads() -> int:
    """OMP_NUM_THREADS when set (its first number), else two threads."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_THREADS


@pytest.fixture(autouse=True, scope="session")
def torch_threads() -> None:
    """The one place the suite sets torch's thread count; runs after collection, so it has the last word."""
    torch.set_num_threads(session_threads())


@pytest.fixture
def private_cache(tmp_path, monkeypatch) -> None:
    """A FACEGEN_CACHE of the test's own, so stored directions and features never leak between tests."""
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))


class ToyZGenerator(nn.Module):
    """A classic-family stand-in: z (+ label) -> 8x8 image, `G(z, c, truncation_psi)`, no W."""

    def __init__(self, z_dim: int = 16):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, 0, 8, 3
        self.fc = nn.Linear(z_dim, 3 * 8 * 8)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0) -> torch.Tensor:
        return torch.tanh(self.fc(z * truncation_psi)).reshape(-1, 3, 8, 8)


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
