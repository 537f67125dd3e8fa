"""facegen edit / directions: SeFa, fitted boundaries, conditional edits, network ids."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.latent.boundary import fit_boundary, fit_direction
from facegen_cli.latent.directions import (Direction, conditioned, load_direction, move, run_edit, run_sefa,
                                           save_direction, store_dir, strengths_of)
from facegen_cli.latent.layers import resolve_layers
from facegen_cli.latent.sources import read_latent
from facegen_cli.sampler import Sampler, seed_to_z
from facegen_cli.specs import parse_layers, parse_span

pytestmark = pytest.mark.usefixtures("private_cache")


def brightness(images: torch.Tensor) -> np.ndarray:
    """A synthetic attribute: mean pixel value of each image."""
    return images.clamp(-1, 1).mean(dim=(1, 2, 3)).cpu().numpy()


def test_sefa_directions_are_orthonormal_and_carry_the_network_id(tiny_net, tmp_path):
    paths = run_sefa(tiny_net, tmp_path, k=4)
    vectors = np.stack([np.load(p) for p in paths])
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(4), atol=1e-5)
    meta = json.loads(paths[0].with_suffix(".json").read_text())
    assert meta["network_id"] == tiny_net.network_id and meta["method"] == "sefa"
    assert meta["eigenvalue"] >= json.loads(paths[1].with_suffix(".json").read_text())["eigenvalue"]
    assert run_sefa(tiny_net, k=1)[0].parent == store_dir(tiny_net)  # named directions live in the store
    assert load_direction("sefa-00", tiny_net).vector.shape == (64,)


def test_a_direction_refuses_another_network(tiny_net, other_net, tmp_path):
    (path,) = run_sefa(tiny_net, tmp_path, k=1)
    with pytest.raises(FacegenError, match=f"belongs to network {tiny_net.network_id}.*{other_net.network_id}"):
        load_direction(str(path), other_net)
    with pytest.raises(FacegenError, match="no direction 'nothing'"):
        load_direction("nothing", tiny_net)


def test_an_edit_of_strength_zero_is_the_identity(tiny_net, tmp_path):
    run_sefa(tiny_net, k=2)
    sampler = Sampler(tiny_net)
    paths = list(run_edit(sampler, 4, "sefa-00", tmp_path, strength=0.0, save_latents=True))
    ws = read_latent(sampler, 4)
    np.testing.assert_array_equal(np.load(paths[1]), ws)
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), sampler.images(ws[None])[0])
    (strip,) = run_edit(sampler, 4, "sefa-01", tmp_path, span=parse_span("-2:2"), steps=5,
                        layers=resolve_layers(tiny_net.G_ema, parse_layers("0-3")))
    assert Image.open(strip).size == (5 * 32, 32)
    with pytest.raises(BadInput, match="^strength: give either"):
        list(run_edit(sampler, 4, "sefa-00", tmp_path))


def test_move_touches_only_the_chosen_layers():
    ws, v = np.zeros([8, 4], np.float32), np.array([1, 0, 0, 0], np.float32)
    moved = move(ws, v, 2.0, [0, 1])
    assert moved[:2, 0].tolist() == [2, 2] and not moved[2:].any()
    assert parse_span("-3:3") == (-3.0, 3.0)
    assert strengths_of(None, parse_span("-3:3"), 7).tolist() == [-3, -2, -1, 0, 1, 2, 3]
    assert strengths_of(1.5, None, 7).tolist() == [1.5]
    with pytest.raises(BadInput, match="^span '3': write it as LOW:HIGH"):
        parse_span("3")
    with pytest.raises(BadInput, match="^span '-3:inf': give finite numbers"):
        parse_span("-3:inf")
    with pytest.raises(BadInput, match="^steps 1 is outside 2-1000"):
        strengths_of(None, (-3.0, 3.0), 1)
    with pytest.raises(BadInput, match="^steps 1001 is outside 2-1000"):
        strengths_of(None, (-3.0, 3.0), 1001)


def test_conditional_direction_is_orthogonal_to_the_others():
    rng = np.random.RandomState(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.randn(3, 16))
    d = conditioned(a, [b, c])
    assert abs(d @ b) < 1e-6 and abs(d @ c) < 1e-6 and abs(np.linalg.norm(d) - 1) < 1e-6
    with pytest.raises(BadInput, match="span"):
        conditioned(b, [b])


def test_fit_boundary_recovers_a_linear_rule():
    rng = np.random.RandomState(1)
    w = rng.randn(800, 8) * [1, 2, 1, 1, 1, 1, 1, 1]
    truth = np.array([0, 1, 0, 0, 0, 0, 0, 1]) / np.sqrt(2)
    normal, accuracy = fit_boundary(w, w @ truth + 0.05 * rng.randn(800))
    # data seeds 0-9, 1 and 2 threads: accuracy 1.0, cosine 0.990-0.997; fitted to noise, accuracy 0.41-0.60
    assert accuracy > 0.95 and normal @ truth > 0.9


def test_a_fitted_direction_changes_the_attribute_on_new_samples(smooth_net, tmp_path):
    # Measured on 3 initialisations x 2 sample windows (seeds from 0 and from 5000) x 1 and 2 threads:
    # held-out accuracy 0.85-0.975 (a fit to noise: 0.41-0.60); the 16 edited samples brightened in 16 of
    # 16 every time, where a random direction of the same length brightens 5-10 of them.
    direction, accuracy = fit_direction(smooth_net, "bright", brightness, samples=400, ratio=0.25)
    assert accuracy > 0.75
    path = save_direction(direction, tmp_path)
    assert load_direction(str(path), smooth_net).info["holdout_accuracy"] == accuracy
    sampler = Sampler(smooth_net)
    fresh = np.stack([read_latent(sampler, s) for s in range(1000, 1016)])  # seeds not sampled
    before = brightness(torch.from_numpy(sampler.images(fresh)).permute(0, 3, 1, 2).float() / 127.5 - 1)
    edited = np.stack([move(ws, direction.vector, 3.0) for ws in fresh])
    after = brightness(torch.from_numpy(sampler.images(edited)).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert (after > before).mean() >= 0.9


def test_direction_files_need_their_metadata(tiny_net, tmp_path):
    path = save_direction(Direction("d", np.ones(64, np.float32) / 8, tiny_net.network_id), tmp_path)
    path.with_suffix(".json").unlink()
    with pytest.raises(FacegenError, match="network id"):
        load_direction(str(path), tiny_net)
    assert seed_to_z(0, 4).shape == (4,)
