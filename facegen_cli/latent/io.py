"""Latents on disk: `.npy` float32 W+ of shape [num_ws, w_dim] (and the shapes others write)."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import refuse_special, write_bytes_atomic

NUMBER_KINDS = "fiu"  # float, signed and unsigned integers; not bool, complex, strings, objects or dates


def save_latent(path: str | os.PathLike, ws: np.ndarray) -> Path:
    """Write one latent as float32 `.npy`, atomically."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(ws, dtype=np.float32))
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)


def read_array(path: str | os.PathLike, npz_key: str | None = "w") -> np.ndarray:
    """A float32 array from `.npy` (or `.npz` key `npz_key`), refusing missing files, other dtypes, NaN and Inf."""
    path = Path(path)
    try:
        if path.is_dir():
            raise BadInput(f"{path}: is a folder, not a latent file")
        refuse_special(path, "a latent file")
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            if npz_key is None:
                raise FacegenError(f"{path}: an .npz file; give a .npy array here")
            if npz_key not in data:
                raise FacegenError(f"{path}: npz file without a '{npz_key}' array")
            data = data[npz_key]
    except FileNotFoundError:
        raise BadInput(f"{path}: no such latent file") from None
    except ValueError as e:
        reason = ("it holds Python objects" if "Object arrays" in str(e)
                  else "not in .npy/.npz format" if "pickle" in str(e) else e)
        raise FacegenError(f"{path}: not a readable .npy/.npz latent ({reason})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise FacegenError(f"{path}: not a readable .npy/.npz latent ({e})") from None
    if data.dtype.kind not in NUMBER_KINDS or data.dtype.fields:
        raise FacegenError(f"{path}: holds {data.dtype} values; a latent holds real numbers")
    with np.errstate(over="ignore"):
        values = np.asarray(data, dtype=np.float32)
    if not np.isfinite(values).all():
        raise FacegenError(f"{path}: holds NaN or infinite values (or numbers too large for float32)")
    return values


def load_latent(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """The latent in `path` as `shape`: W+ `(num_ws, w_dim)` or z `(z_dim,)`. Also read: a leading batch of
    one (`[1, num_ws, w_dim]`, `[1, z_dim]`), one W for every layer (`[w_dim]`), a projector `.npz` (key `w`)."""
    data = read_array(path)
    latent = data[0] if data.ndim == len(shape) + 1 and data.shape[0] == 1 else data
    if len(shape) == 2 and latent.shape == shape[1:]:
        latent = np.repeat(latent[None], shape[0], axis=0)
    if latent.shape != shape:
        also = f" (or [{shape[1]}])" if len(shape) == 2 else ""
        raise FacegenError(f"{path}: latent of shape {tuple(data.shape)} does not fit this model, "
                           f"which takes [{', '.join(map(str, shape))}]{also}")
    return latent
