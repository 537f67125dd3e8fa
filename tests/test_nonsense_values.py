"""Values that parse but make no sense end in one `facegen: error:` line naming the option, the range and
exit 2, before any work; legal but odd values draw a `facegen: warning:` line. Each case is a user's report."""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadParameter
from facegen_cli.metrics.equivariance import generator_eqt
from facegen_cli.networks import load_network
from facegen_cli.paths import weights_dir
from facegen_cli.sampler import LATENT_RADII, Sampler
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions
from real_faces import celeba_folder
from tiny_nets import tiny_checkpoint, tiny_G

TINY = dict(cbase=512, cmax=64, z_dim=64, w_dim=64, map=2, batch=4, workers=0, device="cpu")

SHIPPED = weights_dir() / "default.safetensors"
CLASSIFIER = weights_dir() / "classifiers" / "celeba-attributes.safetensors"
needs_shipped = pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped model is not in weights/")


def run(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def refused(result, *words: str) -> str:
    """The one error line of an exit-2 result, holding every one of `words`."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.startswith("facegen: error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("nets") / "tiny.safetensors")


def test_empty_out_and_network_are_refused(net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an empty --out was the current folder
    refused(run("generate", "-n", net, "-s", "0", "--out", ""), "--out ''", "empty")
    refused(run("interpolate", "-n", net, "seed:0", "seed:1", "--out", ""), "--out ''", "empty")
    refused(run("generate", "--network", "", "-s", "0", "-o", tmp_path / "g"), "--network ''", "empty")
    refused(run("info", ""), "''", "empty")
    refused(run("info", "--network", ""), "--network ''", "empty")
    assert list(tmp_path.iterdir()) == []


@needs_shipped
def test_cutoff_beyond_the_networks_entries_is_refused(tmp_path):
    refused(run("generate", "--cutoff", "999", "-s", "0", "-o", tmp_path), "--cutoff 999", "0-10", "10 W+ entries")
    assert run("generate", "--cutoff", "10", "-s", "0", "-o", tmp_path).exit_code == 0


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Eight real faces at 32x32, a dataset `train` reads."""
    return celeba_folder(tmp_path_factory.mktemp("data") / "faces", 8)


@pytest.fixture(scope="module")
def snapshot(images, tmp_path_factory):
    """The checkpoint of a tiny run trained to 0.004 kimg, with its training state."""
    out = tmp_path_factory.mktemp("runs")
    trainer = Trainer(TrainOptions(data=str(images), out=str(out), kimg=0.004, snap=0.004, aug="noaug", **TINY),
                      log=lambda msg: None)
    trainer.run()
    return trainer.run_dir / "network-snapshot-000000.004.safetensors"


def test_train_refuses_freezing_without_a_network_and_fp16_on_a_cpu(images, tmp_path):
    refused(run("train", images, "--out", tmp_path, "--freezed", "5", "--dry-run"), "--freezed 5", "resume_from")
    refused(run("train", images, "--out", tmp_path, "--fp16", "--device", "cpu", "--dry-run"), "--fp16", "CUDA only",
            "bf16")
    refused(run("train", images, "--out", tmp_path, "--seed", "-1", "--dry-run"), "--seed -1", "0-4294967295")
    refused(run("train", images, "--out", tmp_path, "--resume-from", "", "--dry-run"), "--resume-from ''", "empty")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, value, shown", [
    ("--kimg", "1e308", "(0, 1e+06]"), ("--kimg", "0", "(0, 1e+06]"), ("--glr", "1e308", "(0, 1]"),
    ("--glr", "0", "(0, 1]"), ("--dlr", "2", "(0, 1]"), ("--dlr", "-1", "(0, 1]"), ("--gamma", "1e308", "0-10000"),
    ("--gamma", "-1", "0-10000"), ("--snap", "1e308", "(0, 1e+06]"), ("--minutes", "1e308", "(0, 1e+06]"),
    ("--minutes", "0", "(0, 1e+06]"), ("--batch", "100000000", "1-65536"), ("--batch", "0", "1-65536"),
    ("--batch-gpu", "0", "1-65536"), ("--target", "2", "0-1"), ("--pl-weight", "1e308", "0-10000"),
    ("--style-mixing", "2", "0-1"), ("--res", "3", "4-65536"), ("--res", "131072", "4-65536"),
    ("--workers", "-1", "0-256"), ("--workers", "100000", "0-256"), ("--map", "0", "1-64"), ("--map", "65", "1-64"),
    ("--cbase", "0", "1-1048576"), ("--cmax", "100000", "1-65536"), ("--latent", "0", "1-65536"),
    ("--width", "0", "1-65536"), ("--beta", "-1", "0-10000"), ("--beta", "1e308", "0-10000")])
