"""Improved precision and recall: the blocked computation against a direct one, cases whose answer is known,
and `facegen fid --pr` on small folders of real CelebA faces (features extracted once per module)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from facegen_cli.errors import BadParameter
from facegen_cli.metrics.fid import cached_features, fid_from_features
from facegen_cli.metrics.inception import InceptionFeatures
from facegen_cli.metrics.precision_recall import kth_neighbour_radii, precision_recall
from facegen_cli.metrics.sources import dataset_stream
from real_faces import celeba_faces

FACES = 12  # per folder
BATCH = 12


def direct(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """The definition, point by point: true distances, each radius from a sorted row without the point."""
    def dist(x, y):
        return np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))

    def radii(x):
        d = dist(x, x)
        return np.array([np.sort(np.delete(d[i], i))[k - 1] for i in range(len(x))])

    real_r, fake_r, cross = radii(real), radii(fake), dist(fake, real)
    precision = np.mean([any(cross[i, j] <= real_r[j] for j in range(len(real))) for i in range(len(fake))])
    recall = np.mean([any(cross[i, j] <= fake_r[i] for i in range(len(fake))) for j in range(len(real))])
    return float(precision), float(recall)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 5])
def test_equals_the_direct_computation(seed, k):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(70, 10))
    fake = rng.normal(size=(55, 10)) * rng.uniform(0.6, 1.4) + rng.uniform(0.4, 0.8)  # partly overlapping
    result = precision_recall(real.astype(np.float32), fake.astype(np.float32), k=k, batch=16)  # blocks of 16
    expected = direct(real.astype(np.float32).astype(np.float64), fake.astype(np.float32).astype(np.float64), k)
    assert (result.precision, result.recall) == expected
    assert 0 < result.precision < 1 and 0 < result.recall < 1  # a case where the boundary matters
    assert (result.k, result.count_real, result.count_fake) == (k, 70, 55)
    assert precision_recall(real, fake, k=k, batch=1000) == result  # one block or many: the same


def test_identical_sets_score_one_and_far_clusters_zero():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 32))
    same = precision_recall(real, real.copy())
    assert (same.precision, same.recall) == (1.0, 1.0)
    far = precision_recall(real, rng.normal(size=(150, 32)) + 100)
    assert (far.precision, far.recall) == (0.0, 0.0)


def test_collapse_onto_part_of_the_data_keeps_precision_and_loses_recall():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(300, 16))
    collapsed = np.repeat(real[:10], 5, axis=0) + rng.normal(size=(50, 16)) * 1e-3  # 50 samples, 10 modes
    result = precision_recall(real, collapsed)
    assert result.precision == 1.0
    assert 10 / 300 <= result.recall < 0.15  # the 10 copied faces are found, little else
    spread = precision_recall(real, rng.normal(size=(50, 16)))  # as many samples from the data's distribution
    assert spread.recall > 2 * result.recall


def test_neighbour_excludes_the_point_itself_but_counts_its_duplicate():
    feats = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    np.testing.assert_array_equal(kth_neighbour_radii(feats, k=1, batch=3), [0, 0, 25, 25])
    np.testing.assert_array_equal(kth_neighbour_radii(feats, k=2, batch=3), [25, 25, 25, 100])


def test_k_must_leave_a_kth_other_point():
    feats = np.zeros((4, 3))
    with pytest.raises(BadParameter, match="^k 0"):
        precision_recall(feats, feats, k=0)
    with pytest.raises(BadParameter, match="^k 4: .* more than 4 points per side, got 4"):
        precision_recall(feats, feats, k=4)
    with pytest.raises(ValueError, match="one D"):
        precision_recall(feats, np.zeros((4, 2)))


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Two folders of different CelebA faces (64x64 crops), their features cached in a tmp FACEGEN_CACHE."""
    root = tmp_path_factory.mktemp("pr")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACEGEN_CACHE", str(root / "cache"))
    folders = {}
    for name, first in (("a", 0), ("b", FACES)):
        folders[name] = root / name
        folders[name].mkdir()
        for i, face in enumerate(celeba_faces(FACES, size=64, first=first)):
            face.save(folders[name] / f"{first + i:06d}.png")
    extractor = InceptionFeatures("clean")
    feats = {name: cached_features(dataset_stream(folder, BATCH, 0), extractor, BATCH)[0]
             for name, folder in folders.items()}
    yield SimpleNamespace(root=root, extractor=extractor, feats=feats, **folders)
    patch.undo()


def test_cli_pr_json_names_the_real_side(faces):
    from facegen_cli.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["fid", str(faces.a), str(faces.b), "--pr", "--json", "--workers", "0",
                                 "--batch", str(BATCH)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    expected = precision_recall(faces.feats["b"], faces.feats["a"], k=3)  # two image sets: B is the real side
    assert (record["real"], record["fake"]) == (str(faces.b), str(faces.a))
    assert (record["precision"], record["recall"], record["pr_k"]) == (expected.precision, expected.recall, 3)
    assert record["fid"] == pytest.approx(fid_from_features(faces.feats["a"], faces.feats["b"]), abs=1e-9)
    assert len(record["cached"]) == 2  # no second Inception pass: both sides from the fixture's cache
    assert 0 < record["precision"] <= 1 and 0 < record["recall"] <= 1

    plain = runner.invoke(app, ["fid", str(faces.a), str(faces.b), "--pr-k", "5", "--workers", "0"])
    assert plain.exit_code == 0, plain.output
    k5 = precision_recall(faces.feats["b"], faces.feats["a"], k=5)
    assert plain.stdout.split("\t")[1:] == [f"{k5.precision:.4f}", f"{k5.recall:.4f}\n"]

    bad = runner.invoke(app, ["fid", str(faces.a), str(faces.b), "--pr-k", str(FACES), "--workers", "0"])
    assert bad.exit_code == 2
    assert f"--pr-k {FACES}: the k-th nearest other point needs more than {FACES}" in bad.output


def test_an_image_set_is_the_real_side_against_a_network(faces, tmp_path):
    from tiny_nets import tiny_checkpoint

    from facegen_cli.metrics.fid import compute_fid

    net = tiny_checkpoint(tmp_path / "tiny.safetensors")
    result = compute_fid(faces.a, net, seeds=range(6), batch=6, extractor=faces.extractor, pr_k=2)
    assert (result.real, result.fake) == (str(faces.a), str(net))
    assert result.cached == [str(faces.a)] and result.count_b == 6
    assert result.precision == 0.0  # random tiny-network images lie far from every face
