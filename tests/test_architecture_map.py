"""docs/ARCHITECTURE.md is the map of the code: every package and module appears in it, and everything it
names (files, functions, classes) exists."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "facegen_cli"
MAP = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
SKIP_MODULES = {"__init__", "__main__"}
# NVIDIA's files, which the map names where facegen's code follows their layout
FOREIGN = {"gen_images.py", "legacy.py", "training/networks_stylegan3.py"}


def tree_blocks() -> dict[str, str]:
    """The map's tree (its first code block), split into the text of each top-level entry."""
    tree = MAP.split("```")[1]
    blocks: dict[str, str] = {}
    name = ""
    for line in tree.splitlines()[1:]:
        entry = re.match(r"^(?:  )?(\S+)", line)
        if entry:
            name = entry.group(1)
        blocks[name] = blocks.get(name, "") + line + "\n"
    return blocks


def modules() -> list[Path]:
    return sorted(p.relative_to(PACKAGE) for p in PACKAGE.rglob("*.py")
                  if p.stem not in SKIP_MODULES and "static" not in p.parts)


def packages() -> list[Path]:
    return sorted(p.parent.relative_to(PACKAGE) for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)


def test_every_package_and_module_is_on_the_map():
    blocks = tree_blocks()
    missing = []
    for package in packages():
        if f"{package.parts[0]}/" not in blocks:
            missing.append(f"{package}/")
    for module in modules():
        block = blocks.get(f"{module.parts[0]}/" if len(module.parts) > 1 else module.name, "")
        if not re.search(rf"\b{re.escape(module.stem)}\b", block):
            missing.append(str(module))
    assert not missing, f"docs/ARCHITECTURE.md's tree does not mention: {', '.join(missing)}"


def source_words() -> set[str]:
    words: set[str] = set()
    for root in (PACKAGE, REPO / "tests", REPO / "tools"):
        for path in root.rglob("*.py"):
            words.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", path.read_text(encoding="utf-8")))
    return words


def test_every_named_file_and_function_exists():
    words = source_words()
    absent = []
    for span in set(re.findall(r"`([^`\n]+)`", MAP)):
        name = span.split("(")[0]
        if re.fullmatch(r"[\w./-]+\.py|[\w-]+(/[\w.-]+)+/?", name):
            if name not in FOREIGN and not any((base / name).exists() for base in (REPO, PACKAGE)):
                absent.append(name)
        elif re.fullmatch(r"[A-Za-z_]\w*(\.\w+)*", name) and ("_" in name or "." in name or name[:1].isupper()):
            if not all(part in words for part in name.split(".") if part):
                absent.append(name)
    for entry, block in tree_blocks().items():
        folder = REPO / entry if (REPO / entry).is_dir() else PACKAGE
        for file in re.findall(r"\b([\w]+\.py)\b", block):
            if file not in FOREIGN and not list(folder.rglob(file)):
                absent.append(file)
    assert not absent, f"docs/ARCHITECTURE.md names what the code does not have: {', '.join(sorted(absent))}"