def test_train_numbers_outside_their_bounds_are_refused_before_any_work(images, tmp_path, option, value, shown):
    refused(run("train", images, "--out", tmp_path / "runs", option, value, "--dry-run"),
            f"{option} {value if value.lstrip('-').isdigit() else format(float(value), 'g')} is outside {shown}")
    assert list(tmp_path.iterdir()) == []


def test_train_precision_and_resume_are_checked_by_the_engine_before_any_work(images, tmp_path):
    refused(run("train", images, "--out", tmp_path / "runs", "--precision", "bogus", "--dry-run"),
            "--precision must be one of fp32, bf16, auto, got 'bogus'")
    refused(run("train", images, "--out", tmp_path / "runs", "--resume", "/nonexistent", "--dry-run"),
            "--resume /nonexistent: no such checkpoint or run folder")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadParameter, match="^precision must be one of") as caught:
        Trainer(TrainOptions(data=str(tmp_path / "nothing-here"), out=str(tmp_path), precision="bogus"))
    assert caught.value.param == "precision"


def test_train_help_gives_each_numbers_range():
    shown = " ".join(CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).stdout.split())
    for words in ("Resolution, 4-65536 px", "Mapping network depth, 1-64", "Channel base, 1-1048576",
                  "Channel maximum, 1-65536", "Data loading processes, 0-256", "Latent size, 1-65536",
                  "next to the image, 1-65536", "KL term, 0-10^4", "fp32 (the reference"):
        assert words in shown, words


def test_train_bounds_are_the_engines_and_come_before_the_data_is_read(tmp_path):
    with pytest.raises(BadParameter, match=r"^ema_kimg -1 is outside 0-1e\+06$") as caught:
        Trainer(TrainOptions(data=str(tmp_path / "nothing-here"), out=str(tmp_path), ema_kimg=-1.0))
    assert caught.value.param == "ema_kimg" and list(tmp_path.iterdir()) == []
    for option, value in (("--gamma", "0"), ("--glr", "1"), ("--kimg", "1e6"), ("--batch", "8")):
        result = run("train", tmp_path, option, value, "--dry-run")  # the bounds themselves are legal
        assert "is outside" not in result.output, result.output


@pytest.mark.parametrize("option, value, shown", [
    ("--kimg", "1e308", "--kimg 1e+308 is outside (0, 1e+06]"), ("--lr", "1e308", "--lr 1e+308 is outside (0, 1]"),
    ("--lr", "0", "--lr 0 is outside (0, 1]"), ("--batch", "1000000000", "--batch 1000000000 is outside 1-4096"),
    ("--minutes", "1e308", "--minutes 1e+308 is outside (0, 1e+06]"),
    ("--perceptual-weight", "1e308", "--perceptual-weight 1e+308 is outside 0-10000"),
    ("--seed", "4294967296", "--seed 4294967296 is outside 0-4294967295")])
def test_encoder_training_numbers_outside_their_bounds_are_refused_before_any_work(net, tmp_path, option, value,
                                                                                   shown):
    refused(run("encoder", "train", net, option, value, "-o", tmp_path / "e.safetensors"), shown)
    assert list(tmp_path.iterdir()) == []


def test_resume_refuses_what_it_cannot_honour(images, snapshot, tmp_path):
    run_dir, runs = snapshot.parent, snapshot.parent.parent
    resume = ["--resume", run_dir, "--dry-run"]
    refused(run("train", tmp_path, *resume), str(tmp_path), "trains on", str(images))
    refused(run("train", images, *resume, "--cfg", "paper256"), "--cfg paper256", "keeps its own (cfg small)")
    refused(run("train", images, *resume, "--out", tmp_path), f"--out {tmp_path}", "its own folder")
    refused(run("train", images, *resume, "--cbase", "1024"), "--cbase 1024", "cbase 512")
    refused(run("train", images, *resume, "--latent", "128"), "--latent 128")
    refused(run("train", images, *resume, "--kimg", "0.002"), "--kimg 0.002", "0.004 kimg", snapshot.name)
    # What a resume takes anew, the run's own values, and `latest` looked up in --out all go through.
    for given in (["--kimg", "1", "--workers", "0", "--minutes", "5", "--precision", "bf16"], ["--cfg", "small"],
                  ["--cbase", "512", "--out", runs]):
        result = run("train", images, *resume, *given)
        assert result.exit_code == 0, result.output
    result = run("train", images, "--resume", "latest", "--out", runs, "--kimg", "1", "--dry-run")
    assert result.exit_code == 0 and json.loads(result.stdout)["kimg"] == 1, result.output


