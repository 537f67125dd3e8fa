"""StyleGAN3 generators from NVIDIA's PyTorch pickles (stylegan3 `training/networks_stylegan3.py`).

The generator is rebuilt from the keyword arguments `training_loop.py` constructed it with
(its persistent record keeps them as `_init_kwargs`: plain numbers and dicts, read without
running anything); the parameters and buffers, Kaiser filters included, then load 1:1.
A StyleGAN3 snapshot's discriminator is `networks_stylegan2.Discriminator`, imported by
the StyleGAN2 importer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from facegen_cli.convert.nvidia_stylegan2 import load_exact
from facegen_cli.convert.safe_pickle import PersistentRecord, flatten_state_dict
from facegen_cli.errors import FacegenError
from facegen_cli.models.stylegan3 import Generator, kwargs_from_nvidia


def _plain(value: Any) -> Any:
    """Numpy scalars and dict subclasses (EasyDict) as plain Python values, fit for a JSON header."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def generator_kwargs(G: PersistentRecord, what: str) -> dict:
    """Our StyleGAN3 Generator kwargs for an NVIDIA `networks_stylegan3.Generator` record."""
    if G.name != "Generator":
        raise FacegenError(f"{what}: expected an NVIDIA Generator, found class {G.class_name!r}")
    init_kwargs = G.attr("_init_kwargs")
    if not isinstance(init_kwargs, dict) or G.attr("_init_args"):
        raise FacegenError(f"{what}: the StyleGAN3 generator does not record the settings it was built with")
    try:
        return kwargs_from_nvidia(_plain(init_kwargs))
    except ValueError as e:
        raise FacegenError(f"{what}: {e}") from None


def import_generator(G: PersistentRecord, what: str) -> tuple[dict, nn.Module]:
    """(kwargs, our StyleGAN3 Generator) for an NVIDIA StyleGAN3 generator record."""
    kwargs = generator_kwargs(G, what)
    try:
        module = Generator(**kwargs)
    except (TypeError, ValueError) as e:
        raise FacegenError(f"{what}: StyleGAN3 settings facegen cannot build ({e})") from None
    return kwargs, load_exact(module, flatten_state_dict(G), what, layout="StyleGAN3")
