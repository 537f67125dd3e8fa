"""What the studio's pages do, as calls into the engine the CLI uses: generate, mixing, directions,
interpolate and frames. One lock serialises the network's work; slider requests made stale by a newer
one are dropped when their turn comes instead of being rendered.
"""
from __future__ import annotations

import base64
import copy
import dataclasses
import io
import json
import logging
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from facegen_cli.checkpoint import save_tuned
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.images import encode, to_pil
from facegen_cli.latent.directions import (Direction, check_strength, conditioned, known_directions, load_direction,
                                          move, sefa_directions)
from facegen_cli.latent.interpolate import morph_frames
from facegen_cli.latent.io import load_latent
from facegen_cli.latent.layers import LAYER_GROUPS, resolve_layers, w_resolutions
from facegen_cli.latent.mixing import normalized_weights, style_mix, weighted_average
from facegen_cli.latent.sources import latent_shape, read_latent
from facegen_cli.models.stylegan2 import NOISE_MODES
from facegen_cli.networks import Network, apply_tuned
from facegen_cli.sampler import PSI_RANGE, Sampler, attribute_defaults, conditioning, has_wplus, require_wplus
from facegen_cli.specs import MAX_SEED, parse_attrs, parse_label, parse_layers
from facegen_cli.studio.state import Face, NotFound, Tab, Tabs, new_id
from facegen_cli.studio.store import FaceStore
from facegen_cli.studio.uploads import latent_kind
from facegen_cli.video import write_frames

log = logging.getLogger("facegen.studio")
T = TypeVar("T")
KINDS = {int: "a whole number", float: "a finite number", str: "a string", list: "a list", dict: "an object",
         bool: "true or false"}
MAX_PAGE = 24
MAX_FRAMES = 240
SEFA_COUNT = 8
TUNED_IN_MEMORY = 8  # tuned networks kept loaded; the others are read again from their files when drawn
TUNED_GRACE_S = 3600.0  # a tuned file no face refers to is deleted once it is this old (a job may be adding its face)


def png(image: np.ndarray) -> bytes:
    """One HWC uint8 image as PNG bytes."""
    return encode(to_pil(image))


def data_url(image: np.ndarray) -> str:
    """One HWC uint8 image as a PNG data URL, for a JSON answer."""
    return "data:image/png;base64," + base64.b64encode(png(image)).decode()


def field(payload: dict, name: str, kind: type[T], default: Any = ...) -> T:
    """`payload[name]` as `kind`, or one clear error naming the field."""
    if name not in payload:
        if default is ...:
            raise BadInput(f"the request lacks {name!r}")
        return default
    value = payload[name]
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)  # type: ignore[return-value]
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value  # type: ignore[return-value]
    if kind in (str, list, dict, bool) and isinstance(value, kind):
        return value  # type: ignore[return-value]
    raise BadInput(f"{name!r} must be {KINDS[kind]}, got {json.dumps(value)[:80]}")


@dataclass(frozen=True)
class Look:
    """How seeds become faces: the Explore page's settings (the options of `facegen generate`)."""

    psi: float = 1.0
    noise_mode: str = "const"
    label: str | None = None
    attrs: str | None = None
    cutoff: int | None = None  # truncate only the first `cutoff` W+ entries
    translate: tuple[float, float] | None = None  # StyleGAN3 only
    rotate: float | None = None

    @classmethod
    def read(cls, get: Callable[..., Any]) -> "Look":
        """The settings from `get(name, kind, default)` (a JSON body's or a query's fields)."""
        tx, ty, rotate = get("tx", float, 0.0), get("ty", float, 0.0), get("rotate", float, 0.0)
        return cls(get("psi", float, 1.0), get("noise", str, "const"), get("label", str, "") or None,
                   get("attrs", str, "") or None, get("cutoff", int, None), (tx, ty) if tx or ty else None,
                   rotate or None)

    def describe(self) -> str:
        parts = [f"psi {self.psi:g}"] + ([f"cutoff {self.cutoff}"] if self.cutoff is not None else [])
        if self.translate:
            parts.append(f"moved {self.translate[0]:g},{self.translate[1]:g}")
        if self.rotate:
            parts.append(f"turned {self.rotate:g}°")
        return ", ".join(parts)


