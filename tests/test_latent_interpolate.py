"""facegen interpolate: paths through keyframes and the four output kinds."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from facegen_cli.errors import BadInput
from facegen_cli.latent.interpolate import frame_times, run_interpolate, slerp
from facegen_cli.latent.sources import read_latent
from facegen_cli.sampler import Sampler
from facegen_cli.specs import parse_sources

pytestmark = pytest.mark.usefixtures("private_cache")


def frames_in(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("frame*.png"))]


@pytest.mark.parametrize("space", ["w", "z"])
def test_frames_start_at_a_and_end_at_b(tiny_net, tmp_path, space):
    run_interpolate(Sampler(tiny_net), [1, 2], tmp_path / "f", frames=6, space=space)
    frames = frames_in(tmp_path / "f")
    assert len(frames) == 6
    one = Sampler(tiny_net, batch=1)
    ends = one.images(np.stack([read_latent(one, 1), read_latent(one, 2)]))
    np.testing.assert_allclose(frames[0].astype(int), ends[0], atol=1)
    np.testing.assert_allclose(frames[-1].astype(int), ends[1], atol=1)
    assert np.abs(frames[2].astype(int) - ends[0]).mean() > 1  # it does move


def test_loop_returns_towards_the_start_without_repeating_it():
    assert frame_times(3, 6, loop=True).tolist() == [0, 0.5, 1, 1.5, 2, 2.5]
    assert frame_times(3, 5, loop=False).tolist() == [0, 0.5, 1, 1.5, 2]


def test_slerp_keeps_ends_and_interpolates_norms():
    a, b = np.array([3.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_allclose(slerp(a, b, 0), a, atol=1e-6)
    np.testing.assert_allclose(slerp(a, b, 1), b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(slerp(a, b, 0.5)), 2.0, atol=1e-6)


def test_gif_mp4_and_strip(tiny_net, tmp_path):
    sampler = Sampler(tiny_net)
    (gif,) = run_interpolate(sampler, [1, 2, 3], tmp_path / "m.gif", frames=8, loop=True)
    assert Image.open(gif).n_frames == 8
    (mp4,) = run_interpolate(sampler, parse_sources(["seed:1-2"]), tmp_path / "m.mp4", frames=5)
    video = cv2.VideoCapture(str(mp4))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and video.get(cv2.CAP_PROP_FRAME_WIDTH) == 32
    (strip,) = run_interpolate(sampler, [1, 2], tmp_path / "s.png", frames=4)
    assert Image.open(strip).size == (4 * 32, 32)
    with pytest.raises(BadInput, match=".gif, .mp4"):
        run_interpolate(sampler, [1, 2], tmp_path / "x.avi")


def test_z_only_family_interpolates_in_z(z_net, tmp_path):
    sampler = Sampler(z_net)
    run_interpolate(sampler, [1, 2], tmp_path / "f", frames=3)
    frames = frames_in(tmp_path / "f")
    ends = sampler.images(np.stack([read_latent(sampler, 1), read_latent(sampler, 2)]))
    np.testing.assert_array_equal(frames[0], ends[0])
    np.testing.assert_allclose(frames[-1].astype(int), ends[1], atol=1)
    with pytest.raises(BadInput, match="no W space"):
        run_interpolate(sampler, [1, 2], tmp_path / "g", space="w")


def test_z_space_needs_seeds_on_a_w_model(tiny_net, tmp_path):
    path = tmp_path / "a.npy"
    sampler = Sampler(tiny_net)
    np.save(path, read_latent(sampler, 1))
    with pytest.raises(BadInput, match="needs seed:N"):
        run_interpolate(sampler, [path, 2], tmp_path / "f", frames=3, space="z")
