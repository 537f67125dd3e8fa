"""facegen mix: style mixing, weighted averages, latent shape errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.generate import generate_samples
from facegen_cli.latent.mixing import parse_weights, run_mix, style_mix, weighted_average
from facegen_cli.latent.sources import parse_layers, read_latent

pytestmark = pytest.mark.usefixtures("private_cache")

runner = CliRunner()


def test_layer_groups_follow_the_paper():
    assert parse_layers("coarse", 18) == [0, 1, 2, 3]
    assert parse_layers("middle", 18) == [4, 5, 6, 7]
    assert parse_layers("fine", 18) == list(range(8, 18))
    assert parse_layers("0-3,8-", 10) == [0, 1, 2, 3, 8, 9]
    with pytest.raises(BadInput, match="no fine layers"):
        parse_layers("fine", 8)
    with pytest.raises(BadInput, match="outside"):
        parse_layers("3-12", 8)


def test_mixing_a_with_itself_gives_a(tiny_net, tmp_path):
    ws = read_latent(tiny_net, "seed:3")
    np.testing.assert_array_equal(style_mix(ws, ws, [0, 1, 2, 3]), ws)
    paths = list(run_mix(tiny_net, ["seed:3", "seed:3"], tmp_path, layers="0-3,6-", save_latents=True))
    assert [p.name for p in paths] == ["mix-seed0003-seed0003.png", "mix-seed0003-seed0003.npy"]
    expected = next(generate_samples(tiny_net, [3])).image
    np.testing.assert_array_equal(np.asarray(Image.open(paths[0])), expected)
    np.testing.assert_array_equal(np.load(paths[1]), ws)


def test_mixing_takes_the_chosen_layers_from_b(tiny_net, tmp_path):
    a, b = read_latent(tiny_net, "seed:1"), read_latent(tiny_net, "seed:2")
    mixed = style_mix(a, b, parse_layers("middle", 8))
    np.testing.assert_array_equal(mixed[:4], a[:4])
    np.testing.assert_array_equal(mixed[4:], b[4:])


def test_grid_has_sources_on_the_borders(tiny_net, tmp_path):
    (path,) = run_mix(tiny_net, ["seed:1-3", "seed:4-5"], tmp_path, grid=True)
    grid = np.asarray(Image.open(path))
    assert grid.shape == (4 * 32, 3 * 32, 3)
    assert not grid[:32, :32].any()  # the corner stays empty
    # batches of different sizes may round a pixel differently
    np.testing.assert_allclose(grid[:32, 32:64].astype(int), next(generate_samples(tiny_net, [4])).image, atol=1)
    np.testing.assert_allclose(grid[64:96, :32].astype(int), next(generate_samples(tiny_net, [2])).image, atol=1)


def test_average_weights_and_the_z_only_family(tiny_net, z_net, tmp_path):
    assert parse_weights("1,3", 2).tolist() == [0.25, 0.75]
    with pytest.raises(BadInput, match="3 latents"):
        parse_weights("1,2", 3)
    a, b = read_latent(tiny_net, "seed:1"), read_latent(tiny_net, "seed:2")
    np.testing.assert_allclose(weighted_average(np.stack([a, b]), np.array([0.3, 0.7])), 0.3 * a + 0.7 * b, atol=1e-6)
    paths = list(run_mix(z_net, ["seed:1", "seed:2", "seed:3"], tmp_path, average=True, weights="1,1,2",
                         save_latents=True))
    assert np.load(paths[1]).shape == (16,)
    with pytest.raises(BadInput, match="needs a W\\+ model"):
        list(run_mix(z_net, ["seed:1", "seed:2"], tmp_path))


def test_a_latent_of_the_wrong_shape_names_both_shapes(tiny_net, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros([5, 64], np.float32))
    with pytest.raises(FacegenError, match=r"\(5, 64\).*\[8, 64\]"):
        list(run_mix(tiny_net, [str(bad), "seed:1"], tmp_path))


def test_cli_writes_paths_to_stdout(tiny_net, tmp_path):
    tiny_path = str(tiny_net.path)
    result = runner.invoke(app, ["mix", "seed:1", "seed:2", "-n", tiny_path, "--layers", "coarse",
                                 "--save-latents", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(tmp_path / "mix-seed0001-seed0002.png"),
                                     str(tmp_path / "mix-seed0001-seed0002.npy")]
    result = runner.invoke(app, ["mix", "seed:1", "seed:2", "-n", tiny_path, "--layers", "fine"])
    assert result.exit_code == 2 and "no fine layers" in result.stderr
