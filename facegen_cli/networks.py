"""Find and load a network by path or name: our checkpoints, NVIDIA pickles, rosinality files,
NVIDIA's published StyleGAN2 networks (downloaded once into the cache) and the shipped models."""
from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import torch

from facegen_cli.checkpoint import SUFFIX, Network, load_checkpoint
from facegen_cli.errors import BadInput, FacegenError
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
DEFAULT_NETWORK = "default"
DOWNLOAD_TIMEOUT_S = 15
# torch.save's pre-1.6 (non-zip) format opens with this pickled magic number, not a network pickle.
TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19."


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
    """The file a `--network` value names, downloading a published network on first use."""
    spec = spec or DEFAULT_NETWORK
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
        raise FacegenError(f"no default model in {weights_dir()}; pass --network PATH or a published name")
    names = sorted(set(shipped) | set(PUBLISHED))
    raise BadInput(f"{spec}: no such network file or name (names: {', '.join(names)})")


def sniff_format(path: Path) -> str:
    """'facegen', 'nvidia-pickle' or 'rosinality' from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) >= 9 and head[8:9] == b"{":
        return "facegen"
    if head[:2] == b"PK" or head.startswith(TORCH_LEGACY_MAGIC):
        return "rosinality"
    if head[:1] == b"\x80":
        return "nvidia-pickle"
    raise FacegenError(f"{path}: not a network file facegen can read (facegen .safetensors, NVIDIA .pkl, "
                       f"rosinality .pt)")


def import_foreign(path: Path, modules: tuple[str, ...] = ("G_ema", "G", "D")) -> Network:
    """Load an NVIDIA pickle or rosinality checkpoint as a Network (weights only, no code run).

    Only the networks named in `modules` are built (G_ema always is).
    """
    fmt = sniff_format(path)
    if fmt == "facegen":
        raise FacegenError(f"{path}: already a facegen checkpoint")
    if fmt == "nvidia-pickle":
        from facegen_cli.convert.nvidia import import_nvidia_pickle
        data = import_nvidia_pickle(path, modules)
    else:
        from facegen_cli.convert.rosinality import import_rosinality
        data = import_rosinality(path, modules)
    return Network(arch=data.get("arch", "stylegan2"), G_kwargs=data["G_kwargs"], D_kwargs=data["D_kwargs"],
                   G_ema=data["G_ema"], G=data["G"], D=data["D"], provenance=data["provenance"], path=path)


def load_network(spec: str | None, device: torch.device | str = "cpu", modules: tuple[str, ...] = ("G_ema",)) -> Network:
    """Load whatever `spec` names onto `device`, ready for inference."""
    path = resolve_network(spec)
    if sniff_format(path) == "facegen":
        return load_checkpoint(path, device=device, modules=modules)
    net = import_foreign(path, modules)
    for name in ("G_ema", "G", "D"):
        module = getattr(net, name)
        if module is not None:
            setattr(net, name, module.to(device) if name in modules else None)
    return net


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
    return details
