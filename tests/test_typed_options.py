"""Every value is checked once: the CLI parses options into typed values and leaves every check the engine makes
to the engine (its BadParameter shown with the command's flag), and what needs no network is checked before one
loads. A check written in both places drifts: the two messages and bounds come apart."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadParameter
from facegen_cli.latent.directions import strengths_of
from facegen_cli.latent.interpolate import check_keyframes
from facegen_cli.sampler import SampleOptions

PACKAGE = Path(__file__).parents[1] / "facegen_cli"
FRONT_ENDS = {"cli", "studio"}
PARSING = {"specs.py"}  # the text parsers the front ends share: syntax, not the engine's bounds

# `out` is probed by the CLI for writability before any work (fileio.check_writable) while the engine checks
# what kind of output it is: two properties, not one check twice.
DIFFERENT_CHECKS = {"out"}


def engine_checked() -> set[str]:
    """Every parameter name an engine module raises a BadParameter for, or bounds in a `Bounds` table."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] in FRONT_ENDS or rel.as_posix() in PARSING:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "BadParameter" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
            if (isinstance(node, ast.AnnAssign) and getattr(node.annotation, "id", None) == "Bounds"
                    and isinstance(node.value, ast.Dict)):
                names.update(key.value for key in node.value.keys)
    assert {"psi", "cutoff", "noise_mode", "batch", "frames", "steps", "grid", "res", "workers", "beta"} <= names
    return names


def commands(group=app, prefix: str = ""):
    """(name, callback) of every registered command, subcommands as `group name`."""
    for info in group.registered_commands:
        yield prefix + (info.name or info.callback.__name__), info.callback
    for sub in group.registered_groups:
        yield from commands(sub.typer_instance, f"{prefix}{sub.name} ")


def test_no_option_bounds_a_value_the_engine_checks() -> None:
    checked = engine_checked() - DIFFERENT_CHECKS
    found = []
    for name, fn in commands():
        for param, info in inspect.signature(fn).parameters.items():
            bounds = [k for k in ("min", "max", "callback") if getattr(info.default, k, None) is not None]
            if bounds and param in checked:
                found.append(f"{name} {param}: {', '.join(bounds)}")
    assert not found, "options bounded in the CLI and checked again by the engine:\n" + "\n".join(found)


def test_the_cli_calls_no_engine_check() -> None:
    found = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        engine = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and (node.module or "").startswith("facegen_cli.") and not node.module.startswith("facegen_cli.cli")
                  and node.module != "facegen_cli.specs" for a in node.names}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in engine:
                called = node.func.id
                if called.startswith("check_") and called != "check_writable":
                    found.append(f"cli/{path.name}:{node.lineno}: {called}")
    assert not found, "the CLI repeats an engine check (leave it to the engine):\n" + "\n".join(found)


def engine_message(check, flag: str) -> str:
    """The engine's own refusal, as the CLI shows it: with `flag` in the parameter's place."""
    with pytest.raises(BadParameter) as refused:
        check()
    return f"facegen: error: {refused.value.naming(flag)}"


NO_NETWORK = "/nonexistent/net.safetensors"  # an option error must come first: it needs no network


@pytest.mark.parametrize("command", [["generate", "-s", "0"], ["mix", "seed:0", "seed:1"],
                                     ["interpolate", "seed:0", "seed:1"], ["edit", "seed:0", "-d", "x",
                                                                           "--strength", "1"]])
@pytest.mark.parametrize("flag,value,options", [("--psi", "3", dict(psi=3.0)), ("--cutoff", "-1", dict(cutoff=-1)),
                                                ("--batch", "0", dict(batch=0)),
                                                ("--noise-mode", "loud", dict(noise_mode="loud")),
                                                ("--precision", "fp8", dict(precision="fp8"))])
def test_drawing_options_are_refused_by_the_engine_before_a_network_loads(command, flag, value, options,
                                                                           tmp_path) -> None:
    result = CliRunner().invoke(app, [*command, flag, value, "-n", NO_NETWORK, "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [engine_message(lambda: SampleOptions(**options), flag)]


def test_interpolate_and_edit_bounds_are_the_engines(tiny_net, tmp_path) -> None:
    net = str(tiny_net.path)
    for args, check, flag in (
            (["interpolate", "seed:0", "seed:1", "--frames", "1"], lambda: check_keyframes(2, 1, False), "--frames"),
            (["interpolate", "seed:0", "seed:1", "--frames", "10001"], lambda: check_keyframes(2, 10001, False),
             "--frames"),
            (["edit", "seed:0", "-d", "x", "--range", "-1:1", "--steps", "1"],
             lambda: strengths_of(None, (-1.0, 1.0), 1), "--steps")):
        result = CliRunner().invoke(app, [*args, "-n", net, "-o", str(tmp_path / "out.gif")])
        assert result.exit_code == 2 and result.stderr.splitlines() == [engine_message(check, flag)], result.stderr


def test_a_grid_that_does_not_fit_is_refused_once_by_the_engine(tiny_net, tmp_path) -> None:
    result = CliRunner().invoke(app, ["generate", "-s", "0-4", "--grid", "2x2", "-n", str(tiny_net.path),
                                      "-o", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr == "facegen: error: --grid 2x2 does not fit 5 seeds\n"
    assert not list(tmp_path.iterdir())


def test_typed_options_reach_the_command_parsed(tiny_net, tmp_path, monkeypatch) -> None:
    from facegen_cli import api

    seen = {}
    monkeypatch.setattr(api, "edit", lambda source, direction, out, network, options, **kw: seen.update(
        source=source, options=options, **kw) or [])
    result = CliRunner().invoke(app, ["edit", "seed:4", "-d", "x", "--range", "-2:3", "--layers", "coarse,8-",
                                      "--conditional", "Male, Smiling", "--psi", "0.5", "-n", str(tiny_net.path),
                                      "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["source"] == 4 and seen["span"] == (-2.0, 3.0) and seen["layers"] == ["coarse", (8, None)]
    assert seen["conditional"] == ["Male", "Smiling"]
    assert seen["options"] == SampleOptions(psi=0.5)
