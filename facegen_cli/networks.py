"""Network, a loaded model, and finding and loading one by path or name: our checkpoints, NVIDIA pickles,
rosinality files, NVIDIA's published StyleGAN2 and StyleGAN3 networks (downloaded once into the cache) and the
shipped models."""
from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from facegen_cli.checkpoint import (SUFFIX, TUNED_FROM, TUNED_PART, load_strict, read_checkpoint, read_header,
                                    read_tensors)
from facegen_cli.convert.foreign import read_network_parts, sniff_format
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.models.registry import Architecture, get_architecture
from facegen_cli.paths import cache_dir, weights_dir

NGC = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/"
PUBLISHED: dict[str, str] = {
    "ffhq-256": NGC + "stylegan2-ffhq-256x256.pkl",
    "ffhq-512": NGC + "stylegan2-ffhq-512x512.pkl",
    "ffhq-1024": NGC + "stylegan2-ffhq-1024x1024.pkl",
    "metfaces": NGC + "stylegan2-metfaces-1024x1024.pkl",
    "afhq-cat": NGC + "stylegan2-afhqcat-512x512.pkl",
    "afhq-dog": NGC + "stylegan2-afhqdog-512x512.pkl",
    "afhq-wild": NGC + "stylegan2-afhqwild-512x512.pkl",
    "celebahq-256": NGC + "stylegan2-celebahq-256x256.pkl",
}
NGC_SG3 = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
# StyleGAN3 (configs T and R): sg3-<cfg>-<dataset>-<resolution>, e.g. sg3-t-ffhq-1024.
PUBLISHED.update({
    f"sg3-{cfg}-{data}-{res}": f"{NGC_SG3}stylegan3-{cfg}-{data}-{res}x{res}.pkl"
    for cfg in "tr"
    for data, res in (("ffhq", 1024), ("ffhqu", 256), ("ffhqu", 1024), ("metfaces", 1024), ("metfacesu", 1024),
                      ("afhqv2", 512))
})
DEFAULT_NETWORK = "default"
DOWNLOAD_TIMEOUT_S = 15


@dataclass
class Network:
    """A loaded model: its networks, how to rebuild them, where it came from."""

    arch: str
    G_kwargs: dict
    G_ema: nn.Module
    G: nn.Module | None = None
    D: nn.Module | None = None
    D_kwargs: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    training_state: dict | None = None
    path: Path | None = None

    @property
    def architecture(self) -> Architecture:
        return get_architecture(self.arch)

    @property
    def network_id(self) -> str:
        """A stable identity for files tied to this model (latent directions); a tuned network (pivotal
        tuning) has its base network's, so the base's directions apply to it."""
        tuned_from = self.provenance.get(TUNED_FROM) or {}
        return str(tuned_from.get("id") or self.provenance.get("id") or (self.path.stem if self.path else self.arch))


def _to_device(net: Network, device: torch.device | str, modules: tuple[str, ...]) -> Network:
    """`net` with the named modules it holds moved onto `device`."""
    for name in modules:
        module = getattr(net, name)
        if module is not None:
            setattr(net, name, module.to(device))
    return net


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu", modules: tuple[str, ...] = ("G_ema",),
                    with_training_state: bool = False) -> Network:
    """A facegen checkpoint as a Network; `modules` picks which of G_ema, G, D to build."""
    path = Path(path)
    return _to_device(Network(**read_checkpoint(path, modules, with_training_state), path=path), device, modules)


def apply_tuned(path: str | os.PathLike, base: Network) -> Network:
    """The tuned network in the file at `path`, made from `base` (which it changes in place): its G_ema with the
    file's TUNED_PART. `base` must be the network the file was tuned from (its id and settings)."""
    path = Path(path)
    header = read_header(path)
    record = header["provenance"].get(TUNED_FROM) or {}
    if record.get("id") != base.network_id:
        raise FacegenError(f"{path}: tuned from network {record.get('id')}, but its base here "
                           f"({base.path or base.arch}) is network {base.network_id}")
    if header["arch"] != base.arch or header["G_kwargs"] != json.loads(json.dumps(base.G_kwargs)):
        raise FacegenError(f"{path}: its settings differ from its base network's ({base.path or base.arch})")
    tensors = read_tensors(path)
    prefix = f"G_ema.{TUNED_PART}."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if len(state) != len(tensors):
        raise FacegenError(f"{path}: a tuned file holds only G_ema.{TUNED_PART} tensors")
    part = getattr(base.G_ema, TUNED_PART)
    load_strict(part, state, f"{path}: G_ema.{TUNED_PART}", "its base network",
                keep_own=tuple(name for name, _ in part.named_buffers()))
    return Network(arch=base.arch, G_kwargs=base.G_kwargs, G_ema=base.G_ema.eval().requires_grad_(False),
                   provenance=header["provenance"], path=path)


