"""The folded Inception forward against the TorchScript file it is built from."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from facegen_cli.metrics import inception_folded
from facegen_cli.metrics.inception import InceptionFeatures, find_weights, folded_forward, preprocess
from facegen_cli.metrics.inception_folded import FoldedInception, feature_layers

CELEBA = Path(__file__).parents[1].parent / "shared" / "data" / "celeba10k" / "images"


@pytest.fixture(scope="module")
def script():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(find_weights()), map_location="cpu")


def real_batch(count: int) -> torch.Tensor:
    """Real faces preprocessed as `fid` does (clean mode), scaled as the file's layers expect."""
    if not CELEBA.is_dir():
        pytest.skip(f"real face data (celeba10k) not found under {CELEBA.parent.parent}")
    files = sorted(CELEBA.glob("*.jpg"))[:count]
    images = [preprocess(np.asarray(Image.open(f).convert("RGB")), "clean") for f in files]
    return (torch.from_numpy(np.stack(images)) - 128) / 128


def test_folded_features_equal_the_files_on_real_faces(script):
    layers = feature_layers(script)
    assert layers is not None
    x = real_batch(6)
    with torch.inference_mode():
        reference = layers(x).reshape(-1, 2048)
    folded = FoldedInception(layers)(x)
    assert reference.abs().max() > 1  # the features are not all ReLU-dead
    torch.testing.assert_close(folded, reference, rtol=1e-4, atol=1e-4)


def test_features_on_a_cpu_run_folded_and_equal_the_files(script):
    assert folded_forward(script) is not None  # the wheel's file is laid out as the folded forward expects
    x = real_batch(3) * 128 + 128
    with torch.inference_mode():
        reference = feature_layers(script)((x - 128) / 128).reshape(-1, 2048).numpy()
    np.testing.assert_allclose(InceptionFeatures("clean")(x), reference, rtol=1e-4, atol=1e-4)


def test_a_file_the_folded_forward_does_not_reproduce_runs_as_torchscript(script, monkeypatch):
    # a pool that counted the padding would be a different network: the probe catches it
    monkeypatch.setattr(inception_folded, "_avg3", lambda x: F.avg_pool2d(x, 3, 1, 1, count_include_pad=True))
    assert folded_forward(script) is None
    assert folded_forward(torch.nn.Sequential(torch.nn.ReLU())) is None  # not an Inception at all
