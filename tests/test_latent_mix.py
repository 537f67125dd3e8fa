"""facegen mix: style mixing, weighted averages, latent shape errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.latent.layers import resolve_layers
from facegen_cli.latent.mixing import normalized_weights, run_average, run_mix, style_mix, weighted_average
from facegen_cli.latent.sources import read_latent
from facegen_cli.sampler import Sampler
from facegen_cli.specs import parse_layers, parse_numbers, parse_sources

pytestmark = pytest.mark.usefixtures("private_cache")

runner = CliRunner()


def test_layer_groups_follow_the_paper():
    assert resolve_layers(18, parse_layers("coarse")) == [0, 1, 2, 3]
    assert resolve_layers(18, parse_layers("middle")) == [4, 5, 6, 7]
    assert resolve_layers(18, parse_layers("fine")) == list(range(8, 18))
    assert parse_layers("0-3,8-") == [(0, 3), (8, None)]
    assert resolve_layers(10, parse_layers("0-3,8-")) == [0, 1, 2, 3, 8, 9]
    with pytest.raises(BadInput, match="no fine layers"):
        resolve_layers(8, parse_layers("fine"))
    with pytest.raises(BadInput, match="outside"):
        resolve_layers(8, parse_layers("3-12"))
    with pytest.raises(BadInput, match="^layers 'a-b'"):
        parse_layers("a-b")


def test_mixing_a_with_itself_gives_a(tiny_net, tmp_path):
    sampler = Sampler(tiny_net)
    ws = read_latent(sampler, 3)
    np.testing.assert_array_equal(style_mix(ws, ws, [0, 1, 2, 3]), ws)
    layers = resolve_layers(tiny_net.G_ema, parse_layers("0-3,6-"))
    paths = list(run_mix(sampler, [3], [3], tmp_path, layers=layers, save_latents=True))
    assert [p.name for p in paths] == ["mix-seed0003-seed0003.png", "mix-seed0003-seed0003.npy"]
    expected = next(sampler.samples([3])).image
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), expected)
    np.testing.assert_array_equal(np.load(paths[1]), ws)


def test_mixing_takes_the_chosen_layers_from_b(tiny_net, tmp_path):
    sampler = Sampler(tiny_net)
    a, b = read_latent(sampler, 1), read_latent(sampler, 2)
    mixed = style_mix(a, b, resolve_layers(8, parse_layers("middle")))
    np.testing.assert_array_equal(mixed[:4], a[:4])
    np.testing.assert_array_equal(mixed[4:], b[4:])


def test_grid_has_sources_on_the_borders(tiny_net, tmp_path):
    sampler = Sampler(tiny_net)
    assert parse_sources(["seed:1-3"]) == [1, 2, 3]
    (path,) = run_mix(sampler, parse_sources(["seed:1-3"]), parse_sources(["seed:4-5"]), tmp_path, grid=True)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (4 * 32, 3 * 32, 3)
    assert not grid[:32, :32].any()  # the corner stays empty
    # batches of different sizes may round a pixel differently
    np.testing.assert_allclose(grid[:32, 32:64].astype(int), next(sampler.samples([4])).image, atol=1)
    np.testing.assert_allclose(grid[64:96, :32].astype(int), next(sampler.samples([2])).image, atol=1)


def test_average_weights_and_the_z_only_family(tiny_net, z_net, tmp_path):
    assert parse_numbers("1,3", "weights") == [1.0, 3.0]
    with pytest.raises(BadInput, match="^weights '1,x'"):
        parse_numbers("1,x", "weights")
    assert normalized_weights(parse_numbers("1,3", "weights"), 2).tolist() == [0.25, 0.75]
    assert normalized_weights(None, 4).tolist() == [0.25] * 4
    with pytest.raises(BadInput, match="3 latents"):
        normalized_weights([1, 2], 3)
    with pytest.raises(BadInput, match="sum to zero"):
        normalized_weights([1, -1], 2)
    sampler = Sampler(tiny_net)
    a, b = read_latent(sampler, 1), read_latent(sampler, 2)
    np.testing.assert_allclose(weighted_average(np.stack([a, b]), np.array([0.3, 0.7])), 0.3 * a + 0.7 * b, atol=1e-6)
    paths = list(run_average(Sampler(z_net), [1, 2, 3], tmp_path, weights=[1, 1, 2], save_latents=True))
    assert np.load(paths[1]).shape == (16,)
    with pytest.raises(BadInput, match="needs a W\\+ model"):
        list(run_mix(Sampler(z_net), [1], [2], tmp_path))


def test_a_latent_of_the_wrong_shape_names_both_shapes(tiny_net, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros([5, 64], np.float32))
    with pytest.raises(FacegenError, match=r"\(5, 64\).*\[8, 64\]"):
        list(run_mix(Sampler(tiny_net), [bad], [1], tmp_path))


def test_cli_writes_paths_to_stdout(tiny_net, tmp_path):
    tiny_path = str(tiny_net.path)
    result = runner.invoke(app, ["mix", "seed:1", "seed:2", "-n", tiny_path, "--layers", "coarse",
                                 "--save-latents", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "mix-seed0001-seed0002.png"),
                                     str(tmp_path / "mix-seed0001-seed0002.npy")]
    result = runner.invoke(app, ["mix", "seed:1", "seed:2", "-n", tiny_path, "--layers", "fine"])
    assert result.exit_code == 2 and "no fine layers" in result.stderr