@needs_shipped
def test_latents_far_outside_the_mapping_networks_range_are_refused(tmp_path):
    # The shipped model's sampled W lie 13.7 from w_avg on average (18.9 at most over 20,000 seeds), so the bound
    # sits near 137; a projected face lies well within it, 1e38 and -1e6 far outside.
    sampler = Sampler(load_network(None))
    assert 10 < sampler.typical_radius < 20
    ws = sampler.seed_latent(3)
    for name, latent in (("huge", np.full_like(ws, 1e38)), ("negative", np.full_like(ws, -1e6)),
                         ("far", ws + 2 * LATENT_RADII * sampler.typical_radius / np.sqrt(ws.shape[1]))):
        np.save(tmp_path / f"{name}.npy", latent)
        refused(run("edit", tmp_path / f"{name}.npy", "-d", "Smiling", "--strength", "1", "-o", tmp_path / "e"),
                f"{name}.npy", "latent lies", "sampled faces lie")
        refused(run("interpolate", tmp_path / f"{name}.npy", "seed:1", "--frames", "3", "-o", tmp_path / "i.gif"),
                f"{name}.npy", "latent lies")
    np.save(tmp_path / "near.npy", ws + 3)  # 3 in every coordinate: 48 from the face, within the bound
    assert run("edit", tmp_path / "near.npy", "-d", "Smiling", "--strength", "1", "-o", tmp_path / "e").exit_code == 0
    assert not (tmp_path / "i.gif").exists()


@needs_shipped
def test_edit_strengths_beyond_100_are_refused_and_beyond_10_warned(tmp_path):
    for strength in ("1e30", "-1e6", "101"):
        refused(run("edit", "seed:0", "-d", "Smiling", "--strength", strength, "-o", tmp_path),
                f"--strength {float(strength):g}", "-100..100")
    refused(run("edit", "seed:0", "-d", "Smiling", "--range", "-3:300", "-o", tmp_path), "--range -3:300", "-100..100")
    assert list(tmp_path.iterdir()) == []
    result = run("edit", "seed:0", "-d", "Smiling", "--strength", "30", "-o", tmp_path)
    assert result.exit_code == 0
    assert re.search(r"^facegen: warning: --strength 30 lies outside -10\.\.10", result.stderr, re.M), result.stderr
    result = run("edit", "seed:0", "-d", "Smiling", "--strength", "5", "-o", tmp_path)
    assert result.exit_code == 0 and "warning" not in result.stderr


@needs_shipped
def test_an_empty_edit_range_is_refused(tmp_path):
    refused(run("edit", "seed:0", "-d", "Smiling", "--range", "1:1", "-o", tmp_path), "--range 1:1", "empty")
    assert list(tmp_path.iterdir()) == []


def test_sefa_top_above_the_available_directions_is_refused(net, tmp_path):
    refused(run("directions", "sefa", net, "--top", "999999", "--out", tmp_path), "--top 999999", "1-64")
    refused(run("directions", "sefa", net, "--top", "0", "--out", tmp_path), "--top 0", "1-64")
    assert list(tmp_path.iterdir()) == []
    result = run("directions", "sefa", net, "--top", "64", "--out", tmp_path)
    assert result.exit_code == 0 and sum(line.endswith(".npy") for line in result.stdout.split()) == 64


