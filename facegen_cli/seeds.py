"""The one range of seeds: NVIDIA's seed -> z (numpy's RandomState) takes 0 .. MAX_SEED, and every seed a user
gives, typed or passed in Python, is checked against it here."""
from __future__ import annotations

from typing import Sequence

from facegen_cli.errors import BadParameter

MAX_SEED = 2 ** 32 - 1


def check_seed(seed: int, param: str = "seeds") -> int:
    """`seed` when NVIDIA's seed -> z takes it (0 .. MAX_SEED), else a BadParameter naming `param`."""
    if not 0 <= seed <= MAX_SEED:
        raise BadParameter(param, f"{param} {seed} is outside 0-{MAX_SEED}")
    return seed


def check_seeds(seeds: Sequence[int], param: str = "seeds") -> list[int]:
    """`seeds` as a list when every one lies in 0 .. MAX_SEED (checked before any is drawn)."""
    seeds = list(seeds)
    if seeds:
        check_seed(min(seeds), param)
        check_seed(max(seeds), param)
    return seeds
