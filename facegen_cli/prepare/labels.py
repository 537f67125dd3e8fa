"""Per-photo labels: CelebA's list_attr_celeba.txt, UTKFace file names, or a CSV `file,label...`."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from facegen_cli.errors import BadInput
from facegen_cli.fileio import refuse_special

Label = list[float] | int
UTKFACE = "utkface"
UTKFACE_NAMES = ("age", "gender", "race")
_UTKFACE_NAME = re.compile(r"^(\d+)_([01])_([0-4])_")


@dataclass
class Labels:
    """Labels keyed by a photo's path relative to the raw folder, or by its file name."""

    names: list[str]
    table: dict[str, Label] = field(default_factory=dict)
    from_file_name: bool = False  # UTKFace: the label is parsed from the name itself

    def lookup(self, rel_path: str) -> Label | None:
        """The label of a photo, or None when it has none."""
        name = PurePosixPath(rel_path).name
        if self.from_file_name:
            match = _UTKFACE_NAME.match(name)
            return [int(match[1 + UTKFACE_NAMES.index(n)]) for n in self.names] if match else None
        return self.table.get(rel_path, self.table.get(name))


def _select(path: str, names: list[str], attrs: list[str] | None) -> list[int]:
    """Column indices of the requested attributes (all when none are requested)."""
    if not attrs:
        return list(range(len(names)))
    lower = {n.lower(): i for i, n in enumerate(names)}
    missing = [a for a in attrs if a.lower() not in lower]
    if missing:
        raise BadInput(f"{path}: no attribute {missing[0]!r} (has: {', '.join(names)})")
    return [lower[a.lower()] for a in attrs]


def _celeba(path: Path, lines: list[str], attrs: list[str] | None) -> Labels:
    """CelebA's attribute list (with or without its count line); -1/1 become 0/1."""
    if lines[0].strip().isdigit():
        lines = lines[1:]
    names = lines[0].split()
    cols = _select(str(path), names, attrs)
    table: dict[str, Label] = {}
    for number, line in enumerate(lines[1:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1 or any(v not in ("-1", "1", "0") for v in parts[1:]):
            raise BadInput(f"{path}: line {number} is not `file` and {len(names)} values of -1/1")
        table[parts[0]] = [1 if parts[1 + c] == "1" else 0 for c in cols]
    return Labels([names[c] for c in cols], table)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and "." not in text else value


def _csv(path: Path, text: str, attrs: list[str] | None) -> Labels:
    """A CSV with a header `file,name...`; one integer column is a class, else a list of floats.

    A row with an empty cell in a chosen column gives its photo no label.
    """
    rows = [r for r in csv.reader(text.splitlines()) if r]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise BadInput(f"{path}: expected a header `file,label...` and one row per photo")
    names = [n.strip() for n in rows[0][1:]]
    cols = _select(str(path), names, attrs)
    table: dict[str, list[int | float]] = {}
    for number, row in enumerate(rows[1:], start=2):
        cells = [row[1 + c].strip() if 1 + c < len(row) else "" for c in cols]
        if "" in cells:  # a photo with a missing value has no label and will be skipped
            continue
        try:
            table[row[0].strip()] = [_number(cell) for cell in cells]
        except ValueError:
            raise BadInput(f"{path}: line {number} has a label that is not a number") from None
    if len(cols) == 1 and all(isinstance(v[0], int) for v in table.values()):
        return Labels([names[cols[0]]], {k: v[0] for k, v in table.items()})
    return Labels([names[c] for c in cols], {k: [float(x) for x in v] for k, v in table.items()})


def load_labels(spec: str, attrs: list[str] | None = None) -> Labels:
    """Read labels from `utkface` (file names), a CelebA attribute list, or a CSV file."""
    if spec == UTKFACE:
        return Labels([UTKFACE_NAMES[i] for i in _select(UTKFACE, list(UTKFACE_NAMES), attrs)], from_file_name=True)
    path = refuse_special(spec, "a labels file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise BadInput(f"{path}: cannot read labels ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: labels must be a text file (CelebA attribute list or CSV)") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise BadInput(f"{path}: labels file is empty")
    header = lines[1] if lines[0].strip().isdigit() and len(lines) > 1 else lines[0]
    if "," not in header and len(header.split()) > 1:
        return _celeba(path, lines, attrs)
    return _csv(path, text, attrs)
