"""MP4 output is H.264 in yuv420p (what browsers play), probed with the encoder package itself."""
from __future__ import annotations

import imageio_ffmpeg
import numpy as np

from facegen_cli.video import write_frames


def ramp_frames(count: int, height: int, width: int, channels: int = 3) -> np.ndarray:
    """Smooth frames (a brightness ramp that moves with the frame index), easy to encode nearly losslessly."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [((x * 3 + y * 2 + 20 * i) % 200 + 30).astype(np.uint8) for i in range(count)]
    return np.repeat(np.stack(frames)[..., None], channels, axis=3)


def probe(path) -> tuple[dict, list[np.ndarray]]:
    """The stream's metadata and its decoded RGB frames."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in reader]


def test_mp4_is_h264_yuv420p_and_holds_the_frames(tmp_path):
    frames = ramp_frames(12, 64, 64)
    (out,) = write_frames(frames, tmp_path / "morph.mp4", fps=24)
    meta, decoded = probe(out)
    assert meta["codec"] == "h264"
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 24 and meta["size"] == (64, 64) and len(decoded) == 12
    error = np.abs(np.stack(decoded).astype(int) - frames.astype(int)).mean()
    assert error < 3, error  # crf 18 on smooth content: a few levels at most
    assert [p.name for p in tmp_path.iterdir()] == ["morph.mp4"]  # no temporary file left behind


def test_mp4_rounds_odd_sizes_up_and_takes_grayscale(tmp_path):
    (out,) = write_frames(ramp_frames(3, 33, 45, channels=1), tmp_path / "gray.mp4", fps=10)
    meta, decoded = probe(out)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (46, 34) and len(decoded) == 3
    assert np.abs(decoded[0].astype(int)[..., 0] - decoded[0].astype(int)[..., 2]).max() <= 4  # still gray