def test_prepare_refuses_attrs_without_labels_and_upsample_above_3(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    refused(run("prepare", raw, tmp_path / "ds", "--attrs", "Smiling"), "--attrs Smiling", "labels")
    began = time.perf_counter()
    refused(run("prepare", raw, tmp_path / "ds", "--upsample", "99"), "--upsample 99", "0-3")
    assert time.perf_counter() - began < 5  # before any photo is read
    assert not (tmp_path / "ds").exists()


def test_interpolate_fps_outside_1_to_120_is_refused(net, tmp_path):
    for fps in ("1000000", "0.5", "0"):
        refused(run("interpolate", "-n", net, "seed:0", "seed:1", "--frames", "3", "--fps", fps,
                    "-o", tmp_path / "a.gif"), f"--fps {float(fps):g}", "1-120")
    assert run("interpolate", "-n", net, "seed:0", "seed:1", "--frames", "3", "--fps", "120",
               "-o", tmp_path / "a.gif").exit_code == 0


def test_directions_fit_checks_ratio_and_seeds_before_sampling(net, tmp_path):
    if not CLASSIFIER.exists():
        pytest.skip("the shipped classifier is not in weights/")
    began = time.perf_counter()
    common = ["directions", "fit", net, "--attr", "Smiling", "-c", CLASSIFIER, "--out", tmp_path]
    refused(run(*common, "--ratio", "0.9"), "--ratio 0.9", "(0, 0.5]")
    refused(run(*common, "--ratio", "0.01", "--samples", "100"), "--samples 100", "at least 1000")
    refused(run(*common, "--seed-start", "-1"), "--seed-start -1", "0-4294967295")
    refused(run(*common, "--seed-start", "4294967000"), "--seed-start 4294967000", "run past")
    assert time.perf_counter() - began < 20  # 2000 faces would take minutes
    assert list(tmp_path.iterdir()) == []


def test_seeds_outside_0_to_2_32_are_refused_by_every_command(net, tmp_path):
    refused(run("generate", "-n", net, "--seeds", "-1", "-o", tmp_path), "'-1'")
    refused(run("generate", "-n", net, "--seeds", "0-3,4294967296", "-o", tmp_path), "4294967296", "0-4294967295")
    refused(run("mix", "-n", net, "seed:-1", "seed:1", "-o", tmp_path), "-1")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadParameter, match="^seed -1 is outside 0-4294967295"):  # eqt's --seed, checked first
        generator_eqt(tiny_G(), seed=-1)



def test_an_attribute_given_twice_in_one_list_is_refused(net, tmp_path):
    # `--set Age=40,Age=50` kept the last value and exited 0
    refused(run("edit", "seed:0", "--set", "Age=40,Age=50", "-o", tmp_path), "--set Age is given twice")
    refused(run("edit", "seed:0", "--set", "Age=40", "--set", "age=50", "-o", tmp_path), "--set age is given twice")
    refused(run("generate", "-n", net, "-s", "0", "--attr", "Male=1,male=0", "-o", tmp_path), "--attr male is given")
    assert list(tmp_path.iterdir()) == []


def test_a_report_on_a_network_without_directions_is_one_line(net, tmp_path, private_cache):
    # an internal IndexError before
    refused(run("directions", "report", net, "--seeds", "0", "-o", tmp_path / "r.png"), "no directions yet")
    assert not (tmp_path / "r.png").exists()


def test_project_refuses_steps_and_weights_that_optimise_nothing(tmp_path):
    # `--steps 0` meant the default 500, and a bad --tune-steps was reported as --steps
    absent = ["project", tmp_path / "absent.png", "--network", tmp_path / "absent.safetensors"]
    refused(run(*absent, "--steps", "0"), "--steps 0 is outside 1-100000")
    refused(run(*absent, "--tune", "--tune-steps", "0"), "--tune-steps 0 is outside 1-100000")
    # a billion steps ran for days
    refused(run(*absent, "--steps", "1000000000"), "--steps 1000000000 is outside 1-100000")
    refused(run(*absent, "--tune", "--tune-steps", "1000000000"), "--tune-steps 1000000000 is outside 1-100000")
    refused(run(*absent, "--perceptual-weight", "0", "--pixel-weight", "0"),
            "--perceptual-weight is 0 and so is the pixel weight")  # was `--perceptual-weight and pixel_weight are`


def test_classifier_epochs_beyond_ten_thousand_are_refused_before_any_work(tmp_path):
    # a billion epochs ran for days
    refused(run("classifier", "train", tmp_path, "--epochs", "1000000000", "-o", tmp_path / "c.safetensors"),
            "--epochs 1000000000 is more than 10000")
    assert list(tmp_path.iterdir()) == []
