"""Per-tab state: each browser tab has its own faces, jobs and latest-request counters, bounded in number;
its faces outlive the server when the tabs have a FaceStore.

A tab names itself with a random hex id that it sends in every API path. Nothing a client sends
ever becomes a file name: faces, morphs and uploads are looked up by ids the server made.
"""
from __future__ import annotations

import re
import secrets
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from facegen_cli.errors import BadInput, FacegenError

if TYPE_CHECKING:
    from facegen_cli.studio.store import FaceStore

TAB_ID = re.compile(r"[0-9a-f]{16,64}")
MAX_TABS = 64
MAX_FACES = 100


def new_id() -> str:
    """A server-made id (12 hex digits)."""
    return secrets.token_hex(6)


class NotFound(FacegenError):
    """A face, morph or job that this tab does not have."""


@dataclass
class Face:
    """A latent the tab holds: W+ `[num_ws, w_dim]` on a W+ model, z `[z_dim]` on the classic families."""

    id: str
    name: str
    latent: np.ndarray
    c: np.ndarray
    psi: float = 1.0  # applied when rendering a z latent; baked into W+ already
    noise_mode: str = "const"
    translate: tuple[float, float] | None = None  # StyleGAN3's input transform, applied when rendering
    rotate: float | None = None
    png: bytes = b""
    network: str | None = None  # the id of the tuned network (pivotal tuning) that draws it; None: the studio's
    photo: bytes = b""  # a projected face's aligned photo (PNG)

    def summary(self, tab: str) -> dict:
        """What the page shows about the face, with its downloads (the tuned network's, for a tuned face) and
        its photo (for a projected face)."""
        url = f"/api/t/{tab}/faces/{self.id}"
        return {"id": self.id, "name": self.name, "image": f"{url}.png", "npy": f"{url}.npy",
                "network": f"{url}.safetensors" if self.network else None,
                "photo": f"{url}/photo.png" if self.photo else None}


@dataclass
class Tab:
    """One browser tab's state."""

    id: str
    workdir: Path
    faces: OrderedDict[str, Face] = field(default_factory=OrderedDict)
    latest: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # morph outputs by id
    jobs: dict[str, Any] = field(default_factory=dict)
    quiz: Any = None
    renders: int = 0
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    save: Callable[[str, list[Face]], None] | None = None  # keeps the face list on disk

    def add_face(self, face: Face) -> Face:
        with self.lock:
            self.faces[face.id] = face
            while len(self.faces) > MAX_FACES:
                self.faces.popitem(last=False)
            if self.save:
                self.save(self.id, list(self.faces.values()))
        return face

    def face_list(self) -> list[Face]:
        with self.lock:
            return list(self.faces.values())

    def face(self, face_id: str) -> Face:
        try:
            return self.faces[face_id]
        except KeyError:
            raise NotFound(f"this tab has no face {face_id!r} (it may have been dropped; open it again)") from None

    def claim(self, channel: str, seq: int) -> None:
        """Note that request `seq` on `channel` was sent; older ones become stale."""
        with self.lock:
            self.latest[channel] = max(self.latest.get(channel, -1), seq)

    def is_stale(self, channel: str, seq: int) -> bool:
        """True (and counted as dropped) when a newer request on `channel` has arrived."""
        with self.lock:
            stale = self.latest.get(channel, -1) > seq
            self.dropped += stale
            self.renders += not stale
            return stale

    def path(self, name: str) -> Path:
        """A file in the tab's own folder; `name` is always server-made."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir / name


class Tabs:
    """The tabs the studio knows, most recently used last; the oldest go (with their files) past MAX_TABS."""

    def __init__(self, root: Path, limit: int = MAX_TABS, store: FaceStore | None = None):
        self.root = root
        self.limit = limit
        self.store = store
        self._tabs: OrderedDict[str, Tab] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, tab_id: str) -> Tab:
        if not TAB_ID.fullmatch(tab_id):
            raise BadInput("bad tab id: reload the page")
        with self._lock:
            tab = self._tabs.get(tab_id)
            if tab is None:
                tab = self._tabs[tab_id] = Tab(tab_id, self.root / tab_id, save=self.store and self.store.save)
                if self.store:
                    tab.faces.update((face.id, face) for face in self.store.load(tab_id)[-MAX_FACES:])
            self._tabs.move_to_end(tab_id)
            while len(self._tabs) > self.limit:
                _, old = self._tabs.popitem(last=False)
                for job in old.jobs.values():
                    job.cancelled = True
                shutil.rmtree(old.workdir, ignore_errors=True)
            return tab

    def all(self) -> list[Tab]:
        with self._lock:
            return list(self._tabs.values())
