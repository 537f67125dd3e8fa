"""facegen's checkpoint format: one safetensors file, no pickled code.

Tensors are stored under `G.`, `G_ema.`, `D.` and `state.` prefixes; everything else
(architecture name and kwargs, provenance, the JSON side of the training state) lives in
the safetensors header metadata as JSON. Loading never unpickles anything.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping, TypedDict

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from facegen_cli import __version__
from facegen_cli.errors import FacegenError
from facegen_cli.fileio import atomic_path, refuse_special
from facegen_cli.models.registry import get_architecture

FORMAT = "facegen-checkpoint"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
# A tuned file (pivotal tuning) holds only the parameters of G_ema's TUNED_PART, in fp16; its provenance's
# TUNED_FROM names the base network it applies to: {"id": its network id, "path": where it was}.
TUNED_FROM = "tuned_from"
TUNED_PART = "synthesis"


class NetworkParts(TypedDict):
    """What a network file holds, as the checkpoint reader and every importer return it (networks.Network wraps
    it with the file's path)."""

    arch: str
    G_kwargs: dict
    D_kwargs: dict
    G_ema: nn.Module
    G: nn.Module | None
    D: nn.Module | None
    provenance: dict
    training_state: dict | None


def pack_state(tree: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Replace every tensor in a nested dict/list with a reference, collecting it in `tensors`."""
    if isinstance(tree, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = tree.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(tree, dict):
        return {"__dict__": [[pack_state(k, tensors, f"{prefix}.k{i}"), pack_state(v, tensors, f"{prefix}.{i}")]
                             for i, (k, v) in enumerate(tree.items())]}
    if isinstance(tree, (list, tuple)):
        packed = [pack_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(tree)]
        return {"__tuple__": packed} if isinstance(tree, tuple) else packed
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if hasattr(tree, "item"):  # numpy scalars
        return tree.item()
    raise TypeError(f"cannot store {type(tree).__name__} in a checkpoint")


def unpack_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `pack_state`."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__tuple__" in tree:
            return tuple(unpack_state(v, tensors) for v in tree["__tuple__"])
        return {unpack_state(k, tensors): unpack_state(v, tensors) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [unpack_state(v, tensors) for v in tree]
    return tree


def save_checkpoint(path: str | os.PathLike, arch: str, G_kwargs: dict, G_ema: nn.Module, G: nn.Module | None = None,
                    D: nn.Module | None = None, D_kwargs: dict | None = None, provenance: dict | None = None,
                    training_state: dict | None = None, half: bool = False) -> Path:
    """Write a checkpoint atomically. `half` stores floating tensors as fp16 (for shipping)."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("G_ema", G_ema), ("G", G), ("D", D)):
        if module is None:
            continue
        for name, t in module.state_dict().items():
            # Written contiguous, whatever layout the module runs in (channels_last on a CPU).
            t = t.detach().cpu().clone(memory_format=torch.contiguous_format)
            tensors[f"{prefix}.{name}"] = t.half() if half and t.is_floating_point() else t
    state_json = pack_state(training_state, tensors, "state") if training_state is not None else None
    provenance = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "facegen_version": __version__, "id": weights_id(tensors, "G_ema."), **(provenance or {})}
    header = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch, "G_kwargs": G_kwargs,
        "D_kwargs": D_kwargs or {}, "provenance": provenance, "training_state": state_json,
        "modules": [p for p, m in (("G_ema", G_ema), ("G", G), ("D", D)) if m is not None],
    }
    return _write(path, tensors, header)


def _write(path: Path, tensors: dict[str, torch.Tensor], header: dict) -> Path:
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"facegen": json.dumps(header)})
    return path


def save_tuned(path: str | os.PathLike, arch: str, G_kwargs: dict, G_ema: nn.Module, provenance: dict) -> Path:
    """Write a tuned network as only the parameters of its G_ema's TUNED_PART in fp16 (buffers stay the base's),
    its provenance naming the base (TUNED_FROM)."""
    if TUNED_FROM not in provenance:
        raise ValueError("save_tuned takes a tuned network (its provenance names the base)")
    prefix = f"G_ema.{TUNED_PART}."
    tensors = {prefix + name: p.detach().cpu().half().clone(memory_format=torch.contiguous_format)
               for name, p in getattr(G_ema, TUNED_PART).named_parameters()}
    provenance = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  "facegen_version": __version__, **provenance, "id": weights_id(tensors, "G_ema.")}
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch, "G_kwargs": G_kwargs,
              "D_kwargs": {}, "provenance": provenance, "training_state": None, "modules": ["G_ema"]}
    return _write(Path(path), tensors, header)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, by name."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise FacegenError(f"{path}: unreadable checkpoint ({e})") from None


def weights_id(tensors: dict[str, torch.Tensor], prefix: str) -> str:
    """A short content hash of the tensors under `prefix`: the identity of a trained network."""
    digest = hashlib.sha256()
    for name in sorted(k for k in tensors if k.startswith(prefix)):
        digest.update(name.encode())
        digest.update(tensors[name].to(torch.float16).numpy().tobytes())
    return digest.hexdigest()[:16]


