"""The edit directions shipped for the default model: found on a fresh checkout, each moving its own
attribute as read from the image (the shipping gate), and Smiling makes faces smile as the shipped
classifier reads them (tools/fit_shipped_directions.py refits them)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.classifier import load_classifier
from facegen_cli.cli.main import app
from facegen_cli.controls.reach import GATE_PSI, GATE_SEEDS, own_reach, own_reader
from facegen_cli.latent.directions import Direction, known_directions, load_direction, move, shipped_dir
from facegen_cli.latent.sources import read_latent
from facegen_cli.networks import load_network
from facegen_cli.paths import weights_dir
from facegen_cli.sampler import Sampler

SHIPPED = ["Smiling", "Male", "Young", "Age", "Black_Hair", "Blond_Hair", "Mouth_Slightly_Open"]
# fitted, but they do not move their own reading within the strength an edit allows (benchmarks/RESULTS.md,
# "Which directions ship"): left out
GATED_OUT = ["Eyeglasses", "Brown_Hair", "Gray_Hair", "Bald", "Beard"]
CELEBA_CLASSIFIER = weights_dir() / "classifiers" / "celeba-attributes.safetensors"

pytestmark = pytest.mark.usefixtures("private_cache")  # an empty user store: only shipped directions are found


@pytest.fixture(scope="module")
def net():
    return load_network(None, "cpu")


def test_the_default_network_finds_every_shipped_direction(net):
    found = known_directions(net)
    assert set(SHIPPED) <= set(found), f"refit with tools/fit_shipped_directions.py for network {net.network_id}"
    assert all(found[name].parent == shipped_dir(net) for name in SHIPPED)
    assert (shipped_dir(net) / "identity-span.npy").exists() and "identity-span" not in found
    assert all(load_direction(name, net).vector.shape == (net.G_ema.w_dim,) for name in found)  # each one a direction
    for name in SHIPPED:
        direction = load_direction(name, net)
        assert np.linalg.norm(direction.vector) == pytest.approx(1, abs=1e-4)
        assert direction.info["method"] == "interfacegan"
        assert direction.info["holdout_accuracy"] >= 0.65  # lowest shipped: Age, 78.8 % of 400
    assert not set(GATED_OUT) & set(found)
    age = json.loads(found["Age"].with_suffix(".json").read_text())
    assert age["attr"] == "age"


def test_the_gate_passes_smiling_and_refuses_it_turned_around(net):
    sampler = Sampler(net, psi=GATE_PSI)
    smiling = load_direction("Smiling", net)
    reach = own_reach(sampler, smiling, GATE_SEEDS[:4])
    assert (reach.reader, reach.sign, reach.unit) == ("Smiling", 1, "probability")
    assert reach.passed and reach.share >= 0.5 and reach.median >= 0.8, reach
    frown = Direction("Frown", -smiling.vector, net.network_id, None, smiling.info)
    refused = own_reach(sampler, frown, GATE_SEEDS[:4])
    assert not refused.passed and refused.median < 0.2, refused


@pytest.mark.slow
def test_every_shipped_direction_moves_its_own_attribute(net):
    sampler = Sampler(net, psi=GATE_PSI)
    directions = [load_direction(name, net) for name in known_directions(net)]
    gated = [d for d in directions if own_reader(d) is not None]
    assert {d.name for d in gated} == {d.name for d in directions}
    failed = [reach for reach in (own_reach(sampler, d) for d in gated) if not reach.passed]
    assert not failed, failed


def test_edit_smiling_works_out_of_the_box(tmp_path):
    result = CliRunner().invoke(app, ["edit", "seed:7", "--direction", "Smiling", "--range", "-3:3", "--steps", "3",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    strip = np.asarray(Image.open(tmp_path / "seed0007-Smiling-strip.png"), np.float64)
    size = strip.shape[0]
    tiles = [strip[:, i * size:(i + 1) * size] for i in range(3)]
    assert strip.shape[1] == 3 * size
    assert min(np.abs(a - b).mean() for a, b in [(tiles[0], tiles[1]), (tiles[1], tiles[2])]) > 2.0


def test_the_classifier_reads_more_smile_at_plus_3_than_at_minus_3(net):
    clf = load_classifier(CELEBA_CLASSIFIER)
    smiling = clf.index("Smiling")
    vector = load_direction("Smiling", net).vector
    seeds = range(24)
    sampler = Sampler(net)
    ws = [read_latent(sampler, s) for s in seeds]
    images = sampler.images(np.stack([move(w, vector, s) for w in ws for s in (-3.0, 3.0)]))
    scores = clf.predict(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)[:, smiling]
    low, high = scores[0::2], scores[1::2]
    # Measured with the shipped 719 kimg model and classifier, 1 and 2 threads alike: P(smiling) rises by more
    # than 0.05 from -3 to +3 on 24 of seeds 0-23 (mean gain 0.68) and 23 of seeds 24-47 (0.64); a 64 px model
    # smiles faintly, so some faces read no more smiling. The floors: half of the faces, mean 0.1.
    gains = high - low
    assert (gains > 0.05).sum() >= len(seeds) // 2, gains
    assert gains.mean() > 0.1, gains