def display_name(name: str) -> str:
    """A file name as the page shows it: no folders, at most 60 characters."""
    return (name.replace("\\", "/").rsplit("/", 1)[-1] or "upload")[:60]


def direction_label(d: Direction) -> dict:
    """How a slider names its direction: a SeFa component by rank and strength (σ, the root of its eigenvalue
    of AᵀA: how much the style layers respond), an attribute by its name; the tooltip says where it came from."""
    if d.info.get("method") == "sefa":
        rank, sigma = int(d.info.get("rank", 0)) + 1, float(d.info.get("eigenvalue", 0.0)) ** 0.5
        return {"label": f"SeFa {rank} (σ={sigma:.3g})",
                "title": f"SeFa component {rank}, found from the style layers' weights without labels; it "
                         "moves whatever the network ties to it (try it and see)"}
    method, accuracy = d.info.get("method", "stored"), d.info.get("holdout_accuracy")
    held = f", its boundary right on {accuracy:.0%} of held-out faces" if isinstance(accuracy, float) else ""
    return {"label": d.name.replace("_", " "), "title": f"{d.name}: a {method} direction{held}"}


class Studio:
    """The network, its directions, the tabs, and the operations every page calls."""

    def __init__(self, net: Network, workdir: Path, state: Path | None = None, sefa_count: int = SEFA_COUNT):
        self.net = net
        self.workdir = workdir
        self.lock = threading.Lock()
        self.tuned_dir = (state or workdir) / "tuned"  # beside the saved faces, so tuned faces outlive the server
        self.tuned: OrderedDict[str, Network] = OrderedDict()
        store = FaceStore(state, latent_shape(self.sampler()), int(net.G_kwargs.get("c_dim", 0))) if state else None
        self.tabs = Tabs(workdir, store=store)
        self.directions = self._directions(sefa_count) if has_wplus(net) else {}
        self.default_c = attribute_defaults(net) if int(net.G_kwargs.get("c_dim", 0)) else np.zeros([0], np.float32)
        self.extras: list[Callable[[], None]] = []  # close hooks (quiz, projection)
        # what a keep or result request's "op" names: op -> (tab, payload) -> (the face whose settings it keeps,
        # the latent, a name); the control panel adds "controls"
        self.ops: dict[str, Callable[[Tab, dict], tuple[Face, np.ndarray, str]]] = {
            "edit": self._edit, "mix": self._mix, "average": self._average}

    def _directions(self, k: int) -> dict[str, Direction]:
        """The network's directions `edit --direction` finds (shipped and stored) and its top-k SeFa directions."""
        found: dict[str, Direction] = {}
        for name, path in known_directions(self.net).items():
            try:
                found[name] = load_direction(str(path), self.net)
            except FacegenError as error:
                log.warning("skipping direction %s", error)
        for direction in sefa_directions(self.net, k):
            found.setdefault(direction.name, direction)
        return found

    def close(self) -> None:
        for hook in self.extras:
            hook()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def info(self) -> dict:
        """What the pages need to know about the network."""
        G, wplus = self.net.G_ema, has_wplus(self.net)
        groups = {}
        for name in LAYER_GROUPS if wplus else ():
            try:
                groups[name] = resolve_layers(G, [name])
            except BadInput:
                groups[name] = []
        return {
            "network": self.net.path.name if self.net.path else self.net.arch, "architecture": self.net.arch,
            "wplus": wplus, "max_seed": MAX_SEED, "transform": hasattr(getattr(G, "synthesis", None), "set_transform"),
            "resolution": G.img_resolution, "num_ws": getattr(G, "num_ws", 0) if wplus else 0,
            "layers": w_resolutions(G) if wplus else [], "groups": groups,
            "c_dim": int(self.net.G_kwargs.get("c_dim", 0)), "label_names": self.net.provenance.get("label_names"),
            "noise_modes": list(NOISE_MODES), "psi_range": list(PSI_RANGE),
            "directions": [{"name": d.name, "stored": d.info.get("method") != "sefa", **direction_label(d)}
                           for d in self.directions.values()],
        }

    def sampler(self, c: np.ndarray | None = None, psi: float = 1.0, noise_mode: str = "const",
                cutoff: int | None = None, translate: tuple[float, float] | None = None,
                rotate: float | None = None, net: Network | None = None) -> Sampler:
        """The network (default: the studio's) run as the CLI runs it, with a face's settings."""
        return Sampler(net or self.net, psi=psi, noise_mode=noise_mode, label=c, cutoff=cutoff, translate=translate,
                       rotate=rotate)

    def face_sampler(self, face: Face) -> Sampler:
        """The sampler that draws `face`: its settings, on its tuned network if it has one; under the lock."""
        return self.sampler(face.c, face.psi, face.noise_mode, translate=face.translate, rotate=face.rotate,
                            net=self.network(face))

    def add_tuned(self, tuned: Network) -> str:
        """Keep a tuned network (written as a tuned file, loaded while recently used); its id for faces."""
        network_id = new_id()
        self.tuned_dir.mkdir(parents=True, exist_ok=True)
        save_tuned(self.tuned_path(network_id), tuned.arch, tuned.G_kwargs, tuned.G_ema, tuned.provenance)
        with self.lock:
            self._remember(network_id, tuned)
        self.drop_unused_tuned()
        return network_id

    def drop_unused_tuned(self, grace_s: float = TUNED_GRACE_S) -> list[Path]:
        """Delete the tuned files that no face of any tab (open or saved) is drawn by any more, once older than
        `grace_s`: faces dropped past a tab's limit, and tabs dropped past theirs, take their networks with them."""
        used = {face.network for tab in self.tabs.all() for face in tab.face_list() if face.network}
        if self.tabs.store:
            used |= self.tabs.store.networks_in_use()
        now, dropped = time.time(), []
        for path in self.tuned_dir.glob("*.safetensors"):
            try:
                if path.stem not in used and now - path.stat().st_mtime > grace_s:
                    path.unlink()
                    dropped.append(path)
                    with self.lock:
                        self.tuned.pop(path.stem, None)
            except FileNotFoundError:
                continue
        return dropped

    def tuned_path(self, network_id: str) -> Path:
        return self.tuned_dir / f"{network_id}.safetensors"  # ids are server-made hex digits

    def _stored_tuned(self, face: Face) -> Path:
        """The file of a tuned face's network; NotFound when it has been removed."""
        path = self.tuned_path(face.network)
        if not path.is_file():
            raise NotFound(f"the tuned network of {face.name!r} is gone; project the photo again")
        return path

    def _remember(self, network_id: str, tuned: Network) -> None:
        self.tuned[network_id] = tuned
        self.tuned.move_to_end(network_id)
        while len(self.tuned) > TUNED_IN_MEMORY:
            self.tuned.popitem(last=False)

    def network(self, face: Face) -> Network:
        """The network that draws `face`: its tuned one (read from its file when not in memory), else the studio's."""
        if face.network is None:
            return self.net
        found = self.tuned.get(face.network)
        if found is None:
            found = apply_tuned(self._stored_tuned(face),
                                dataclasses.replace(self.net, G_ema=copy.deepcopy(self.net.G_ema)))
        self._remember(face.network, found)
        return found

    def tuned_file(self, face: Face) -> bytes:
        """The tuned network file of a tuned face (what `project --tune` writes; any command takes it)."""
        if face.network is None:
            raise NotFound(f"{face.name!r} is drawn by the studio's network; only a tuned face has a network "
                           "file of its own")
        return self._stored_tuned(face).read_bytes()

    def look_sampler(self, look: Look) -> Sampler:
        return self.sampler(self.conditioning(look.label, look.attrs), look.psi, look.noise_mode, look.cutoff,
                            look.translate, look.rotate)

    def conditioning(self, label: str | None, attrs: str | None) -> np.ndarray:
        """The label vector of the `label` / `attrs` fields, as `--label` / `--attr` read them."""
        return conditioning(self.net, parse_label(label, "label") if label else None,
                            parse_attrs(attrs, "attrs") if attrs else None)

    def render(self, face: Face, latent: np.ndarray | None = None) -> bytes:
        """The PNG of `latent` (default: the face's own) drawn as the face is (its settings, its network); the
        caller holds the lock."""
        return png(self.face_sampler(face).images((face.latent if latent is None else latent)[None])[0])

    def explore(self, tab: Tab, seq: int | None, start: int, count: int, look: Look) -> list[dict] | None:
        """A page of seeds, each as a data-URL PNG (the grid of `facegen generate`); None once stale."""
        if not 1 <= count <= MAX_PAGE or not 0 <= start <= MAX_SEED - count:
            raise BadInput(f"a page holds 1-{MAX_PAGE} seeds between 0 and {MAX_SEED}")
        sampler = self.look_sampler(look)
        with self.lock:
            if seq is not None and tab.is_stale("explore", seq):
                return None
            samples = list(sampler.samples(range(start, start + count)))
        return [{"seed": s.seed, "image": data_url(s.image)} for s in samples]

    def open_seed(self, tab: Tab, seed: int, look: Look) -> Face:
        """The face of one seed, kept in the tab."""
        if not 0 <= seed <= MAX_SEED:
            raise BadInput(f"seed {seed} is outside 0-{MAX_SEED}")
        sampler = self.look_sampler(look)
        with self.lock:
            latent = read_latent(sampler, seed)
            face = Face(new_id(), f"seed {seed} ({look.describe()})", latent, sampler.c, look.psi, look.noise_mode,
                        look.translate, look.rotate)
            face.png = self.render(face)
        return tab.add_face(face)

    def upload_latent(self, tab: Tab, data: bytes, name: str) -> Face:
        """A face from an uploaded `.npy`/`.npz` latent, read like the CLI reads latent files."""
        shown = display_name(name)
        path = tab.path(f"upload-{new_id()}.{latent_kind(data, shown)}")
        path.write_bytes(data)
        try:
            latent = load_latent(path, latent_shape(self.sampler()))
        except FacegenError as error:
            raise type(error)(str(error).replace(str(path), shown)) from None
        finally:
            path.unlink(missing_ok=True)
        face = Face(new_id(), shown, latent, self.default_c)
        with self.lock:
            face.png = self.render(face)
        return tab.add_face(face)

    def _edit(self, tab: Tab, payload: dict) -> tuple[Face, np.ndarray, str]:
        require_wplus(self.net, "editing")
        face = tab.face(field(payload, "face", str))
        sliders = field(payload, "sliders", dict, {})
        fixed = [self.direction(name).vector for name in field(payload, "fixed", list, [])]
        layers = field(payload, "layers", str, "all")
        rows = None if layers == "all" else resolve_layers(self.net.G_ema, parse_layers(layers, "layers"))
        ws, moved = face.latent, []
        for name, strength in sliders.items():
            d = self.direction(name)
            strength = check_strength(field(sliders, name, float), "strength", f"{name} strength {sliders[name]:g}")
            if strength:
                others = [v for v in fixed if not np.array_equal(v, d.vector)]
                ws = move(ws, conditioned(d.vector, others), strength, rows if rows is not None else d.layers)
                moved.append(f"{name} {strength:+g}")
        return face, ws, f"{face.name}, " + (", ".join(moved) or "unedited")

    def _mix(self, tab: Tab, payload: dict) -> tuple[Face, np.ndarray, str]:
        require_wplus(self.net, "style mixing")
        a, b = tab.face(field(payload, "a", str)), tab.face(field(payload, "b", str))
        layers = field(payload, "layers", str)
        chosen = resolve_layers(self.net.G_ema, parse_layers(layers, "layers")) if layers else []
        return a, style_mix(a.latent, b.latent, chosen), f"mix of {a.name} with {b.name} at {layers or 'no layers'}"

    def _average(self, tab: Tab, payload: dict) -> tuple[Face, np.ndarray, str]:
        faces = [tab.face(f) for f in field(payload, "faces", list)]
        if len(faces) < 2:
            raise BadInput("an average needs at least two faces")
        weights = [field({"weight": w}, "weight", float) for w in field(payload, "weights", list)]
        mean = weighted_average(np.stack([f.latent for f in faces]), normalized_weights(weights, len(faces)))
        return faces[0], mean, "average of " + ", ".join(f.name for f in faces)

    def compose(self, tab: Tab, payload: dict) -> tuple[Face, np.ndarray, str]:
        """The latent an edit, mix, average (or controls) request describes, with the face whose settings it
        keeps."""
        op = field(payload, "op", str)
        if op not in self.ops:
            raise BadInput(f"unknown operation {op!r}; one of {', '.join(self.ops)}")
        return self.ops[op](tab, payload)

    def direction(self, name: Any) -> Direction:
        if not isinstance(name, str) or name not in self.directions:
            raise BadInput(f"no direction {name!r} for this network")
        return self.directions[name]

    def live(self, tab: Tab, payload: dict, channel: str, seq: int) -> bytes | None:
        """The image for a live request, or None when a newer request on its channel has come in."""
        face, latent, _ = self.compose(tab, payload)
        with self.lock:
            if tab.is_stale(channel, seq):
                return None
            return self.render(face, latent)

    def result(self, tab: Tab, payload: dict) -> Face:
        """What an edit, mix or average shows, as a face (not kept in the tab)."""
        base, latent, name = self.compose(tab, payload)
        face = dataclasses.replace(base, id=new_id(), name=name[:120], latent=latent)
        with self.lock:
            face.png = self.render(face)
        return face

    def keep(self, tab: Tab, payload: dict) -> Face:
        """Keep what an edit, mix or average shows as a new face of the tab."""
        return tab.add_face(self.result(tab, payload))

    def morph(self, tab: Tab, payload: dict) -> dict:
        """A morph through the chosen faces, written as GIF and H.264 MP4 (the files `interpolate` writes)."""
        faces = [tab.face(f) for f in field(payload, "faces", list)]
        frames, fps = field(payload, "frames", int, 48), field(payload, "fps", float, 24.0)
        loop = field(payload, "loop", bool, False)
        if not 2 <= frames <= MAX_FRAMES or not 1 <= fps <= 60:
            raise BadInput(f"frames must lie in 2-{MAX_FRAMES} and fps in 1-60")
        if len(faces) < 2:
            raise BadInput("add at least two faces to morph between: tick them in the list")
        first, space = faces[0], "w" if has_wplus(self.net) else "z"
        with self.lock:
            images = morph_frames(self.face_sampler(first), np.stack([f.latent for f in faces]), frames, loop, space)
        for old in list(tab.files):
            tab.files.pop(old).unlink(missing_ok=True)
        token = new_id()
        out = {}
        for kind in ("gif", "mp4"):
            path = tab.path(f"morph-{token}.{kind}")
            write_frames(images, path, fps)
            tab.files[f"{token}.{kind}"] = path
            out[kind] = f"/api/t/{tab.id}/morph/{token}.{kind}"
        return {**out, "frames": frames}

    @staticmethod
    def npy(face: Face) -> bytes:
        """The face's latent as `.npy` bytes (W+ `[num_ws, w_dim]` or z), as the CLI writes latents."""
        buf = io.BytesIO()
        np.save(buf, np.asarray(face.latent, np.float32))
        return buf.getvalue()
