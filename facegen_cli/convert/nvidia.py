"""Import NVIDIA network pickles: PyTorch snapshots and TensorFlow-era StyleGAN2 pickles.

A PyTorch snapshot (stylegan2-ada-pytorch or stylegan3 `training_loop.py`) is a dict with
`G`, `D`, `G_ema`, `augment_pipe` and `training_set_kwargs`; each network is a persistent
record with a bare class name. The network family is recognised from the generator's
own contents (its synthesis layers, then the module source as text), and each family
(StyleGAN2, StyleGAN3) has an importer; a generator of neither is refused in one line.
A TensorFlow pickle is a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` states.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from facegen_cli.checkpoint import NetworkParts
from facegen_cli.convert import nvidia_stylegan2, nvidia_stylegan3, tf_stylegan2
from facegen_cli.convert.safe_pickle import PersistentRecord, TFNetworkRecord, load_restricted
from facegen_cli.errors import FacegenError

ALL_MODULES = ("G_ema", "G", "D")
Build = Callable[[Any, str], "tuple[dict, nn.Module]"]


@dataclass(frozen=True)
class FamilyImporter:
    """How to turn one network family's records into our modules."""

    arch: str  # facegen architecture name (models/registry.py)
    generator: Build
    discriminator: Build | None = None


# One importer per network family of NVIDIA's PyTorch snapshots, keyed by `network_family`'s answer.
IMPORTERS: dict[str, FamilyImporter] = {
    "stylegan2": FamilyImporter("stylegan2", nvidia_stylegan2.import_generator, nvidia_stylegan2.import_discriminator),
    # StyleGAN3 snapshots pair the alias-free generator with networks_stylegan2's discriminator.
    "stylegan3": FamilyImporter("stylegan3", nvidia_stylegan3.import_generator, nvidia_stylegan2.import_discriminator),
}
TF_IMPORTER = FamilyImporter("stylegan2", tf_stylegan2.import_tf_generator, tf_stylegan2.import_tf_discriminator)
# StyleGAN3 synthesis layers are named L<index>_<size>_<channels>, beside an `input` layer.
_SG3_LAYER = re.compile(r"L\d+_\d+_\d+")


def network_family(G: PersistentRecord) -> str | None:
    """'stylegan2', 'stylegan3' or None, from a generator record's layers and then its source text."""
    synthesis = G.children.get("synthesis")
    layers = set(synthesis.children) if synthesis is not None else set()
    if "input" in layers or any(_SG3_LAYER.fullmatch(name) for name in layers):
        return "stylegan3"
    if "b4" in layers:
        return "stylegan2"
    if "class SynthesisInput" in G.module_src:
        return "stylegan3"
    if "class SynthesisBlock" in G.module_src:
        return "stylegan2"
    return None


def _build(build: Build, record: Any, what: str) -> tuple[dict, nn.Module]:
    """Run an importer, turning a record that lacks what the layout needs into one line."""
    try:
        return build(record, what)
    except FacegenError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise FacegenError(f"{what}: not a network layout facegen knows ({type(e).__name__}: {e})") from None


def _import_networks(path: Path, importer: FamilyImporter, g_rec: Any, G: Any, D: Any,
                     modules: tuple[str, ...], provenance: dict) -> NetworkParts:
    """G_ema always; G and D only when asked for and present."""
    G_kwargs, G_ema = _build(importer.generator, g_rec, f"{path}: G_ema")
    out = NetworkParts(arch=importer.arch, G_kwargs=G_kwargs, G_ema=G_ema, G=None, D=None, D_kwargs={},
                       provenance=provenance, training_state=None)
    if "G" in modules and G is not None and G is not g_rec:
        out["G"] = _build(importer.generator, G, f"{path}: G")[1]
    if "D" in modules and D is not None and importer.discriminator is not None:
        out["D_kwargs"], out["D"] = _build(importer.discriminator, D, f"{path}: D")
    return out


def _import_tf(path: Path, data: Any, modules: tuple[str, ...]) -> NetworkParts:
    G, D, Gs = data if isinstance(data, tuple) else (None, None, data)
    return _import_networks(path, TF_IMPORTER, Gs, G, D, modules,
                            {"source": "nvidia-tf-pickle", "source_file": path.name,
                             "source_class": str(Gs.state.get("build_func_name", "")), "dataset": ""})


def import_nvidia_pickle(path: Path, modules: tuple[str, ...] = ALL_MODULES) -> NetworkParts:
    """Read an NVIDIA pickle into its network's parts.

    Only the networks named in `modules` are built (G_ema always is).
    """
    try:
        data = load_restricted(path)
    except FacegenError as e:
        raise FacegenError(f"{path}: {e}") from None
    if isinstance(data, TFNetworkRecord) or (
            isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data)):
        return _import_tf(path, data, modules)
    if isinstance(data, PersistentRecord):
        data = {"G_ema": data}
    nets = {k: data.get(k) for k in ALL_MODULES} if isinstance(data, dict) else {}
    nets = {k: v if isinstance(v, PersistentRecord) else None for k, v in nets.items()}
    g_rec = nets.get("G_ema") or nets.get("G")
    if g_rec is None:
        raise FacegenError(f"{path}: not an NVIDIA network pickle (no G_ema or G inside)")
    family = network_family(g_rec)
    importer = IMPORTERS.get(family or "")
    if importer is None:
        raise FacegenError(f"{path}: generator class {g_rec.class_name!r} is not a StyleGAN2 or StyleGAN3 network")
    training_set = data.get("training_set_kwargs") or {}
    return _import_networks(path, importer, g_rec, nets["G"], nets["D"], modules,
                            {"source": "nvidia-pickle", "source_file": path.name, "source_class": g_rec.class_name,
                             "source_family": family,
                             "dataset": str(training_set.get("path", "")) if isinstance(training_set, dict) else ""})
