"""facegen fid on real faces from ../shared/data: small subsets of CelebA and UTKFace copied into tmp.

Features of each subset are extracted once per module (the cache lives in a tmp folder), so the
file stays fast on 2 cores; the full clean-fid comparison (matrix square roots) is marked slow.
"""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facegen_cli.metrics import fid as fid_engine
from facegen_cli.metrics.fid import cached_features, compute_fid, extract_features, fid_from_features
from facegen_cli.metrics.inception import InceptionFeatures
from facegen_cli.metrics.sources import dataset_stream

DATA = Path(__file__).parents[1].parent / "shared" / "data"
CELEBA = DATA / "celeba10k" / "images"
UTK = DATA / "utkface" / "images"
pytestmark = pytest.mark.skipif(not (CELEBA.is_dir() and UTK.is_dir()),
                                reason=f"real face data (celeba10k, utkface) not found under {DATA}")
HALF = 40
BATCH = 20


def copy_images(files: list[Path], dest: Path) -> Path:
    dest.mkdir(parents=True)
    for f in files:
        shutil.copy(f, dest / f.name)
    return dest


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Two disjoint CelebA halves, a UTKFace set, a small CelebA set; features cached in tmp."""
    root = tmp_path_factory.mktemp("fid")
    patch = pytest.MonkeyPatch()
    patch.setenv("FACEGEN_CACHE", str(root / "cache"))
    celeba = sorted(CELEBA.glob("*.jpg"))[: 2 * HALF + 12]
    utk = sorted(p for p in UTK.glob("*.jpg") if " " not in p.name)[:HALF]
    ns = SimpleNamespace(
        half1=copy_images(celeba[:HALF], root / "celeba_a"),
        half2=copy_images(celeba[HALF:2 * HALF], root / "celeba_b"),
        utk=copy_images(utk, root / "utk"),
        small=copy_images(celeba[2 * HALF:], root / "small"),
        root=root,
        extractor=InceptionFeatures("clean"),
    )
    ns.feats = {name: cached_features(dataset_stream(getattr(ns, name), BATCH, 1), ns.extractor, BATCH)[0]
                for name in ("half1", "half2", "utk")}
    yield ns
    patch.undo()


def test_self_zero_halves_small_other_data_set_large(sets):
    same = compute_fid(sets.half1, sets.half1, batch=BATCH, workers=0, extractor=sets.extractor)
    halves = compute_fid(sets.half1, sets.half2, kid=True, batch=BATCH, workers=0, extractor=sets.extractor)
    other = compute_fid(sets.half1, sets.utk, kid=True, batch=BATCH, workers=0, extractor=sets.extractor)
    assert same.cached == [str(sets.half1)] * 2  # the fixture's run filled the cache
    assert abs(same.fid) < 1e-3
    assert (halves.count_a, halves.count_b) == (HALF, HALF)
    # measured with 40 + 40 images: halves ~126, CelebA vs UTKFace ~216
    assert 60 < halves.fid < 180
    assert other.fid > 1.4 * halves.fid
    # KID is unbiased: about 0 (here slightly negative) for the halves, ~0.115 for the other data set
    assert other.kid > 0.05 and abs(halves.kid) < other.kid / 20


def test_features_equal_clean_fids_on_the_same_folder(sets):
    from cleanfid.fid import get_folder_features

    net = sets.extractor.net
    theirs = get_folder_features(str(sets.small), lambda x: net((x - 128) / 128).reshape(-1, 2048), num_workers=0,
                                 batch_size=12, device=torch.device("cpu"), mode="clean", verbose=False)
    ours = extract_features(dataset_stream(sets.small, 12, 0), sets.extractor, 12)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    reference = sets.feats["half2"]
    assert fid_from_features(ours, reference) == pytest.approx(fid_from_features(theirs, reference), abs=1e-3)


@pytest.mark.slow
def test_fid_equals_clean_fids_compute_fid(sets):
    from cleanfid.fid import compute_fid as cleanfid_compute_fid

    net = sets.extractor.net
    expected = cleanfid_compute_fid(str(sets.half1), str(sets.half2), mode="clean", num_workers=0, batch_size=BATCH,
                                    custom_feat_extractor=lambda x: net((x - 128) / 128).reshape(-1, 2048),
                                    device=torch.device("cpu"), verbose=False)
    ours = compute_fid(sets.half1, sets.half2, batch=BATCH, workers=0, extractor=sets.extractor)
    assert ours.fid == pytest.approx(expected, abs=1e-3)


def test_second_run_extracts_only_the_new_side(sets, monkeypatch):
    archive = sets.root / "small.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(sets.small.iterdir()):
            z.write(f, f"imgs/{f.name}")
    extracted = []
    real = fid_engine.extract_features

    def spy(stream, *args, **kwargs):
        extracted.append(stream.name)
        return real(stream, *args, **kwargs)

    monkeypatch.setattr(fid_engine, "extract_features", spy)
    first = compute_fid(archive, sets.half2, batch=12, workers=1, extractor=sets.extractor)
    assert extracted == [str(archive)] and first.cached == [str(sets.half2)]
    second = compute_fid(sets.small, sets.half2, batch=12, workers=0, extractor=sets.extractor)
    assert extracted == [str(archive)]  # the folder holds the zip's images: same content, same cache entry
    assert second.cached == [str(sets.small), str(sets.half2)]
    assert second.fid == first.fid and 50 < first.fid < 300


def test_network_source_equals_its_images_saved_as_png(sets, tmp_path):
    from tiny_nets import tiny_checkpoint

    from facegen_cli.images import save_image
    from facegen_cli.networks import load_network
    from facegen_cli.sampler import Sampler

    net_path = tiny_checkpoint(tmp_path / "tiny.safetensors")
    seeds = list(range(6))
    folder = tmp_path / "generated"
    folder.mkdir()
    # Drawn in the batches compute_fid draws in: a matrix product's rounding depends on its batch size.
    images = np.concatenate(list(Sampler(load_network(str(net_path)), psi=0.7, batch=6).image_batches(seeds)))
    for seed, image in zip(seeds, images):
        save_image(image, folder / f"seed{seed:04d}.png")
    # one batch shape (6) for both: TorchScript re-profiles every new input shape, which is slow on CPU
    from_net = compute_fid(net_path, sets.half1, seeds=seeds, psi=0.7, batch=6, extractor=sets.extractor)
    from_png = compute_fid(folder, sets.half1, batch=6, workers=0, extractor=sets.extractor)
    assert from_net.count_a == 6 and from_net.cached == [str(sets.half1)]
    assert from_net.fid == pytest.approx(from_png.fid, abs=1e-6)
    assert from_net.fid > 100  # random tiny-network images are far from faces


def test_cli_prints_the_engine_numbers(sets):
    from facegen_cli.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["fid", str(sets.half1), str(sets.utk), "--json", "--kid", "--workers", "0"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    expected = fid_from_features(sets.feats["half1"], sets.feats["utk"])
    assert record["fid"] == pytest.approx(expected, abs=1e-9)
    assert record["kid"] > 0 and record["mode"] == "clean" and record["count_b"] == HALF
    plain = runner.invoke(app, ["fid", str(sets.half1), str(sets.half2)])
    assert plain.exit_code == 0
    assert float(plain.stdout.strip()) == pytest.approx(fid_from_features(sets.feats["half1"], sets.feats["half2"]),
                                                        abs=1e-4)
    bad = runner.invoke(app, ["fid", str(sets.half1), str(sets.half2), "--mode", "tf"])
    assert bad.exit_code == 2 and "legacy_tensorflow" in bad.output
    missing = runner.invoke(app, ["fid", str(sets.half1), str(sets.root / "nowhere")])
    assert missing.exit_code == 2 and "nowhere" in missing.output  # a missing input is bad usage
