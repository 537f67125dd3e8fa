"""A restricted unpickler for NVIDIA's network pickles that never runs code from the file.

NVIDIA's `torch_utils.persistence` pickles each network object as a call to
`_reconstruct_persistent_obj(meta)`, where `meta` carries the bare class name, the source
text of the module that defined the class (`module_src`) and the object's `__dict__`.
Their loader executes that source; we keep the class name, the source as plain text and
the state, and build our own modules from them. TensorFlow-era pickles hold
`dnnlib.tflib.network.Network` objects whose state is a dict of kwargs and numpy arrays.

Every global the pickle asks for must be on an allow-list of plain data constructors;
anything else (`os.system`, `builtins.eval`, an unknown class) stops the load. Tensors are
kept as references into the pickle and only decoded when a network is actually built.
"""
from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from facegen_cli.errors import FacegenError


@dataclass
class PersistentRecord:
    """What a pickled NVIDIA network object holds, without its code."""

    class_name: str
    state: dict = field(default_factory=dict)
    module_src: str = ""

    @property
    def name(self) -> str:
        """The bare class name (NVIDIA writes `Generator`; dotted names are tolerated)."""
        return self.class_name.rsplit(".", 1)[-1]

    @property
    def children(self) -> dict[str, "PersistentRecord"]:
        return {k: v for k, v in (self.state.get("_modules") or {}).items() if isinstance(v, PersistentRecord)}

    def attr(self, name: str, default: Any = None) -> Any:
        return self.state.get(name, default)


class TFNetworkRecord:
    """Stands in for `dnnlib.tflib.network.Network`: keeps the pickled state, builds no graph."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise FacegenError("TensorFlow network with an unknown layout")
        self.state = state

    @property
    def name(self) -> str:
        return str(self.state.get("name", ""))

    @property
    def static_kwargs(self) -> dict:
        return dict(self.state.get("static_kwargs") or {})

    @property
    def components(self) -> dict[str, "TFNetworkRecord"]:
        return {k: v for k, v in (self.state.get("components") or {}).items() if isinstance(v, TFNetworkRecord)}

    def variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """All variables of this network and its components, by TF name (`mapping/Dense0/weight`)."""
        out = {prefix + str(name): value for name, value in self.state.get("variables") or []}
        for name, comp in self.components.items():
            out.update(comp.variables(f"{prefix}{name}/"))
        return out


class PlainDict(dict):
    """Stands in for dnnlib.EasyDict: a dict and nothing more."""


class StorageBlob:
    """A tensor storage as torch serialised it inside the pickle, decoded on first use."""

    def __init__(self, data: bytes):
        self.data = data
        self._storage: Any = None

    def load(self) -> Any:
        if self._storage is None:
            try:
                self._storage = torch.load(io.BytesIO(self.data), weights_only=True)
            except Exception as e:  # torch raises many types for damaged blobs
                raise FacegenError(f"a tensor in the pickle cannot be read ({str(e).splitlines()[0]})") from None
        return self._storage


class TensorRef:
    """A tensor of the pickle: shape known at once, values decoded by `load()`."""

    def __init__(self, blob: StorageBlob, offset: int, size: tuple, stride: tuple):
        self.blob, self.offset, self.size, self.stride = blob, offset, tuple(size), tuple(stride)

    @property
    def shape(self) -> torch.Size:
        return torch.Size(self.size)

    def load(self) -> torch.Tensor:
        return torch._utils._rebuild_tensor_v2(self.blob.load(), self.offset, self.size, self.stride, False,
                                               collections.OrderedDict())


def as_tensor(value: Any) -> torch.Tensor:
    """A real tensor for a TensorRef, numpy array or tensor found in a pickle."""
    if isinstance(value, TensorRef):
        return value.load()
    if isinstance(value, (np.ndarray, np.generic)):  # TF stores 0-d variables as numpy scalars
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        return value
    raise FacegenError(f"expected a tensor in the pickle, found {type(value).__name__}")


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("state"), dict):
        raise FacegenError("persistent object with an unknown layout")
    src = meta.get("module_src")
    return PersistentRecord(class_name=str(meta.get("class_name")), state=dict(meta["state"]),
                            module_src=src if isinstance(src, str) else "")


def _rebuild_tensor(storage: Any, offset: int, size: tuple, stride: tuple, *rest: Any) -> Any:
    if not isinstance(storage, StorageBlob):
        raise FacegenError("tensor without a readable storage")
    return TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: bool = False, backward_hooks: Any = None, *state: Any) -> Any:
    return data


def _rebuild_from_type(func: Any, new_type: Any, args: tuple, state: Any) -> Any:
    if func not in (_rebuild_tensor, _rebuild_parameter):
        raise FacegenError("tensor rebuilt by an unexpected function")
    return func(*args)


_np_multiarray = getattr(np, "_core", np).multiarray

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.tflib.network", "Network"): TFNetworkRecord,
    ("dnnlib.util", "EasyDict"): PlainDict,
    ("dnnlib", "EasyDict"): PlainDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch.storage", "_load_from_bytes"): StorageBlob,
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


def load_restricted(source: bytes | Path) -> Any:
    """Unpickle `source` (bytes, or a file read as a stream) with the restricted unpickler."""
    try:
        if isinstance(source, Path):
            with open(source, "rb") as f:
                return RestrictedUnpickler(f).load()
        return RestrictedUnpickler(io.BytesIO(source)).load()
    except FacegenError:
        raise
    except Exception as e:  # truncated or garbled pickles raise many types
        raise FacegenError(f"not a readable network pickle ({type(e).__name__}: {e})") from None


def flatten_state_dict(record: PersistentRecord, prefix: str = "") -> dict[str, Any]:
    """Parameters and persistent buffers of a record tree under dotted names (TensorRefs, not loaded)."""
    out: dict[str, Any] = {}
    skip = set(record.attr("_non_persistent_buffers_set") or ())
    for kind in ("_parameters", "_buffers"):
        for name, value in (record.attr(kind) or {}).items():
            if value is not None and name not in skip:
                out[prefix + name] = value
    for name, child in record.children.items():
        out.update(flatten_state_dict(child, f"{prefix}{name}."))
    return out
