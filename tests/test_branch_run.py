"""Branching a run. Grown wider, it computes what it computed (G, G_ema and D), keeps its optimizer state in the new
parameterisation, resumes with `facegen train --resume`, and refuses widths that do not grow. Retuned, it keeps its
weights and optimizer moments and resumes with the new learning rates, R1 gamma or EMA half-life."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.networks import load_checkpoint
from facegen_cli.train.grow import grow_run
from facegen_cli.train import snapshots
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions
from facegen_cli.train.retune import retune_run
from real_faces import celeba_faces, celeba_folder

REPO = Path(__file__).parents[1]
TINY = dict(cbase=512, cmax=64, z_dim=64, w_dim=64, map=2, batch=4, workers=0, device="cpu", seed=5)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return celeba_folder(tmp_path_factory.mktemp("data") / "faces", 16)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """A tiny run after two steps (Adam's moments and the EMA moved), 32 px: 64, 64, 32, 16 channels."""
    trainer = Trainer(TrainOptions(data=str(data), out=str(tmp_path_factory.mktemp("runs")), kimg=0.008, snap=1,
                                   **TINY), log=lambda msg: None)
    trainer.run()
    return trainer.run_dir


@pytest.fixture(scope="module")
def grown(run, tmp_path_factory) -> Path:
    return grow_run(run, tmp_path_factory.mktemp("arms") / "wide", cbase=1024, cmax=128)


def reals(count: int) -> torch.Tensor:
    faces = np.stack([np.asarray(face) for face in celeba_faces(count, first=100)])
    return torch.from_numpy(faces).permute(0, 3, 1, 2).float() / 127.5 - 1


def test_grown_networks_compute_what_the_originals_computed(run, grown):
    old = load_checkpoint(next(run.glob("network-snapshot-*")), modules=("G_ema", "G", "D"))
    new = load_checkpoint(grown, modules=("G_ema", "G", "D"))
    assert new.G_kwargs["channel_base"] == 1024 and new.D.b4.conv.weight.shape[1] == 129  # 128 channels + stddev
    assert new.G.synthesis.b32.conv1.weight.shape[0] == 2 * old.G.synthesis.b32.conv1.weight.shape[0]
    z = torch.randn([6, 64], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name in ("G", "G_ema"):
            a = getattr(old, name).eval()(z, None, noise_mode="const")
            b = getattr(new, name).eval()(z, None, noise_mode="const")
            assert (a - b).abs().max() <= 1e-5, name
        images = reals(8)  # two minibatch-stddev groups of 4
        a, b = old.D(images), new.D(images)
    assert a.abs().max() > 0.01 and (a - b).abs().max() <= 1e-5


def test_old_weights_and_adam_moments_are_kept_in_the_new_parameterisation(run, grown):
    old = load_checkpoint(next(run.glob("network-snapshot-*")), modules=("G_ema", "G", "D"), with_training_state=True)
    new = load_checkpoint(grown, modules=("G_ema", "G", "D"), with_training_state=True)
    # A D layer whose fan-in doubled: weights x sqrt(2) (its gain halves by sqrt 2), so the gradient on the old
    # entries is the old one / sqrt(2), which is how the first moment is stored; new first moments start at zero.
    images = reals(4)
    grads = []
    for D in (old.D, new.D):
        D.requires_grad_(True)
        D(images).sum().backward()
        grads.append(D.b16.conv0.weight.grad)
    names = [name for name, _ in new.D.named_parameters()]
    index = names.index("b16.conv0.weight")
    before, after = (net.training_state["optimizers"]["D"]["state"][index] for net in (old, new))
    torch.testing.assert_close(grads[1][:32, :32] * 2 ** 0.5, grads[0], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(after["exp_avg"][:32, :32] * 2 ** 0.5, before["exp_avg"])
    torch.testing.assert_close(after["exp_avg_sq"][:32, :32] * 2, before["exp_avg_sq"])
    assert after["exp_avg"][:32, 32:].abs().max() == 0 and after["exp_avg"][32:].abs().max() == 0
    start = (before["exp_avg_sq"] / 2).mean()  # new second moments: the old ones' mean, so first steps stay lr-sized
    assert start > 0 and torch.allclose(after["exp_avg_sq"][32:], start.expand_as(after["exp_avg_sq"][32:]))
    assert before["exp_avg"].abs().max() > 0 and torch.equal(after["step"], before["step"])
    torch.testing.assert_close(new.D.b16.conv0.weight[:32, :32], old.D.b16.conv0.weight * 2 ** 0.5)
    # G's modulated convolutions keep their weights as they are; new output channels get random ones
    a, b = old.G.synthesis.b16.conv1.weight, new.G.synthesis.b16.conv1.weight
    assert torch.equal(b[:32, :32], a) and b[:32, 32:].abs().max() == 0 and b[32:].std() > 0.5
    state = new.training_state
    assert state["cur_nimg"] == 8 and state["options"]["cbase"] == 1024 and state["options"]["cmax"] == 128
    assert new.provenance["grown_from"]["cbase"] == 512 and new.provenance["id"] != old.provenance["id"]


def test_the_grown_run_resumes_and_trains_on(data, grown):
    dest = grown.parent
    before = [json.loads(line) for line in (dest / "stats.jsonl").read_text().splitlines()]
    assert len(before) == 1 and before[0]["kimg"] == 0.008 and "grown_from" in before[0]
    result = CliRunner().invoke(app, ["train", str(data), "--out", str(dest.parent), "--resume", str(dest),
                                      "--kimg", "0.012", "--workers", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert f"resuming {dest} at 0.008 kimg" in result.output
    assert (dest / "network-snapshot-000000.012.safetensors").exists()
    lines = [json.loads(line) for line in (dest / "stats.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.008, 0.012] and lines[1]["cpu_s"] > before[0].get("cpu_s", 0)
    assert json.loads((dest / "training_options.json").read_text())["cbase"] == 1024


@pytest.mark.parametrize("cbase, cmax, why", [(512, 64, "nothing to grow"), (2048, 32, "narrow the 4 px layers")])
def test_widths_that_do_not_grow_are_refused(run, tmp_path, cbase, cmax, why):
    with pytest.raises(BadParameter, match=f"^cbase {cbase} and cmax {cmax} .*{why}") as error:
        grow_run(run, tmp_path / "same", cbase=cbase, cmax=cmax)
    assert error.value.param == "cbase" and not (tmp_path / "same").exists()


def test_the_tool_writes_the_run_and_says_errors_in_one_line(run, tmp_path):
    tool = [sys.executable, str(REPO / "tools" / "branch_run.py"), str(run)]
    done = subprocess.run([*tool, str(tmp_path / "same"), "--cbase", "512", "--cmax", "64"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("branch_run: error: --cbase 512 and cmax 64") and done.stderr.count("\n") == 1


def test_a_used_destination_is_refused_before_any_work(run, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(BadInput, match=f"^{tmp_path / 'used'}: exists and is not an empty folder"):
        grow_run(run, tmp_path / "used", cbase=1024, cmax=128)
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]


@pytest.fixture(scope="module")
def retuned(run, tmp_path_factory) -> Path:
    return retune_run(run, tmp_path_factory.mktemp("arms") / "slow", glr=0.001, dlr=0.0005, gamma=0.5)


def test_a_retuned_run_keeps_its_state_and_scales_only_the_learning_rates(run, retuned):
    old = load_checkpoint(next(run.glob("network-snapshot-*")), modules=("G_ema", "G", "D"), with_training_state=True)
    new = load_checkpoint(retuned, modules=("G_ema", "G", "D"), with_training_state=True)
    for name in ("G", "G_ema", "D"):
        a, b = getattr(old, name).state_dict(), getattr(new, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    before, after = old.training_state, new.training_state
    assert before["options"]["glr"] == before["options"]["dlr"] == 0.0025 and before["options"]["gamma"] != 0.5
    assert (after["options"]["glr"], after["options"]["dlr"], after["options"]["gamma"]) == (0.001, 0.0005, 0.5)
    for key, ratio in (("G", 0.4), ("D", 0.2)):
        old_opt, new_opt = before["optimizers"][key], after["optimizers"][key]
        lrs = [(a["lr"], b["lr"]) for a, b in zip(old_opt["param_groups"], new_opt["param_groups"])]
        assert lrs and all(b == pytest.approx(a * ratio) for a, b in lrs)
        assert all(torch.equal(old_opt["state"][i]["exp_avg_sq"], new_opt["state"][i]["exp_avg_sq"])
                   for i in old_opt["state"])
    assert after["cur_nimg"] == before["cur_nimg"] and new.provenance["branched_from"]["glr"] == 0.0025
    line = json.loads((retuned.parent / "stats.jsonl").read_text())
    assert line["kimg"] == 0.008 and "branched_from" in line


def test_the_retuned_run_resumes_with_its_new_settings(data, retuned):
    trainer = Trainer(TrainOptions(data=str(data), out=str(retuned.parent.parent), kimg=0.012, workers=0,
                                   device="cpu"), resume=str(retuned.parent), log=lambda msg: None)
    assert trainer.opts.glr == 0.001 and trainer.opts.gamma == 0.5
    old = snapshots.stored_state(retuned)["optimizers"]
    for key, opt in trainer._optimizers().items():
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in old[key]["param_groups"]]
    trainer.run()
    lines = [json.loads(line) for line in (retuned.parent / "stats.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.008, 0.012]


@pytest.mark.parametrize("changes, message", [
    ({}, "^nothing to change: give at least one of glr, dlr, gamma, ema_kimg"),
    ({"glr": 0.0}, r"^glr 0 is outside \(0, 1\]"),
    ({"gamma": float("nan")}, "^gamma nan is outside 0-10000"),
    ({"batch": 8}, "^batch: a branch changes only glr, dlr, gamma, ema_kimg")])
def test_retuning_refuses_what_it_cannot_change_before_any_work(run, tmp_path, changes, message):
    with pytest.raises(BadParameter, match=message):
        retune_run(run, tmp_path / "arm", **changes)
    assert not (tmp_path / "arm").exists()


def test_the_tool_refuses_widths_and_hyperparameters_together(run, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "branch_run.py"), str(run), str(tmp_path / "arm"),
                           "--cbase", "1024", "--cmax", "128", "--glr", "0.001"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == "" and not (tmp_path / "arm").exists()
    assert done.stderr == "branch_run: error: --cbase: give widths or hyperparameters, not both (branch twice)\n"
