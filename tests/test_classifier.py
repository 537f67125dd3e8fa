"""facegen classifier train, and the real pipeline: prepare --labels -> classifier -> directions fit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facegen_cli.classifier import balanced_draw, load_classifier, train_classifier
from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.images import save_image
from facegen_cli.latent.directions import load_direction, move
from facegen_cli.latent.sources import read_latent
from facegen_cli.sampler import Sampler
from real_faces import CELEBA, SHARED_DATA

pytestmark = pytest.mark.usefixtures("private_cache")

runner = CliRunner()
UTKFACE = SHARED_DATA / "utkface" / "images"


def synthetic_dataset(folder: Path, n: int = 120) -> Path:
    """Images whose `Bright` label is their brightness and whose `Level` is a number tied to it."""
    rng = np.random.RandomState(0)
    labels = []
    for i in range(n):
        bright = i % 2
        img = rng.randint(0, 120, size=(16, 16, 3)) + 120 * bright
        save_image(img.astype(np.uint8), folder / f"img{i:08d}.png")
        labels.append([f"img{i:08d}.png", [bright, 20.0 + 40 * bright + rng.rand()]])
    (folder / "dataset.json").write_text(json.dumps({"labels": labels, "label_names": ["Bright", "Level"]}))
    return folder


def test_classifier_learns_binary_and_numeric_labels(tmp_path):
    data = synthetic_dataset(tmp_path / "data")
    report = train_classifier(data, tmp_path / "clf.safetensors", size=16, epochs=6, batch=16, holdout=0.2)
    # Training seeds 0-5 on 1 and 2 threads: accuracy 1.0 every time, mean error 2.6-5.5; the untrained
    # net (lr 0): accuracy 0.21-0.58, mean error 19.7-20.0.
    assert report["holdout"]["Bright"]["accuracy"] >= 0.9
    assert report["holdout"]["Level"]["mean_abs_error"] < 10
    clf = load_classifier(tmp_path / "clf.safetensors")
    assert clf.names == ["Bright", "Level"] and clf.binary == [True, False]
    dark, light = torch.full([1, 3, 16, 16], -0.5), torch.full([1, 3, 16, 16], 0.6)
    assert clf.predict(light)[0, 0] > clf.predict(dark)[0, 0]
    assert clf.index("bright") == 0
    with pytest.raises(BadInput, match="Smiling"):
        clf.index("Smiling")
    with pytest.raises(BadInput, match="no attribute 'Age'"):
        train_classifier(data, tmp_path / "x.safetensors", attrs=["Age"])
    with pytest.raises(FacegenError, match="not a facegen classifier"):
        load_classifier(data / "dataset.json")



@pytest.mark.skipif(not UTKFACE.is_dir(), reason=f"needs UTKFace photos in {UTKFACE}")
def test_balance_draws_rare_ages_as_often_as_common_ones():
    """UTKFace's real ages (from its file names): a plain draw gives faces of 60 and over about their share of the
    photos (11%), a balanced one about the share of their bins in the range (~49%), half-balanced in between (~23%;
    seeds 0-2)."""
    ages = np.array([int(p.name.split("_")[0]) for p in UTKFACE.iterdir() if p.name.count("_") == 3], np.float64)
    torch.manual_seed(0)
    share = {b: float((ages[balanced_draw(ages, 20_000, b).numpy()] >= 60).mean()) for b in (0.0, 0.5, 1.0)}
    natural = float((ages >= 60).mean())
    assert abs(share[0.0] - natural) < 0.02
    assert share[0.0] + 0.08 < share[0.5] < share[1.0] - 0.08
    assert share[1.0] > 2.5 * natural


def test_balance_needs_one_numeric_attribute(tmp_path):
    data = synthetic_dataset(tmp_path / "data", n=40)
    with pytest.raises(BadParameter, match="exactly one numeric attribute"):
        train_classifier(data, tmp_path / "c.safetensors", attrs=["Bright"], size=16, epochs=1, balance=1.0)
    report = train_classifier(data, tmp_path / "c.safetensors", size=16, epochs=1, batch=8, balance=1.0)
    assert report["balance"] == 1.0 and load_classifier(tmp_path / "c.safetensors").info["balance"] == 1.0
    result = runner.invoke(app, ["classifier", "train", str(data), "--size", "16", "--balance", "1.5",
                                 "-o", str(tmp_path / "d.safetensors")])
    assert result.exit_code == 2 and "balance 1.5 is outside 0-1" in result.output
    assert not (tmp_path / "d.safetensors").exists()

@pytest.mark.slow
@pytest.mark.skipif(not CELEBA.is_dir(), reason="needs ../shared/data/celeba10k")
def test_prepare_classifier_fit_edit(smooth_net, tmp_path):
    """The real pipeline on CelebA: a fitted Smiling direction raises the classifier's Smiling score."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in sorted(p.name for p in (CELEBA / "images").iterdir())[:600]:
        (raw / name).symlink_to(CELEBA / "images" / name)
    net = str(smooth_net.path)
    steps = [["prepare", str(raw), str(tmp_path / "ds"), "--align", "celeba", "--size", "64", "--labels",
              str(CELEBA / "list_attr_celeba.txt"), "--attrs", "Smiling,Male", "-j", "1"],
             ["classifier", "train", str(tmp_path / "ds"), "--epochs", "3", "-o", str(tmp_path / "clf.safetensors")],
             ["directions", "fit", net, "--attr", "Smiling", "-c", str(tmp_path / "clf.safetensors"),
              "--samples", "300"],
             ["directions", "fit", net, "--attr", "Male", "-c", str(tmp_path / "clf.safetensors"), "--samples", "200"],
             ["edit", "seed:5000", "-n", net, "-d", "Smiling", "--range", "-3:3", "--steps", "3",
              "--conditional", "Male", "-o", str(tmp_path / "edit")]]
    for args in steps:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    clf = load_classifier(tmp_path / "clf.safetensors")
    direction = load_direction("Smiling", smooth_net).vector
    sampler = Sampler(smooth_net)
    fresh = np.stack([read_latent(sampler, s) for s in range(5000, 5024)])
    score = lambda ws: clf.predict(torch.from_numpy(sampler.images(ws)).permute(0, 3, 1, 2).float() / 127.5 - 1)  # noqa: E731
    before = score(fresh)[:, clf.index("Smiling")]
    after = score(np.stack([move(ws, direction, 3.0) for ws in fresh]))[:, clf.index("Smiling")]
    assert (after > before).mean() >= 0.8
