"""Encoder files: one safetensors file, no pickle.

Tensors: the encoder's state under `encoder.` (fp32 while training, fp16 to ship) and, in a training file, the
optimizer's under `optimizer.`. The header's metadata entry `facegen` is JSON: format and version, the encoder's
constructor kwargs (`kwargs`, part of the format: see `Encoder`), `network_id` (the network it belongs to; it
is refused for any other), `training` (kimg, seconds, options, the losses recorded along the way) and the
optimizer state's JSON side (None in a shipped file).
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from facegen_cli import __version__
from facegen_cli.checkpoint import SUFFIX, facegen_metadata, load_strict, pack_state, unpack_state
from facegen_cli.encoder.model import Encoder
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import atomic_path, refuse_special
from facegen_cli.networks import Network
from facegen_cli.paths import weights_dir

FORMAT = "facegen-encoder"
FORMAT_VERSION = 1
SHIPPED = "default"  # `--encoder default`: weights/encoders/<network id>.safetensors


@dataclass
class EncoderFile:
    """An encoder, the network it belongs to, how it was trained (and the optimizer state to go on)."""

    encoder: Encoder
    network_id: str
    training: dict = field(default_factory=dict)
    optimizer: dict | None = None
    path: Path | None = None


def save_encoder(path: str | os.PathLike, encoder: Encoder, network_id: str, training: dict,
                 optimizer: dict | None = None, half: bool = False) -> Path:
    """Write an encoder file atomically; `half` stores the encoder's floating tensors as fp16 (to ship)."""
    tensors = {}
    for name, t in encoder.state_dict().items():
        t = t.detach().cpu().clone(memory_format=torch.contiguous_format)
        tensors[f"encoder.{name}"] = t.half() if half and t.is_floating_point() else t
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "kwargs": encoder.kwargs,
              "network_id": network_id, "training": training,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "facegen_version": __version__,
              "optimizer": pack_state(optimizer, tensors, "optimizer") if optimizer is not None else None}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"facegen": json.dumps(header)})
    return path


def read_encoder_header(path: str | os.PathLike) -> dict:
    """The JSON header of an encoder file, without its tensors."""
    path = refuse_special(path, "an encoder file")
    if not path.is_file():
        raise BadInput(f"{path}: no such encoder file")
    try:
        header = facegen_metadata(path)
    except (OSError, ValueError):
        raise FacegenError(f"{path}: not a facegen encoder file") from None
    if header.get("format") != FORMAT:
        raise FacegenError(f"{path}: not a facegen encoder file")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise FacegenError(f"{path}: written by a newer facegen (encoder format {header['format_version']}); upgrade")
    return header


def load_encoder(path: str | os.PathLike, device: torch.device | str = "cpu") -> EncoderFile:
    """Read an encoder file: the encoder (fp32, eval mode, frozen), its network id, training record, optimizer."""
    path = Path(path)
    header = read_encoder_header(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise FacegenError(f"{path}: unreadable encoder file ({e})") from None
    try:
        encoder = Encoder(**header["kwargs"])
    except (TypeError, ValueError) as e:
        raise FacegenError(f"{path}: cannot build its encoder from the stored settings ({e})") from None
    state = {k[len("encoder."):]: v.float() for k, v in tensors.items() if k.startswith("encoder.")}
    load_strict(encoder, state, f"{path}: encoder", "its stored settings")
    optimizer = unpack_state(header["optimizer"], tensors) if header.get("optimizer") is not None else None
    return EncoderFile(encoder.to(device), header["network_id"], header.get("training") or {}, optimizer, path)


def check_network(found: EncoderFile, net: Network) -> EncoderFile:
    """`found` when it was trained for `net` (same network id, resolution and latent shape), else BadInput."""
    if found.network_id != net.network_id:
        raise BadInput(f"{found.path}: an encoder for network {found.network_id}, not for {net.path or net.arch} "
                       f"(network {net.network_id})")
    return check_sizes(found, net)


def check_sizes(found: EncoderFile, net: Network) -> EncoderFile:
    """`found` when its image and latent sizes are `net`'s (whichever network it was trained for), else BadInput."""
    G, e = net.G_ema, found.encoder
    if (e.img_resolution, e.img_channels, e.w_dim, e.num_ws) != (G.img_resolution, G.img_channels, G.w_dim,
                                                                 G.num_ws):
        raise BadInput(f"{found.path}: its image and latent sizes differ from {net.path or net.arch}'s")
    return found


def shipped_encoder_path(net: Network) -> Path:
    """Where the shipped encoder of `net` lives: weights/encoders/<network id>.safetensors."""
    return weights_dir() / "encoders" / f"{net.network_id}{SUFFIX}"


def find_encoder(spec: str | os.PathLike, net: Network) -> EncoderFile:
    """The encoder `spec` names for `net` (a file, or `default` for the shipped one), checked against `net`."""
    path = Path(spec)
    if str(spec) == SHIPPED and not path.exists():
        path = shipped_encoder_path(net)
        if not path.is_file():
            raise FacegenError(f"no encoder ships for network {net.network_id} (looked for {path})")
    return check_network(load_encoder(path, next(net.G_ema.parameters()).device), net)
