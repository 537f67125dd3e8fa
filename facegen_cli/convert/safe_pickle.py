"""A restricted unpickler for NVIDIA's network pickles that never runs code from the file.

NVIDIA's `torch_utils.persistence` pickles each network object as a call to
`_reconstruct_persistent_obj(meta)`, where `meta` carries the class name, the class's whole
source code (`module_src`) and the object's state. Their loader executes that source; we
keep only the class name and the state, and build our own modules from them. Every global
the pickle asks for must be on an allow-list of plain data constructors; anything else
(`os.system`, `builtins.eval`, an unknown class) stops the load with an error.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from facegen_cli.errors import FacegenError


@dataclass
class PersistentRecord:
    """What a pickled NVIDIA network object holds, without its code."""

    class_name: str
    state: dict = field(default_factory=dict)

    @property
    def children(self) -> dict[str, "PersistentRecord"]:
        return dict(self.state.get("_modules") or {})

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)


class PlainDict(dict):
    """Stands in for dnnlib.EasyDict: a dict and nothing more."""


def _reconstruct_persistent_obj(meta: dict) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise FacegenError("persistent object with an unknown layout")
    return PersistentRecord(class_name=str(meta.get("class_name")), state=dict(meta.get("state") or {}))


def _load_storage_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _rebuild_parameter(data: torch.Tensor, requires_grad: bool = False, backward_hooks: Any = None,
                       *state: Any) -> torch.Tensor:
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> torch.Tensor:
    if func not in (torch._utils._rebuild_tensor_v2, _rebuild_parameter):
        raise FacegenError("tensor rebuilt by an unexpected function")
    return func(*args)


_np_multiarray = getattr(np, "_core", np).multiarray

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): PlainDict,
    ("dnnlib", "EasyDict"): PlainDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "float32"): torch.float32,
    ("torch", "float16"): torch.float16,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _np_multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _np_multiarray.scalar,
    ("numpy.core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _np_multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; refuses everything else by name."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise FacegenError(f"refusing to load: the pickle asks for {module}.{name}, which could run code") from None

    def persistent_load(self, pid: Any) -> Any:
        raise FacegenError("refusing to load: the pickle uses persistent ids (a torch.save file, not a network pickle)")


def load_restricted(data: bytes) -> Any:
    """Unpickle `data` with the restricted unpickler."""
    try:
        return RestrictedUnpickler(io.BytesIO(data)).load()
    except FacegenError:
        raise
    except Exception as e:  # truncated or garbled pickles raise many types
        raise FacegenError(f"not a readable network pickle ({type(e).__name__}: {e})") from None


def flatten_state_dict(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Collect parameters and persistent buffers of a record tree under dotted names."""
    out: dict[str, torch.Tensor] = {}
    skip = set(record.attr("_non_persistent_buffers_set") or ())
    for kind in ("_parameters", "_buffers"):
        for name, value in (record.attr(kind) or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
    for name, child in record.children.items():
        if isinstance(child, PersistentRecord):
            out.update(flatten_state_dict(child, f"{prefix}{name}."))
    return out
