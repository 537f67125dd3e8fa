"""The dependency rules of docs/ARCHITECTURE.md, read from the source: every import (module-level or
inside a function) of one facegen_cli package names only packages below it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "facegen_cli"
ARCHITECTURE = Path(__file__).parents[1] / "docs" / "ARCHITECTURE.md"

# Lowest first; a package may import only packages on earlier lines (and itself).
LAYERS = [
    ["errors", "__version__"],
    ["seeds"],
    ["fileio", "devices", "specs", "precision"],
    ["paths", "images"],
    ["ops", "video"],
    ["models"],
    ["checkpoint"],
    ["convert"],
    ["networks", "data"],
    ["prepare", "classifier"],
    ["sampler"],
    ["metrics"],
    ["latent"],
    ["estimators", "encoder"],
    ["generate", "train", "controls"],
    ["studio", "api"],
    ["cli"],
]
FRONT_ENDS = {"cli", "studio"}  # only these parse what users type (specs) or draw on a terminal (rich, typer)
FRONT_END_ONLY = {"facegen_cli.specs", "rich", "typer"}


def _level(unit: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if unit in names)


def _unit(path: Path) -> str:
    """The package (or top-level module) a source file belongs to."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every import in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "facegen_cli" else [node.module]
            found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return found


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_package_has_a_layer():
    units = {_unit(p) for p in _sources()} - {"__init__", "__main__"}
    assert units <= {u for names in LAYERS for u in names}, units - {u for names in LAYERS for u in names}


def test_no_package_imports_one_above_it():
    violations = []
    for path in _sources():
        unit = _unit(path)
        if unit in ("__init__", "__main__"):
            continue
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "facegen_cli" or len(parts) < 2 or parts[1] == unit:
                continue
            if _level(parts[1]) >= _level(unit):
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} {unit} imports {module}")
    assert not violations, "\n".join(violations)


def test_only_the_front_ends_parse_text_or_draw_on_the_terminal():
    violations = []
    for path in _sources():
        if _unit(path) in FRONT_ENDS:
            continue
        for line, module in _imports(path):
            if any(module == banned or module.startswith(banned + ".") for banned in FRONT_END_ONLY):
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_the_rules_are_written_down_as_the_test_holds_them():
    """ARCHITECTURE.md lists the same layers, lowest first, one line each."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text.split("## Dependency rules", 1)[1]
    written = [re.findall(r"`([\w_]+)`", line) for line in block.splitlines() if re.match(r"\s*\d+\.", line)]
    assert written == LAYERS
