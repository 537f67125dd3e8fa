"""facegen_cli.api: the functions the commands call give the same files the commands write, check their options
before a network loads, and report progress."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facegen_cli import api
from facegen_cli.cli.main import app
from facegen_cli.errors import BadParameter
from facegen_cli.latent.directions import Direction, save_direction
from facegen_cli.latent.tuning import TuneOptions
from facegen_cli.sampler import SampleOptions


def _cli(*args) -> list[str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_generate_writes_what_the_command_writes_and_reports_progress(tiny_net, tmp_path) -> None:
    seen = []
    records = list(api.generate([3, 4, 5], tmp_path / "api", tiny_net, SampleOptions(psi=0.6),
                                save_latents=True, on_progress=lambda done, total: seen.append((done, total))))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert [r["seed"] for r in records] == [3, 4, 5] and all(r["psi"] == 0.6 for r in records)
    paths = _cli("generate", "-n", tiny_net.path, "-s", "3-5", "--psi", "0.6", "-o", tmp_path / "cli")
    for record, path in zip(records, paths):
        assert np.array_equal(_pixels(record["path"]), _pixels(path))
        assert np.load(record["latent"]).shape == (tiny_net.G_ema.num_ws, tiny_net.G_ema.w_dim)


def test_mix_interpolate_and_edit_match_the_commands(tiny_net, tmp_path) -> None:
    net, look = tiny_net, SampleOptions(psi=0.7)
    (mixed,) = api.mix([1], [2], tmp_path / "api", net, look, layers=["middle"])
    (cli_mixed,) = _cli("mix", "seed:1", "seed:2", "--layers", "middle", "--psi", "0.7", "-n", net.path,
                        "-o", tmp_path / "cli")
    assert np.array_equal(_pixels(mixed), _pixels(cli_mixed))
    (strip,) = api.interpolate([1, 2, 3], tmp_path / "api.png", net, frames=5)
    (cli_strip,) = _cli("interpolate", "seed:1-3", "--frames", "5", "-n", net.path, "-o", tmp_path / "cli.png")
    assert np.array_equal(_pixels(strip), _pixels(cli_strip))
    vector = np.random.RandomState(0).randn(net.G_ema.w_dim).astype(np.float32)
    direction = save_direction(Direction("probe", vector / np.linalg.norm(vector), net.network_id, [0, 1], {}),
                               tmp_path / "directions")
    edited = api.edit(2, str(direction), tmp_path / "api-edit", net, look, span=(-2, 2), steps=3)
    cli_edited = _cli("edit", "seed:2", "-d", direction, "--range", "-2:2", "--steps", "3", "--psi", "0.7",
                      "-n", net.path, "-o", tmp_path / "cli-edit")
    assert len(edited) == 1 and np.array_equal(_pixels(edited[0]), _pixels(cli_edited[0]))


def test_options_are_checked_before_any_network_loads(tmp_path) -> None:
    with pytest.raises(BadParameter, match=r"^psi 3.0 is outside \[-2, 2\]"):
        api.generate([0], tmp_path, "/nonexistent/net.safetensors", SampleOptions(psi=3.0))
    for bad, param in ((dict(cutoff=-1), "cutoff"), (dict(batch=0), "batch"), (dict(noise_mode="x"), "noise_mode"),
                       (dict(precision="fp8"), "precision"), (dict(translate=(0.1, float("nan"))), "translate"),
                       (dict(rotate=float("inf")), "rotate"), (dict(label=[1.0], attrs={"Male": 1.0}), "label"),
                       (dict(attrs={"Male": float("nan")}), "attr"), (dict(attr_default=float("inf")), "attr_default")):
        with pytest.raises(BadParameter) as refused:
            SampleOptions(**bad)
        assert refused.value.param == param and str(refused.value).startswith(param)
    assert not list(tmp_path.iterdir())


def test_what_depends_on_the_network_is_checked_by_the_sampler(tiny_net) -> None:
    with pytest.raises(BadParameter, match="^cutoff 99 is outside 0-"):
        api.sampler(tiny_net, SampleOptions(cutoff=99))
    with pytest.raises(BadParameter, match="^translate and rotate need a StyleGAN3 network"):
        api.sampler(tiny_net, SampleOptions(translate=(0.1, 0.0)))
    with pytest.raises(BadParameter, match="^label: this network is unconditional"):
        api.sampler(tiny_net, SampleOptions(label=[1.0]))


def test_project_help_gives_the_apis_default_steps() -> None:
    help_text = " ".join(CliRunner().invoke(app, ["project", "--help"], env={"COLUMNS": "300"}).stdout.split())
    assert f"default {api.PROJECT_STEPS}; {api.PIVOT_STEPS} with --tune" in help_text
    assert f"Fine-tuning steps, 1-100000 (--tune; default {TuneOptions().steps})" in help_text


# What a CLI module may call from the engine besides facegen_cli.api: option dataclasses it fills from flags
# (names ending in Options), the output and stdin probes every command makes before work (fileio), and the
# studio's one entry point (the studio is a front end of its own over the api).
CLI_MAY_CALL = {("common.py", "check_writable"), ("common.py", "special_kind"), ("studio.py", "run_studio")}


def test_the_cli_runs_no_engine_work_itself() -> None:
    """Every command is parse -> facegen_cli.api -> print: no CLI module calls the engine around the api."""
    found = []
    for path in sorted((Path(api.__file__).parents[1] / "cli").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        engine = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and (node.module or "").startswith("facegen_cli.")
                  and not node.module.startswith(("facegen_cli.cli", "facegen_cli.api", "facegen_cli.errors",
                                                  "facegen_cli.specs")) for a in node.names}
        found += [f"cli/{path.name}:{node.lineno}: {node.func.id}" for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in engine
                  and not node.func.id.endswith("Options") and (path.name, node.func.id) not in CLI_MAY_CALL]
    assert not found, "CLI modules calling the engine around facegen_cli.api:\n" + "\n".join(found)