def shipped_networks() -> dict[str, Path]:
    """Models in `weights/`: file stem -> path, plus `default` for the default face model."""
    found = {p.stem: p for p in sorted(weights_dir().glob(f"*{SUFFIX}"))}
    default = weights_dir() / f"{DEFAULT_NETWORK}{SUFFIX}"
    if default.exists():
        found[DEFAULT_NETWORK] = default
    return found


def download(url: str, dest: Path) -> Path:
    """Fetch `url` into `dest` (atomically); offline, one line says where to put the file."""
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, dest)
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise FacegenError(f"cannot download {url} ({getattr(e, 'reason', e)}); download it by hand and "
                           f"save it as {dest}") from None
    return dest


def resolve_network(spec: str | None) -> Path:
    """The file a network spec names (None: the default model), downloading a published network on first use."""
    if spec is None:
        spec = DEFAULT_NETWORK
    if not str(spec).strip():
        raise BadParameter("network", f"network {spec!r} is empty; give a file or a name, or leave it out for the "
                                      "shipped model")
    shipped = shipped_networks()
    if spec in shipped:
        return shipped[spec]
    if spec in PUBLISHED:
        url = PUBLISHED[spec]
        dest = cache_dir("networks") / url.rsplit("/", 1)[1]
        return dest if dest.exists() else download(url, dest)
    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            raise BadInput(f"{path}: is a folder, not a network file")
        return path
    if spec == DEFAULT_NETWORK:
        raise FacegenError(f"no default model in {weights_dir()}; name a network file or a published network")
    names = sorted(set(shipped) | set(PUBLISHED))
    raise BadInput(f"{spec}: no such network file or name (names: {', '.join(names)})")


def load_network(spec: str | None, device: torch.device | str = "cpu", modules: tuple[str, ...] = ("G_ema",)) -> Network:
    """Load whatever `spec` names onto `device`, ready for inference; a tuned file on its base network."""
    path = resolve_network(spec)
    base = tuned_base(path)
    if base is None:
        return _to_device(Network(**read_network_parts(path, modules), path=path), device, modules)
    return _to_device(apply_tuned(path, load_network(str(base))), device, modules)


def tuned_base(path: Path) -> Path | None:
    """For a tuned file, the file of its base network: the shipped network of the recorded id, else the
    recorded path (whose id `apply_tuned` checks); None for any other network file."""
    if sniff_format(path) != "facegen":
        return None
    record = read_header(path)["provenance"].get(TUNED_FROM)
    if record is None:
        return None
    for shipped in shipped_networks().values():
        if read_header(shipped)["provenance"].get("id") == record.get("id"):
            return shipped
    recorded = Path(record.get("path") or "")
    if record.get("path") and recorded.is_file() and recorded.resolve() != path.resolve():
        return recorded
    raise FacegenError(f"{path}: its base network {record.get('id')} is not shipped and not found at "
                       f"{record.get('path')}")


def describe_network(spec: str | None) -> dict:
    """Architecture, sizes, conditioning and provenance of a network, as plain data."""
    net = load_network(spec)
    G = net.G_ema
    details = {
        "path": str(net.path),
        "architecture": net.arch,
        "resolution": getattr(G, "img_resolution", None),
        "channels": getattr(G, "img_channels", None),
        "z_dim": getattr(G, "z_dim", None),
        "w_dim": getattr(G, "w_dim", None),
        "num_ws": getattr(G, "num_ws", None),
        "conditioning": int(getattr(G, "c_dim", 0) or 0),
        "parameters": sum(p.numel() for p in G.parameters()),
        "settings": net.G_kwargs,
        "provenance": net.provenance,
    }
    if net.arch == "stylegan3":
        from facegen_cli.models.stylegan3 import config_name

        synthesis = G.synthesis
        details["config"] = config_name(net.G_kwargs)
        details["layers"] = {name: getattr(synthesis, name).out_channels for name in synthesis.layer_names}
    return details
