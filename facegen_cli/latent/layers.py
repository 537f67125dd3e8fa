"""W+ layers by the resolution they style: the coarse / middle / fine groups, and index ranges."""
from __future__ import annotations

import math
from typing import Sequence, Union

import torch

from facegen_cli.errors import BadParameter

LAYER_GROUPS = {"coarse": (4, 8), "middle": (16, 32), "fine": (64, 1 << 30)}  # resolutions each group styles
LayerPart = Union[str, tuple[int, Union[int, None]]]  # a group name, or an inclusive index range (open end: None)


def layer_resolution(index: int) -> int:
    """The resolution a StyleGAN2 W+ entry styles, counted the way the StyleGAN paper does (two per resolution)."""
    return 4 * 2 ** (index // 2)


def w_resolutions(G: torch.nn.Module | int) -> list[int]:
    """The resolution each W+ entry of generator G styles, which names the coarse / middle / fine groups.

    StyleGAN2 (or a bare W+ length): two entries per resolution. StyleGAN3's layers all sample above their content, so
    an entry counts at the finest power of two its layer's band reaches (2 x its cutoff): entry 0
    (the Fourier input) and entry k (layer k-1) rise geometrically from 4 to the image size, the
    critically sampled layers and ToRGB at the image size."""
    if isinstance(G, int):
        return [layer_resolution(i) for i in range(G)]
    synthesis = G.synthesis
    if not hasattr(synthesis, "layer_names"):
        return [layer_resolution(i) for i in range(G.num_ws)]
    layers = [getattr(synthesis, name) for name in synthesis.layer_names]
    rising = sum(not layer.is_critically_sampled for layer in layers)
    first, last = float(synthesis.input.bandwidth), G.img_resolution / 2
    cutoffs = [first * (last / first) ** min(max(k - 1, 0) / rising, 1) for k in range(G.num_ws)]
    return [2 ** int(math.floor(math.log2(2 * c) + 1e-6)) for c in cutoffs]


def resolve_layers(G: torch.nn.Module | int, parts: Sequence[LayerPart]) -> list[int]:
    """Sorted W+ indices of generator G for group names and inclusive index ranges (an open end runs to the last)."""
    resolutions = w_resolutions(G)
    num_ws = len(resolutions)
    chosen: set[int] = set()
    for part in parts:
        if isinstance(part, str):
            if part not in LAYER_GROUPS:
                raise BadParameter("layers", f"layers: {part!r} is not one of {', '.join(LAYER_GROUPS)}")
            lo, hi = LAYER_GROUPS[part]
            found = {i for i in range(num_ws) if lo <= resolutions[i] <= hi}
            if not found:
                raise BadParameter("layers", f"layers: this model ({num_ws} layers, up to {resolutions[-1]}px) has "
                                             f"no {part} layers")
            chosen |= found
            continue
        start, end = part
        end = num_ws - 1 if end is None else end
        if not 0 <= start <= end < num_ws:
            shown = f"{start}-{end}" if end != start else f"{start}"
            raise BadParameter("layers", f"layers {shown!r} is outside 0-{num_ws - 1} for this model")
        chosen |= set(range(start, end + 1))
    return sorted(chosen)
