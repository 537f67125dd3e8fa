"""Seed ranges ("0-99,120,200-205") and seed -> z exactly as NVIDIA's tools draw it."""
from __future__ import annotations

import numpy as np

from facegen_cli.errors import BadInput

MAX_SEED = 2 ** 32 - 1
MAX_SEEDS = 1_000_000  # more images than any command here draws in one run; a typo like 0-4294967295 stops here


def seed_ranges(spec: str) -> list[tuple[int, int]]:
    """The inclusive (first, last) ranges of a seed list, checked but not expanded."""
    if not spec or not spec.strip():
        raise BadInput("seed list is empty; give seeds like 0-99,120")
    ranges = []
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
        ranges.append((start, end))
    return ranges


def count_seeds(spec: str) -> int:
    """How many seeds `spec` names, without building the list."""
    return sum(end - start + 1 for start, end in seed_ranges(spec))


def parse_seeds(spec: str, limit: int = MAX_SEEDS, what: str = "--seeds") -> list[int]:
    """Parse a comma-separated list of seeds and inclusive ranges, keeping order; at most `limit` seeds."""
    ranges = seed_ranges(spec)
    count = sum(end - start + 1 for start, end in ranges)
    if count > limit:
        raise BadInput(f"{what} {spec!r} names {count} seeds; at most {limit} are taken here")
    return [seed for start, end in ranges for seed in range(start, end + 1)]


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """The latent NVIDIA's generate.py draws for `seed`: RandomState(seed).randn(z_dim)."""
    return np.random.RandomState(seed).randn(z_dim)
