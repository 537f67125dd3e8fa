"""Write a sequence of frames as a GIF, an MP4, a PNG strip, or a folder of numbered PNGs."""
from __future__ import annotations

import io
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.fileio import atomic_path, write_bytes_atomic
from facegen_cli.images import make_grid, save_image, to_pil

KINDS = {".gif": "gif", ".mp4": "mp4", ".png": "strip", "": "folder"}
FPS_RANGE = (1, 120)  # a GIF stores frame times in 1/100 s; past 120 fps players show frames late or drop them


def check_fps(fps: float) -> float:
    """`fps` when it lies in FPS_RANGE."""
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:  # also refuses NaN
        raise BadParameter("fps", f"fps {fps:g} is outside {FPS_RANGE[0]}-{FPS_RANGE[1]}")
    return fps


def output_kind(out: Path) -> str:
    """gif, mp4, strip (.png) or folder (no suffix), from the output path."""
    kind = KINDS.get(out.suffix.lower())
    if kind is None:
        raise BadParameter("out", f"out {out}: end it in .gif, .mp4 or .png (a strip), or give a folder")
    return kind


def write_frames(frames: np.ndarray, out: str | Path, fps: float = 24.0) -> list[Path]:
    """Write NHWC uint8 `frames` to `out` in the format its suffix names; returns the written paths."""
    out = Path(out)
    kind = output_kind(out)
    check_fps(fps)
    if kind == "folder":
        return [save_image(frame, out / f"frame{i:04d}.png") for i, frame in enumerate(frames)]
    if kind == "strip":
        return [save_image(make_grid(frames, 1, len(frames)), out)]
    if kind == "gif":
        images = [to_pil(frame) for frame in frames]
        buf = io.BytesIO()
        images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        write_bytes_atomic(out, buf.getvalue())
        return [out]
    return [write_mp4(frames, out, fps)]


def write_mp4(frames: np.ndarray, out: Path, fps: float) -> Path:
    """Encode frames as H.264 in yuv420p, which browsers play (sizes rounded up to even numbers)."""
    h, w = frames.shape[1:3]
    size = (w + w % 2, h + h % 2)
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise FacegenError(f"{out}: no ffmpeg to encode MP4 ({e}); write a .gif instead") from None
    with atomic_path(out) as tmp:
        mp4 = tmp.with_suffix(".mp4")
        writer = imageio_ffmpeg.write_frames(str(mp4), size, fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             quality=None, macro_block_size=1, ffmpeg_log_level="error",
                                             output_params=["-crf", "18", "-movflags", "+faststart"])
        writer.send(None)
        try:
            for frame in frames:
                rgb = frame if frame.shape[2] == 3 else np.repeat(frame, 3, axis=2)
                if rgb.shape[:2] != (size[1], size[0]):
                    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_NEAREST)
                writer.send(np.ascontiguousarray(rgb))
        finally:
            writer.close()
        mp4.replace(tmp)
    return out
