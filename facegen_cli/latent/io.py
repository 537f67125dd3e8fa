"""Latents on disk: `.npy` float32 W+ of shape [num_ws, w_dim] (and the shapes others write)."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from facegen_cli.errors import FacegenError
from facegen_cli.fileio import write_bytes_atomic


def save_latent(path: str | os.PathLike, ws: np.ndarray) -> Path:
    """Write one latent as float32 `.npy`, atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(ws, dtype=np.float32))
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def load_latent(path: str | os.PathLike, num_ws: int, w_dim: int) -> np.ndarray:
    """Read `[num_ws, w_dim]`, `[w_dim]`, `[1, num_ws, w_dim]` `.npy` or a projector `.npz` (key `w`)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            if "w" not in data:
                raise FacegenError(f"{path}: npz file without a 'w' array")
            data = data["w"]
    except FileNotFoundError:
        raise FacegenError(f"{path}: no such latent file") from None
    except (ValueError, OSError, zipfile.BadZipFile) as e:
        raise FacegenError(f"{path}: not a readable .npy/.npz latent ({e})") from None
    ws = np.asarray(data, dtype=np.float32)
    if ws.shape == (w_dim,):
        ws = np.repeat(ws[None], num_ws, axis=0)
    elif ws.ndim == 3 and ws.shape[0] == 1:
        ws = ws[0]
    if ws.shape != (num_ws, w_dim):
        raise FacegenError(f"{path}: latent of shape {tuple(data.shape)} does not fit this model, "
                           f"which takes [{num_ws}, {w_dim}] (or [{w_dim}])")
    return ws