def facegen_metadata(path: str | os.PathLike) -> dict:
    """The `facegen` JSON object in a safetensors file's header metadata, read without the tensors: ValueError
    when the file holds none (FileNotFoundError and other OS errors pass through)."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size <= 0 or size > 100_000_000:
            raise ValueError("no safetensors header")
        try:
            header = json.loads(json.loads(f.read(size)).get("__metadata__", {})["facegen"])
        except (KeyError, UnicodeDecodeError, AttributeError, TypeError) as e:
            raise ValueError(f"no facegen header ({e})") from None
    if not isinstance(header, dict):
        raise ValueError("the facegen header is not an object")
    return header


def read_header(path: str | os.PathLike) -> dict:
    """The JSON header of a checkpoint, without loading its tensors."""
    path = refuse_special(path, "a checkpoint")
    try:
        header = facegen_metadata(path)
    except FileNotFoundError:
        raise FacegenError(f"{path}: no such file") from None
    except ValueError:
        raise FacegenError(f"{path}: not a facegen checkpoint (use `facegen convert` for NVIDIA or "
                           f"rosinality files)") from None
    if header.get("format") != FORMAT:
        raise FacegenError(f"{path}: not a facegen checkpoint")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise FacegenError(f"{path}: written by a newer facegen (format {header['format_version']}); upgrade")
    return header


def _first(items: list[str], shown: int = 3) -> str:
    """The first `shown` items, and how many more there are."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def load_strict(module: nn.Module, state: Mapping[str, Any], what: str, layout: str,
                keep_own: tuple[str, ...] = (), to_tensor: Callable[[Any], torch.Tensor] = torch.as_tensor,
                scale: Mapping[str, float] | None = None) -> nn.Module:
    """Copy `state` into `module`, requiring exactly its names and shapes; returns it in eval mode, frozen.

    A refusal is one FacegenError naming `what`, `layout` and the first offending names. Values are
    anything with a `.shape` that `to_tensor` makes a tensor (checked before any is read); entries
    whose names end with one of `keep_own` may be left out and keep the module's values; `scale`
    multiplies named entries.
    """
    own = module.state_dict()
    missing = sorted(k for k in own.keys() - state.keys() if not k.endswith(keep_own))
    unexpected = sorted(state.keys() - own.keys())
    reshaped = [f"{k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}" for k, v in state.items()
                if k in own and tuple(v.shape) != tuple(own[k].shape)]
    reasons = [f"missing {_first(missing)}"] if missing else []
    reasons += [f"unexpected {_first(unexpected)}"] if unexpected else []
    reasons += [_first(reshaped, shown=1)] if reshaped else []
    if reasons:
        raise FacegenError(f"{what} weights do not fit {layout} ({'; '.join(reasons)})")
    loaded = dict(own)
    for name, value in state.items():
        t = to_tensor(value).to(own[name].dtype)
        loaded[name] = t * scale[name] if scale and name in scale else t
    module.load_state_dict(loaded)
    return module.eval().requires_grad_(False)


def _build(arch_name: str, kwargs: dict, which: str, tensors: dict[str, torch.Tensor], path: Path) -> nn.Module:
    arch = get_architecture(arch_name)
    make = arch.make_G if which != "D" else arch.make_D
    try:
        module = make(**kwargs)
    except TypeError as e:
        raise FacegenError(f"{path}: cannot build {arch_name} {which} from its stored settings ({e})") from None
    prefix = f"{which}."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return load_strict(module, state, f"{path}: {which}", "the stored architecture")


def read_checkpoint(path: str | os.PathLike, modules: tuple[str, ...] = ("G_ema",),
                    with_training_state: bool = False) -> NetworkParts:
    """The parts of a checkpoint, on the CPU; `modules` picks which of G_ema, G, D to build."""
    path = Path(path)
    header = read_header(path)
    if TUNED_FROM in header["provenance"]:
        raise FacegenError(f"{path}: a tuned network, which needs its base network (load it by its path as a "
                           f"network, not as a checkpoint)")
    tensors = read_tensors(path)
    built = {}
    for which in modules:
        if which not in header["modules"]:
            if which == "G_ema":
                raise FacegenError(f"{path}: holds no G_ema")
            built[which] = None
            continue
        kwargs = header["D_kwargs"] if which == "D" else header["G_kwargs"]
        built[which] = _build(header["arch"], kwargs, which, tensors, path)
    state = None
    if with_training_state and header.get("training_state") is not None:
        state = unpack_state(header["training_state"], tensors)
    return NetworkParts(arch=header["arch"], G_kwargs=header["G_kwargs"], D_kwargs=header.get("D_kwargs", {}),
                        G_ema=built["G_ema"], G=built.get("G"), D=built.get("D"), provenance=header["provenance"],
                        training_state=state)
