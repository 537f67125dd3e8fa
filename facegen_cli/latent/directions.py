"""Latent directions: stored per network, found by SeFa, applied as edits (optionally conditional).

A direction is a unit vector in W saved as `NAME.npy`, with `NAME.json` beside it holding the
network id it belongs to, the W+ layers it was found for, and how it was made. `edit` looks in the
user's store (the cache) and then in the shipped `weights/directions/<network id>/`.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from torch import nn

from facegen_cli.errors import BadInput, BadParameter, FacegenError, ParameterWarning
from facegen_cli.fileio import refuse_special, write_text_atomic
from facegen_cli.images import make_grid, save_image
from facegen_cli.latent.io import read_array, save_latent
from facegen_cli.latent.sources import Source, read_latent, source_name
from facegen_cli.networks import Network
from facegen_cli.paths import cache_dir, weights_dir
from facegen_cli.sampler import Sampler, require_wplus

# A direction is a unit vector in W, where sampled faces of the shipped model lie 13.7 from the average on
# average. Moved along the shipped directions, 1-7 % of pixels saturate at strength 10 (as in a face), 3-33 %
# at 20-30 and 40-80 % at 100 (benchmarks/RESULTS.md, "latent bounds").
ODD_STRENGTH = 10
MAX_STRENGTH = 100
MAX_STEPS = 1000  # images in one strip


@dataclass
class Direction:
    """A unit vector in W tied to one network."""

    name: str
    vector: np.ndarray  # [w_dim]
    network_id: str
    layers: list[int] | None = None  # W+ entries it acts on by default; None = all
    info: dict = field(default_factory=dict)


IDENTITY_SPAN = "identity-span"  # the network's identity span (latent.identity_span), kept beside its directions


def store_dir(net: Network) -> Path:
    """Where `directions sefa/fit` write by default and `edit --direction NAME` looks."""
    return cache_dir("directions", net.network_id)


def shipped_dir(net: Network) -> Path:
    """Directions shipped with the package for this network (found but never written by default)."""
    return weights_dir() / "directions" / net.network_id


def known_directions(net: Network) -> dict[str, Path]:
    """Name -> `.npy` of every direction `edit --direction NAME` finds; the user's store wins a name. The
    identity span kept beside the shipped directions is not one of them."""
    found = {}
    for folder in (shipped_dir(net), store_dir(net)):
        found.update({p.stem: p for p in sorted(folder.glob("*.npy")) if p.stem != IDENTITY_SPAN})
    return found


def save_direction(direction: Direction, folder: str | Path) -> Path:
    """Write `NAME.npy` and its `NAME.json` under `folder`; returns the `.npy` path."""
    path = Path(folder) / f"{direction.name}.npy"
    save_latent(path, direction.vector)
    meta = {"network_id": direction.network_id, "layers": direction.layers, **direction.info}
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    return path


def direction_files(path: Path) -> list[Path]:
    """The files one saved direction is: `NAME.npy` (`path`, as save_direction returns it) and `NAME.json`."""
    return [path, path.with_suffix(".json")]


def load_direction(spec: str, net: Network) -> Direction:
    """A direction by file path or by name (user's store, then shipped); it must belong to `net`."""
    if not spec.strip():
        raise BadParameter("direction", "direction '' is empty; give a direction name or a .npy file")
    path = refuse_special(spec, "a direction file")
    if not path.exists():
        known = known_directions(net)
        if spec not in known:
            raise BadInput(f"no direction {spec!r}: not a file, and not among this network's directions "
                               f"({', '.join(sorted(known)) or 'none yet; run `facegen directions sefa` or `fit`'})")
        path = known[spec]
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        vector = read_array(path, npz_key=None)
    except FileNotFoundError:
        raise FacegenError(f"{path}: direction without its {path.with_suffix('.json').name} (network id)") from None
    except (ValueError, OSError, json.JSONDecodeError) as e:
        raise FacegenError(f"{path}: unreadable direction ({e})") from None
    if meta.get("network_id") != net.network_id:
        raise FacegenError(f"{path}: direction belongs to network {meta.get('network_id')}, not to this network "
                           f"({net.network_id})")
    w_dim = net.G_ema.w_dim
    if vector.shape != (w_dim,):
        raise FacegenError(f"{path}: direction of shape {tuple(vector.shape)} does not fit this model's [{w_dim}]")
    return Direction(path.stem, vector, meta["network_id"], meta.get("layers"), meta)


def conditioned(vector: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """`vector` with the span of `others` projected out, renormalised (InterFaceGAN's conditional edit)."""
    basis: list[np.ndarray] = []
    for other in others:
        for b in basis:
            other = other - np.dot(other, b) * b
        norm = np.linalg.norm(other)
        if norm > 1e-6:
            basis.append(other / norm)
    for b in basis:
        vector = vector - np.dot(vector, b) * b
    norm = np.linalg.norm(vector)
    if norm < 1e-6:
        raise BadInput("the direction lies in the span of the conditional directions; nothing is left to edit")
    if not basis and abs(norm - 1) < 1e-5:
        return vector.astype(np.float32)  # already a unit vector: kept bit for bit, so edits move W by it exactly
    return (vector / norm).astype(np.float32)


def move(ws: np.ndarray, vector: np.ndarray, strength: float, layers: list[int] | None = None) -> np.ndarray:
    """W+ (one [layers, w_dim] or a batch of them) moved by `strength` along `vector`, on `layers` only (all
    when None)."""
    edited = ws.copy()
    rows = slice(None) if layers is None else layers
    edited[..., rows, :] += np.float32(strength) * vector
    return edited


def modulation_layers(G) -> dict[int, nn.Module]:
    """W+ index -> the synthesis convolution whose style affine reads it. StyleGAN2: convolution k
    reads entry k; StyleGAN3: layer L{k-1} reads entry k, entry 0 placing the Fourier input. ToRGB
    (the last entry) is left out."""
    synthesis = G.synthesis
    if hasattr(synthesis, "layer_names"):
        return {k + 1: getattr(synthesis, name) for k, name in enumerate(synthesis.layer_names[:-1])}
    layers = []
    for res in synthesis.block_resolutions:
        block = getattr(synthesis, f"b{res}")
        layers += [getattr(block, name) for name in ("conv0", "conv1") if hasattr(block, name)]
    return dict(enumerate(layers))


def style_entries(G, layers: list[int] | None) -> list[int]:
    """The W+ entries among `layers` (all when None) that style a convolution, which SeFa factorises."""
    convs = modulation_layers(G)
    chosen = sorted(convs) if layers is None else [i for i in layers if i in convs]
    if not chosen:
        raise BadInput(f"SeFa layers must include one of {min(convs)}-{max(convs)} (the W+ entries that style a "
                       f"convolution; ToRGB's and StyleGAN3's input transform are left out)")
    return chosen


def sefa(net: Network, k: int = 10, layers: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form factorisation: top-k eigenvectors of AᵀA over the chosen layers' style weights A."""
    require_wplus(net, "SeFa")
    w_dim = net.G_ema.w_dim
    if not 1 <= k <= w_dim:
        raise BadParameter("k", f"k {k} is outside 1-{w_dim}: this network has {w_dim} directions (its w_dim)")
    convs = modulation_layers(net.G_ema)
    chosen = style_entries(net.G_ema, layers)
    weight = np.concatenate([(convs[i].affine.weight * convs[i].affine.weight_gain).detach().cpu().double().numpy()
                             for i in chosen])
    weight /= np.linalg.norm(weight, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(weight.T @ weight)
    order = np.argsort(values)[::-1][:k]
    return vectors[:, order].T.astype(np.float32), values[order]


def run_sefa(net: Network, out: str | Path | None = None, k: int = 10, layers: list[int] | None = None) -> list[Path]:
    """Save the top-k SeFa directions as `sefa-NN.npy` (to the network's store unless `out`)."""
    folder = Path(out) if out else store_dir(net)
    return [save_direction(d, folder) for d in sefa_directions(net, k, layers)]


def sefa_directions(net: Network, k: int = 10, layers: list[int] | None = None) -> list[Direction]:
    """The top-k SeFa directions as `sefa-NN` Directions of this network (not saved)."""
    require_wplus(net, "SeFa")
    vectors, values = sefa(net, k, layers)
    layers = None if layers is None else style_entries(net.G_ema, layers)
    return [Direction(f"sefa-{i:02d}", v, net.network_id, layers, {"method": "sefa", "rank": i, "eigenvalue": float(e)})
            for i, (v, e) in enumerate(zip(vectors, values))]


def strengths_of(strength: float | None, span: tuple[float, float] | None, steps: int) -> np.ndarray:
    """One `strength`, or `steps` evenly spaced strengths across `span` (LOW, HIGH), each within MAX_STRENGTH
    (a ParameterWarning beyond ODD_STRENGTH)."""
    if (strength is None) == (span is None):
        raise BadParameter("strength", "strength: give either one strength or a span of strengths")
    if strength is not None:
        return np.array([check_strength(strength, "strength", f"strength {strength:g}")])
    if not 2 <= steps <= MAX_STEPS:
        raise BadParameter("steps", f"steps {steps} is outside 2-{MAX_STEPS}")
    text = f"span {span[0]:g}:{span[1]:g}"
    if span[0] == span[1]:
        raise BadParameter("span", f"{text} is empty: every image would be the same; give LOW:HIGH with LOW < HIGH")
    check_strength(max(span, key=abs), "span", text)
    return np.linspace(span[0], span[1], steps)


def check_strength(strength: float, param: str, text: str) -> float:
    """Refuse a strength beyond MAX_STRENGTH and warn beyond ODD_STRENGTH (directions are unit vectors in W)."""
    if not abs(strength) <= MAX_STRENGTH:
        raise BadParameter(param, f"{text} is outside -{MAX_STRENGTH}..{MAX_STRENGTH}: that far along a direction "
                                  "most pixels saturate and no face is left")
    if abs(strength) > ODD_STRENGTH:
        warnings.warn(ParameterWarning(param, f"{text} lies outside -{ODD_STRENGTH}..{ODD_STRENGTH}, where faces "
                                              "begin to break up (edits usually stay within -5..5)"), stacklevel=2)
    return strength


def run_edit(sampler: Sampler, source: Source, direction: str, out: str | Path, strength: float | None = None,
             span: tuple[float, float] | None = None, steps: int = 7, layers: list[int] | None = None,
             conditional: list[str] | None = None, save_latents: bool = False) -> Iterator[Path]:
    """Move the latent `source` along `direction` by one strength (an image) or across a span (a strip);
    yield paths."""
    net = sampler.net
    require_wplus(net, "edit")
    strengths = strengths_of(strength, span, steps)
    d = load_direction(direction, net)
    vector = conditioned(d.vector, [load_direction(c, net).vector for c in conditional or []])
    rows = layers if layers is not None else d.layers
    ws = read_latent(sampler, source)
    edited = np.stack([move(ws, vector, s, rows) for s in strengths])
    images = sampler.images(edited)
    stem = f"{source_name(source)}-{d.name}"
    if strength is not None:
        yield save_image(images[0], Path(out) / f"{stem}_{strength:+g}.png")
    else:
        yield save_image(make_grid(images, 1, len(images)), Path(out) / f"{stem}-strip.png")
    if save_latents:
        for s, e in zip(strengths, edited):
            yield save_latent(Path(out) / f"{stem}_{s:+g}.npy", e)
