"""What users type, parsed into typed values: seed lists, latent sources, W+ layer ranges, weights,
spans, grids, label vectors, `Name=value` attributes, translations.

Only the front ends (the CLI in `facegen_cli/cli/` and the studio's query fields) import this
module; the engine takes the typed values. Each parser takes the name of the parameter it fills
(`layers`) and refuses a bad value with a BadParameter starting with that name, which the CLI shows
as its own option and the studio as its field.
"""
from __future__ import annotations

import math
from pathlib import Path
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.seeds import MAX_SEED

MAX_SEEDS = 1_000_000  # more images than any command here draws in one run; a typo like 0-4294967295 stops here
MAX_SOURCES = 10_000  # latents one mix / interpolate / edit takes
SEED_PREFIX = "seed:"
LAYER_GROUP_NAMES = ("coarse", "middle", "fine")


def seed_ranges(spec: str) -> list[tuple[int, int]]:
    """The inclusive (first, last) ranges of a seed list like `0-99,120`, checked but not expanded."""
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


def parse_seeds(spec: str, limit: int = MAX_SEEDS, name: str = "seeds") -> list[int]:
    """A comma-separated list of seeds and inclusive ranges, in order; at most `limit` seeds."""
    ranges = seed_ranges(spec)
    count = sum(end - start + 1 for start, end in ranges)
    if count > limit:
        raise BadParameter(name, f"{name} {spec!r} names {count} seeds; at most {limit} are taken here")
    return [seed for start, end in ranges for seed in range(start, end + 1)]


def parse_sources(specs: list[str], limit: int = MAX_SOURCES) -> list[int | Path]:
    """`seed:0-2` -> seeds 0, 1, 2; anything else is a latent file. At most `limit` latents in all,
    counted before a seed range is expanded."""
    out: list[int | Path] = []
    for spec in specs:
        if spec.startswith(SEED_PREFIX):
            seeds = spec[len(SEED_PREFIX):]
            if len(out) + count_seeds(seeds) > limit:
                raise BadInput(f"{spec!r} names {count_seeds(seeds)} latents; at most {limit} are taken here")
            out.extend(parse_seeds(seeds))
        else:
            out.append(Path(spec))
        if len(out) > limit:
            raise BadInput(f"{len(out)} latents given; at most {limit} are taken here")
    return out


def parse_layers(spec: str, name: str = "layers") -> list[str | tuple[int, int | None]]:
    """`coarse|middle|fine` or index ranges like `0-3,8-` (8- runs to the last layer)."""
    parts: list[str | tuple[int, int | None]] = []
    for part in (p.strip() for p in spec.split(",")):
        if part in LAYER_GROUP_NAMES:
            parts.append(part)
            continue
        lo, sep, hi = part.partition("-")
        try:
            start = int(lo)
            end = (int(hi) if hi else None) if sep else start
        except ValueError:
            raise BadParameter(name, f"{name} {spec!r}: use coarse, middle, fine or ranges like 0-3,8-") from None
        parts.append((start, end))
    return parts


def parse_numbers(spec: str, name: str, example: str = "0.3,0.7") -> list[float]:
    """Comma-separated finite numbers."""
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError:
        raise BadParameter(name, f"{name} {spec!r}: give comma-separated numbers like {example}") from None
    if not all(math.isfinite(v) for v in values):
        raise BadParameter(name, f"{name} {spec!r}: give finite numbers")
    return values


def parse_span(spec: str, name: str = "span") -> tuple[float, float]:
    """`LOW:HIGH` as two finite numbers."""
    return _number_pair(spec, ":", name, "LOW:HIGH, e.g. -3:3")


def _number_pair(spec: str, sep: str, name: str, form: str) -> tuple[float, float]:
    """Two finite numbers separated by `sep`; the error shows the `form` expected."""
    try:
        first, second = (float(v) for v in spec.split(sep))
    except ValueError:
        raise BadParameter(name, f"{name} {spec!r}: write it as {form}") from None
    if not (math.isfinite(first) and math.isfinite(second)):
        raise BadParameter(name, f"{name} {spec!r}: give finite numbers")
    return first, second


def parse_grid(spec: str, name: str = "grid") -> tuple[int, int]:
    """`4x4` -> (4, 4)."""
    try:
        rows, cols = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise BadParameter(name, f"{name} must look like ROWSxCOLS (e.g. 4x4), got {spec!r}") from None
    if rows < 1 or cols < 1:
        raise BadParameter(name, f"{name} must have at least one row and one column, got {spec!r}")
    return rows, cols


def parse_label(spec: str, name: str = "label") -> list[float]:
    """A class index or one value per label, comma-separated."""
    return parse_numbers(spec, name, example="3 or 0,1,0.5")


def parse_attrs(spec: str, name: str = "attr") -> dict[str, float]:
    """`Male=1,Smiling=0.5` as names and finite values."""
    attrs = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise BadParameter(name, f"{name} {item!r}: write attributes as Name=value, e.g. Male=1,Smiling=1")
        if key.strip().lower() in {known.lower() for known in attrs}:
            raise BadParameter(name, f"{name} {key.strip()} is given twice")
        number = _finite_number(value)
        if number is None:
            raise BadParameter(name, f"{name} {key.strip()}={value.strip()!r}: give one finite number, e.g. "
                                     f"{key.strip()}=1")
        attrs[key.strip()] = number
    return attrs


def parse_attr_default(spec: str, name: str = "attr_default") -> float | str:
    """`mean` (each attribute's frequency in the data) or a number."""
    if spec.strip() == "mean":
        return "mean"
    value = _finite_number(spec)
    if value is None:
        raise BadParameter(name, f"{name} {spec!r} is neither `mean` nor a number")
    return value


def _finite_number(text: str) -> float | None:
    """`text` as a finite number, or None where it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_translate(spec: str, name: str = "translate") -> tuple[float, float]:
    """`X,Y` (fractions of the image size) as two finite numbers."""
    return _number_pair(spec, ",", name, "X,Y (two numbers, fractions of the image size)")
