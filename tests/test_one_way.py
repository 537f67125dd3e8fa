"""Every command draws exactly what the plain steps draw: seed -> RandomState(seed).randn -> float32 z ->
G.mapping -> W+ -> G.synthesis -> NVIDIA's uint8 rounding, batched as the command batches. Pixels are
compared for equality, on the shipped model and on a test network."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.latent.directions import Direction, save_direction
from facegen_cli.networks import load_network
from facegen_cli.paths import weights_dir

SHIPPED = weights_dir() / "default.safetensors"


@pytest.fixture(scope="module", params=["shipped", "tiny"])
def network(request, tmp_path_factory) -> Path:
    if request.param == "shipped":
        if not SHIPPED.is_file():
            pytest.skip(f"the shipped model is missing at {SHIPPED}")
        return SHIPPED
    return request.getfixturevalue("tiny_net").path


def _cli(*args) -> list[str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def _pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def _z(seeds: list[int], z_dim: int) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds]).astype(np.float32))


@torch.no_grad()
def _draw(G: torch.nn.Module, ws: torch.Tensor) -> np.ndarray:
    img = G.synthesis(ws, noise_mode="const")
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def _w(G: torch.nn.Module, seeds: list[int], psi: float) -> torch.Tensor:
    return G.mapping(_z(seeds, G.z_dim), None, truncation_psi=psi)


def test_generate_draws_the_plain_steps_eight_seeds_a_pass(network, tmp_path):
    G = load_network(network).G_ema
    paths = _cli("generate", "--network", network, "--seeds", "0-9", "--psi", "0.7", "--out", tmp_path)
    expected = np.concatenate([_draw(G, _w(G, chunk, 0.7)) for chunk in ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])])
    assert len(paths) == 10
    for path, image in zip(paths, expected):
        assert np.array_equal(_pixels(path), image)


def test_mix_maps_each_seed_alone_and_swaps_the_coarse_entries(network, tmp_path):
    G = load_network(network).G_ema
    (path,) = _cli("mix", "seed:1", "seed:2", "--network", network, "--psi", "0.7", "--out", tmp_path)
    mixed = _w(G, [1], 0.7).clone()
    mixed[:, :4] = _w(G, [2], 0.7)[:, :4]  # coarse: the entries styling 4 and 8 px
    assert np.array_equal(_pixels(path), _draw(G, mixed)[0])


def test_interpolate_lerps_in_w_and_draws_the_frames_in_one_pass(network, tmp_path):
    G = load_network(network).G_ema
    (path,) = _cli("interpolate", "seed:1", "seed:2", "--network", network, "--frames", "4",
                   "--out", tmp_path / "strip.png")
    a, b = _w(G, [1], 1.0)[0].numpy(), _w(G, [2], 1.0)[0].numpy()
    frames = np.stack([(a * (1 - t) + b * t).astype(np.float32) for t in np.linspace(0, 1, 4)])
    expected = _draw(G, torch.from_numpy(frames))
    strip = _pixels(path)
    width = G.img_resolution
    assert strip.shape[0] == width
    for i, image in enumerate(expected):
        assert np.array_equal(strip[:, i * width:(i + 1) * width], image)


def test_edit_moves_the_seed_along_the_direction_on_its_layers(network, tmp_path):
    net = load_network(network)
    G = net.G_ema
    vector = np.random.RandomState(5).randn(G.w_dim).astype(np.float32)
    vector /= np.linalg.norm(vector)
    direction = save_direction(Direction("probe", vector, net.network_id, [0, 1, 2], {}), tmp_path / "directions")
    (path,) = _cli("edit", "seed:3", "--direction", direction, "--strength", "2", "--network", network,
                   "--out", tmp_path / "edit")
    ws = _w(G, [3], 1.0).clone()
    ws[0, [0, 1, 2]] += np.float32(2) * torch.from_numpy(vector)
    assert np.array_equal(_pixels(path), _draw(G, ws)[0])
