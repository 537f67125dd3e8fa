"""The identity span of W: dlib's descriptor moves far along its leading axis and little along a trailing one;
`free` projects the leading axes out; the file round-trips and is refused for another network or when damaged."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.latent.directions import move, shipped_dir
from facegen_cli.latent.identity_span import (FILE, IdentitySpan, measure_identity_span, read_identity_span,
                                              save_identity_span)
from facegen_cli.metrics.identity import identity_distance
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler

pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def net():
    return load_network(None, "cpu")


@pytest.fixture(scope="module")
def span(net):
    return measure_identity_span(Sampler(net, psi=0.7), [0], axes=8)


# Seeds 0-3 at psi 0.7, 8 axes, 3 units along the leading / the 8th axis: identity distances 0.63 / 0.16,
# 0.65 / 0.21, 0.44 / 0.23, 0.47 / 0.19 (one thread).
def test_the_leading_axis_changes_the_person_more_than_a_trailing_one(net, span):
    values, axes = span.axes()
    assert values.shape == (net.G_ema.w_dim,) and np.all(np.diff(values) <= 1e-6)
    assert np.sum(values > 1e-6 * values[0]) <= 8  # measured along 8 axes: rank at most 8
    assert np.allclose(axes @ axes.T, np.eye(len(axes)), atol=1e-5)
    sampler = Sampler(net, psi=0.7)
    ws = sampler.seed_latent(0)
    source = sampler.images(ws[None])[0]
    far, near = (identity_distance(source, sampler.images(move(ws, axes[i].astype(np.float32), 3.0)[None])[0])
                 for i in (0, 7))
    assert far >= near + 0.25
    assert span.sensitivity(axes[0]) == pytest.approx(np.sqrt(values[0]), rel=1e-4)


def test_free_projects_the_leading_axes_out(span, net):
    _, axes = span.axes()
    vector = np.random.RandomState(0).randn(net.G_ema.w_dim).astype(np.float32)
    freed = span.free(vector, 3)
    assert np.linalg.norm(freed) == pytest.approx(1.0, abs=1e-5)
    assert np.abs(axes[:3] @ freed).max() < 1e-5
    assert span.sensitivity(freed) < span.sensitivity(vector)
    with pytest.raises(BadParameter, match="count 256 is outside 0-255"):
        span.free(vector, 256)


def test_the_file_round_trips_and_is_checked(span, net, tmp_path):
    path = save_identity_span(span, tmp_path)
    assert path.name == FILE and json.loads(path.with_suffix(".json").read_text())["seeds"] == [0]
    back = read_identity_span(path, net)
    assert np.array_equal(back.metric, span.metric) and back.info == span.info
    assert back.network_id == net.network_id

    save_identity_span(IdentitySpan(span.metric, "0123456789abcdef"), tmp_path / "other")
    with pytest.raises(FacegenError, match="identity span of network 0123456789abcdef, not of this network"):
        read_identity_span(tmp_path / "other" / FILE, net)
    lopsided = span.metric.copy()
    lopsided[0, 1] += 1.0
    save_identity_span(IdentitySpan(lopsided, net.network_id), tmp_path / "bad")
    with pytest.raises(FacegenError, match="not symmetric"):
        read_identity_span(tmp_path / "bad" / FILE, net)
    save_identity_span(IdentitySpan(span.metric[:8, :8], net.network_id), tmp_path / "small")
    with pytest.raises(FacegenError, match=r"of shape \(8, 8\), not this model's"):
        read_identity_span(tmp_path / "small" / FILE, net)
    (tmp_path / "bad" / FILE).with_suffix(".json").unlink()
    with pytest.raises(FacegenError, match="without its identity-span.json"):
        read_identity_span(tmp_path / "bad" / FILE, net)


def test_the_shipped_span_reads(net):
    shipped = read_identity_span(shipped_dir(net) / FILE, net)
    values, _ = shipped.axes()
    assert values[:16].sum() >= 0.6 * values.sum()  # a few axes carry most of it


def test_bad_parameters_are_refused_before_drawing(net):
    sampler = Sampler(net)
    with pytest.raises(BadParameter, match="axes 0 is outside"):
        measure_identity_span(sampler, [0], axes=0)
    with pytest.raises(BadParameter, match="step 0 must be above 0"):
        measure_identity_span(sampler, [0], step=0)
    with pytest.raises(BadParameter, match="give at least one face"):
        measure_identity_span(sampler, [])
