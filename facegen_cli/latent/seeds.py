"""Seed ranges ("0-99,120,200-205") and seed -> z exactly as NVIDIA's tools draw it."""
from __future__ import annotations

import numpy as np

from facegen_cli.errors import BadInput

MAX_SEED = 2 ** 32 - 1


def parse_seeds(spec: str) -> list[int]:
    """Parse a comma-separated list of seeds and inclusive ranges, keeping order."""
    if not spec or not spec.strip():
        raise BadInput("seed list is empty; give seeds like 0-99,120")
    seeds: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            start = int(lo)
            end = int(hi) if sep else start
        except ValueError:
            raise BadInput(f"malformed seed {part!r} in {spec!r}; use N or A-B with whole numbers") from None
        if end < start:
            raise BadInput(f"seed range {part!r} runs backwards; write it as {end}-{start}")
        if start < 0 or end > MAX_SEED:
            raise BadInput(f"seed {part!r} is outside 0-{MAX_SEED}")
        seeds.extend(range(start, end + 1))
    return seeds


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent NVIDIA's generate.py draws for `seed`: RandomState(seed).randn(z_dim)."""
    return np.random.RandomState(seed).randn(z_dim)
