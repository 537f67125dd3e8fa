"""facegen fid on a conditional network: each image drawn with the labels of one training image (--labels-from)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput
from facegen_cli.metrics.sources import labels_for_seeds, network_stream
from facegen_cli.models import dcgan
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler
from tiny_nets import tiny_checkpoint

C_DIM = 3


def labelled_folder(dest: Path, count: int = 12, c_dim: int = C_DIM) -> Path:
    """`count` 32 px images with dataset.json labels: row i is i's bits over c_dim attributes."""
    dest.mkdir()
    rows = []
    for i in range(count):
        name = f"img{i:08d}.png"
        Image.fromarray(np.full([32, 32, 3], i * 20, np.uint8)).save(dest / name)
        rows.append([name, [(i >> bit) & 1 for bit in range(c_dim)]])
    (dest / "dataset.json").write_text(json.dumps({"labels": rows}))
    return dest


def acgan_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    kwargs = dict(z_dim=16, c_dim=C_DIM, img_resolution=32, width=8)
    return save_checkpoint(path, "acgan", kwargs, dcgan.Generator(**kwargs).eval())


@pytest.fixture(params=["stylegan2", "acgan"])
def conditional(request, tmp_path) -> Path:
    if request.param == "acgan":
        return acgan_checkpoint(tmp_path / "acgan.safetensors")
    return tiny_checkpoint(tmp_path / "cond.safetensors", c_dim=C_DIM)


def test_each_image_is_drawn_with_the_labels_its_seed_picks(conditional, tmp_path):
    data = labelled_folder(tmp_path / "data")
    seeds = [5, 0, 9, 3, 7]
    labels = labels_for_seeds(str(data), seeds, C_DIM)
    bits = {tuple((i >> b) & 1 for b in range(C_DIM)) for i in range(12)}
    assert all(tuple(int(v) for v in row) in bits for row in labels)  # each row is one image's labels
    np.testing.assert_array_equal(labels_for_seeds(str(data), seeds[::-1], C_DIM), labels[::-1])  # by seed alone
    assert len({tuple(row) for row in labels_for_seeds(str(data), range(40), C_DIM)}) > 4  # and they vary
    stream = network_stream(str(conditional), seeds, batch=2, labels_from=str(data))
    drawn = np.concatenate(list(stream.batches()))
    net = load_network(str(conditional))
    for i, seed in enumerate(seeds):  # the same image as drawn alone with that label
        alone = next(Sampler(net, label=labels[i], batch=1).samples([seed])).image
        np.testing.assert_allclose(drawn[i].astype(int), alone.astype(int), atol=1)


def test_labels_from_is_required_by_conditional_networks_and_checked(conditional, tmp_path):
    data = labelled_folder(tmp_path / "data")
    with pytest.raises(BadInput, match="^labels_from is needed: .* is a conditional network"):
        network_stream(str(conditional), [0, 1])
    with pytest.raises(BadInput, match="2 labels per image; the network takes 3"):
        network_stream(str(conditional), [0, 1], labels_from=str(labelled_folder(tmp_path / "two", c_dim=2)))
    plain = tiny_checkpoint(tmp_path / "plain.safetensors")
    with pytest.raises(BadInput, match="^labels_from is for conditional networks; .* is unconditional"):
        network_stream(str(plain), [0, 1], labels_from=str(data))
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    Image.new("RGB", (32, 32)).save(unlabelled / "a.png")
    with pytest.raises(BadInput, match="no labels in its dataset.json"):
        network_stream(str(conditional), [0, 1], labels_from=str(unlabelled))
    result = CliRunner().invoke(app, ["fid", str(conditional), str(data), "--seeds", "0-3", "--json"])
    assert result.exit_code == 2 and "--labels-from" in result.stderr
    result = CliRunner().invoke(app, ["fid", str(data), str(unlabelled), "--labels-from", str(data)])
    assert result.exit_code == 2 and "are both image sets; it gives a conditional network its labels" in result.stderr
