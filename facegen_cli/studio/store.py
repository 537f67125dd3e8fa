"""The tabs' faces on disk, so that they outlive the server: one `.npz` per tab in a folder the user names
(`facegen studio --state DIR`; by default the user cache, one folder per network).

A file holds each face's latent, label vector, PNG (and a projected face's photo), and a JSON list of the rest
(id, name, psi, noise mode, input transform, the id of its tuned network, whose file the studio keeps in
`tuned/` beside these). A file that cannot be read, or whose latents do not fit this network, is set aside
as `.corrupt` with a warning in the log, and the tab starts empty: a damaged file never stops the studio.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import zipfile
from pathlib import Path

import numpy as np

from facegen_cli.fileio import atomic_open
from facegen_cli.studio.state import Face

log = logging.getLogger("facegen.studio")
MAX_FILES = 256  # tabs kept on disk; the least recently saved go first
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FACE_ID = re.compile(r"[0-9a-f]{12}")  # as state.new_id makes them


class Unreadable(Exception):
    """A state file that does not hold faces of this network."""


class FaceStore:
    """Loads and saves the face list of each tab id under `folder`."""

    def __init__(self, folder: Path, latent_shape: tuple[int, ...], c_dim: int, limit: int = MAX_FILES):
        self.folder = Path(folder)
        self.latent_shape = tuple(latent_shape)
        self.c_dim = c_dim
        self.limit = limit
        self.lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, tab_id: str) -> Path:
        return self.folder / f"faces-{tab_id}.npz"  # tab ids are checked hex digits

    def save(self, tab_id: str, faces: list[Face]) -> None:
        """Write the tab's faces (replacing its file whole), then drop the oldest files past the limit."""
        meta = [{"id": f.id, "name": f.name, "psi": f.psi, "noise_mode": f.noise_mode,
                 "translate": list(f.translate) if f.translate else None, "rotate": f.rotate, "network": f.network}
                for f in faces]
        arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
        for i, f in enumerate(faces):
            arrays[f"latent{i}"] = np.asarray(f.latent, np.float32)
            arrays[f"c{i}"] = np.asarray(f.c, np.float32)
            arrays[f"png{i}"] = np.frombuffer(f.png, np.uint8)
            if f.photo:
                arrays[f"photo{i}"] = np.frombuffer(f.photo, np.uint8)
        with self.lock:
            try:
                with atomic_open(self.path(tab_id)) as out:
                    np.savez(out, **arrays)
            except Exception as error:  # noqa: BLE001 - the faces stay in memory; the log says why
                log.warning("could not save the faces of tab %s: %s", tab_id, error)
                return
            files = sorted(self.folder.glob("faces-*.npz"), key=lambda p: p.stat().st_mtime)
            for old in files[:-self.limit]:
                old.unlink(missing_ok=True)

    def networks_in_use(self) -> set[str]:
        """The ids of the tuned networks the saved faces of every tab are drawn by (damaged files skipped)."""
        used = set()
        with self.lock:
            files = list(self.folder.glob("faces-*.npz"))
        for path in files:
            try:
                with np.load(path, allow_pickle=False) as data:
                    meta = json.loads(data["meta"].tobytes())
                used.update(str(m["network"]) for m in meta if isinstance(m, dict) and m.get("network"))
            except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError):
                continue
        return used

    def load(self, tab_id: str) -> list[Face]:
        """The tab's saved faces; [] when it has none or its file is damaged (then set aside, with a warning)."""
        path = self.path(tab_id)
        if not path.exists():
            return []
        try:
            return self._read(path)
        except (Unreadable, OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as error:
            aside = path.with_suffix(".corrupt")
            path.replace(aside)
            log.warning("%s: cannot read the saved faces (%s); starting this tab with none, the file kept as %s",
                        path, error, aside.name)
            return []

    def _read(self, path: Path) -> list[Face]:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(data["meta"].tobytes())
            if not isinstance(meta, list):
                raise Unreadable("no face list")
            faces = []
            for i, m in enumerate(meta):
                latent, c, png = data[f"latent{i}"], data[f"c{i}"], data[f"png{i}"].tobytes()
                if latent.shape != self.latent_shape or c.shape != (self.c_dim,) or not png.startswith(PNG_MAGIC):
                    raise Unreadable(f"face {i} does not fit this network (latent {list(latent.shape)})")
                network = m.get("network")
                if not FACE_ID.fullmatch(str(m["id"])) or not np.isfinite(latent).all() or not (
                        network is None or FACE_ID.fullmatch(str(network))):
                    raise Unreadable(f"face {i} has a bad id or a value that is not finite")
                photo = data[f"photo{i}"].tobytes() if f"photo{i}" in data.files else b""
                if photo and not photo.startswith(PNG_MAGIC):
                    raise Unreadable(f"face {i}'s photo is not a PNG")
                translate = m["translate"]
                faces.append(Face(str(m["id"]), str(m["name"]), latent, c, float(m["psi"]), str(m["noise_mode"]),
                                  (float(translate[0]), float(translate[1])) if translate else None,
                                  None if m["rotate"] is None else float(m["rotate"]), png, network, photo))
            return faces
