"""Rough edges a picky user found: special files given as inputs, messages that named the wrong thing,
files written but not printed, hidden photos, ±1 labels and the training seed."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.classifier import load_classifier
from facegen_cli.cli.main import app
from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.fileio import write_bytes_atomic
from facegen_cli.latent.directions import load_direction
from facegen_cli.networks import load_network
from facegen_cli.paths import weights_dir
from facegen_cli.prepare.detect import detect_faces, load_photo
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions
from bad_input_corpus import commands_of, run_corpus
from cli_cases import Case, run_cases
from real_faces import CELEBA, CELEBA_IMAGES, SHARED_DATA, celeba_faces
from test_typed_options import commands
from tiny_nets import tiny_checkpoint

FACEGEN = [sys.executable, "-c", "from facegen_cli.cli.main import main; main()"]


@pytest.fixture(scope="module")
def special(tmp_path_factory) -> Path:
    """A folder with a FIFO, a socket, a tiny network and a folder of real faces."""
    d = tmp_path_factory.mktemp("special")
    os.mkfifo(d / "fifo.jpg")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(d / "sock.npy"))  # the socket file stays after the socket closes
    tiny_checkpoint(d / "net.safetensors")
    (d / "faces").mkdir()
    for i, face in enumerate(celeba_faces(3)):
        face.save(d / "faces" / f"{i}.png")
    return d


def _special_cases(d: Path) -> list[Case]:
    fifo, net, out = f"{d}/fifo.jpg", f"{d}/net.safetensors", f"{d}/out"
    fifo_cases = {
        "interpolate": ["interpolate", "-n", net, "seed:1", fifo, "-o", f"{out}/a.gif"],
        "mix": ["mix", "-n", net, fifo, "seed:1", "-o", out],
        "edit": ["edit", fifo, "--direction", "Smiling", "--strength", "1", "-o", out],  # the shipped model's
        "fid": ["fid", fifo, str(d)],
        "info": ["info", fifo],
        "generate": ["generate", "-n", fifo, "-s", "0", "-o", out],
        "convert": ["convert", fifo, f"{d}/x.safetensors"],
        "prepare": ["prepare", fifo, f"{d}/prepared"],
        "project": ["project", fifo, "-n", net, "--steps", "1", "-o", out],
        "prepare-labels": ["prepare", str(d), f"{d}/prepared", "--labels", fifo],
        "train": ["train", fifo, "--dry-run", "-o", f"{d}/runs"],
        "train-resume": ["train", str(d), "--resume", fifo, "-o", f"{d}/runs"],
        "classifier": ["classifier", "train", fifo, "-o", f"{d}/c.safetensors"],
        "fit": ["directions", "fit", "-n", net, "--attr", "Smiling", "-c", fifo],
        "edit-direction": ["edit", "-n", net, "seed:1", "--direction", fifo, "--strength", "1", "-o", out],
        "fid-inception": ["fid", f"{d}/faces", net, "--inception", fifo],
    }
    cases = [Case(f"fifo-{name}", args, 2, (fifo, "is a FIFO, not")) for name, args in fifo_cases.items()]
    cases += [
        Case("zero-info", ["info", "/dev/zero"], 2, ("/dev/zero: is a character device, not a network file",)),
        Case("null-mix", ["mix", "-n", net, "/dev/null", "seed:1", "-o", out], 2, ("/dev/null: is a character",)),
        Case("zero-labels", ["prepare", str(d), f"{d}/prepared", "--labels", "/dev/zero"], 2, ("/dev/zero",)),
        Case("socket-mix", ["mix", "-n", net, f"{d}/sock.npy", "seed:1", "-o", out], 2, ("is a socket, not",)),
    ]
    return cases


def test_special_files_are_refused_without_being_opened(special):
    """A FIFO, a device or a socket wherever an input path is read: one line naming it, exit 2, no hang."""
    outcomes = run_cases(_special_cases(special), timeout=60)
    bad = {o.case.name: (o.problems, o.stderr.strip()) for o in outcomes if o.problems}
    assert not bad, bad


def test_stdin_from_a_device_is_refused(special):
    """`-` with stdin on /dev/zero would read forever: refused in one line."""
    with open("/dev/zero", "rb") as zero:
        done = subprocess.run(FACEGEN + ["mix", "-n", f"{special}/net.safetensors", "-", "--average", "-o",
                                         f"{special}/out"], stdin=zero, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "facegen: error: latent '-' reads stdin, which is a character device here; pipe " \
                                  "the values in"


def _error(args: list[str], code: int) -> str:
    """The one error line of an in-process run, after checking the exit code and that nothing else was said."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    lines = result.stderr.splitlines()
    assert result.exit_code == code and len(lines) == 1 and lines[0].startswith("facegen: error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_messages_name_the_file_and_the_reason(tmp_path, special):
    shipped = weights_dir() / "default.safetensors"
    assert _error(["edit", "seed:1", "--direction", "", "--strength", "1", "-o", tmp_path],
                  2).endswith("--direction '' is empty; give a value")
    with pytest.raises(BadParameter, match="^direction '' is empty; give a direction name or a .npy file$"):
        load_direction("", load_network(special / "net.safetensors"))  # the engine too (studio, notebooks)
    line = _error(["directions", "fit", "--attr", "Smiling", "--samples", "40", "--classifier", shipped], 1)
    assert f"{shipped}: is a facegen network checkpoint, not a classifier" in line
    torch.save({"g_ema": {"w": torch.randn(4096)}}, tmp_path / "whole.pt")
    data = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    line = _error(["convert", tmp_path / "cut.pt", tmp_path / "x.safetensors"], 1)
    assert "cut.pt" in line and "not a valid or complete torch checkpoint" in line and "miniz" not in line
    assert _error(["convert", shipped, "/proc/facegen-x"], 2) == \
        "facegen: error: DEST /proc/facegen-x: cannot write in /proc (it takes no new files)"
    assert _error(["prepare", special / "faces", "/proc/facegen-x"], 2) == \
        "facegen: error: OUT /proc/facegen-x: cannot write in /proc (it takes no new files)"
    assert _error(["convert", shipped, "/dev/null"], 2).endswith("DEST /dev/null: is a character device; name a "
                                                                 "regular file")


def test_a_read_only_destination_is_named(tmp_path):
    """Converting onto a file that refuses writes names that file (not the temporary one) before any work."""
    dest = tmp_path / "locked.safetensors"
    dest.write_bytes(b"old")
    dest.chmod(0o444)
    locked = not os.access(dest, os.W_OK) or subprocess.run(["chattr", "+i", str(dest)],
                                                            capture_output=True).returncode == 0
    if not locked:
        pytest.skip("cannot make a file read-only here (root without chattr)")
    try:
        line = _error(["convert", weights_dir() / "default.safetensors", dest], 2)
        assert line.startswith(f"facegen: error: DEST {dest}: cannot write (") and ".tmp" not in line
        with pytest.raises(FacegenError, match=f"^{dest}: cannot write"):  # the writer itself, past the check
            write_bytes_atomic(dest, b"new")
        assert dest.read_bytes() == b"old" and list(tmp_path.iterdir()) == [dest]
    finally:
        subprocess.run(["chattr", "-i", str(dest)], capture_output=True)


def test_generated_latents_pipe_into_an_average(tmp_path):
    """`generate --save-latents` prints its latents too, so they can be piped on: `| grep npy | mix - --average`."""
    facegen = " ".join(shlex.quote(a) for a in FACEGEN)
    script = (f"{facegen} generate --seeds 0-3 --save-latents -o {tmp_path}/gen | grep npy | "
              f"{facegen} mix - --average --save-latents -o {tmp_path}/mix")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"{tmp_path}/mix/average.png", f"{tmp_path}/mix/average.npy"]
    latents = [np.load(tmp_path / "gen" / f"seed{s:04d}.npy") for s in range(4)]
    assert np.allclose(np.load(tmp_path / "mix" / "average.npy"), np.mean(latents, axis=0), atol=1e-6)
    assert not np.allclose(latents[0], latents[1])  # four different faces were averaged


def _printed(args: list) -> list[Path]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    return [Path(line) for line in result.stdout.splitlines()]


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_every_file_a_command_writes_is_printed(tmp_path, special):
    """Each command's stdout lists exactly the files it wrote: images, latents, direction sidecars, a run's files."""
    net = special / "net.safetensors"
    grid = _printed(["generate", "-n", net, "-s", "0-1", "--grid", "1x2", "--save-latents", "-o", tmp_path / "g"])
    assert set(grid) == _files(tmp_path / "g") and len(grid) == 3
    result = CliRunner().invoke(app, ["generate", "-n", str(net), "-s", "0", "--save-latents", "--json", "-o",
                                      str(tmp_path / "j")])
    record = json.loads(result.stdout)
    assert {Path(record["path"]), Path(record["latent"])} == _files(tmp_path / "j")
    sefa = _printed(["directions", "sefa", net, "-k", "1", "-o", tmp_path / "d"])
    assert sefa == [tmp_path / "d" / "sefa-00.npy", tmp_path / "d" / "sefa-00.json"]
    edit = _printed(["edit", "-n", net, "seed:0", "--direction", sefa[0], "--range", "-1:1", "--steps", "2",
                     "--save-latents", "-o", tmp_path / "e"])
    assert set(edit) == _files(tmp_path / "e") and len(edit) == 3
    mixed = _printed(["mix", "-n", net, "seed:0", "seed:1", "--save-latents", "-o", tmp_path / "m"])
    assert set(mixed) == _files(tmp_path / "m") and len(mixed) == 2
    frames = _printed(["interpolate", "-n", net, "seed:0", "seed:1", "--frames", "3", "-o", tmp_path / "f"])
    assert set(frames) == _files(tmp_path / "f") and len(frames) == 3


def test_a_training_run_prints_every_file_it_wrote_its_checkpoint_last(tmp_path):
    data = tmp_path / "faces"
    data.mkdir()
    for i, face in enumerate(celeba_faces(8)):
        face.save(data / f"{i}.png")
    printed = _printed(["train", data, "-o", tmp_path / "runs", "--kimg", "0.004", "--batch", "4", "--cbase", "256",
                        "--cmax", "32", "--map", "1", "--workers", "0", "--device", "cpu", "--aug", "noaug"])
    (run,) = (tmp_path / "runs").iterdir()
    assert set(printed) == _files(run) and len(printed) == len(set(printed))
    assert printed[-1] == run / "network-snapshot-000000.004.safetensors"
    assert {run / "training_options.json", run / "stats.jsonl", run / "fakes000000.004.png"} <= set(printed)


def test_a_hidden_photo_is_reported_as_passed_over(tmp_path):
    """`.name.jpg` holding a face is not read, but listed in the report with the reason `hidden file`."""
    if not CELEBA_IMAGES.is_dir():
        pytest.skip(f"real faces not found: {CELEBA_IMAGES}")
    raw = tmp_path / "raw"
    (raw / ".thumbs").mkdir(parents=True)
    shutil.copy(CELEBA_IMAGES / "000001.jpg", raw / "face.jpg")
    shutil.copy(CELEBA_IMAGES / "000002.jpg", raw / ".face.jpg")
    shutil.copy(CELEBA_IMAGES / "000003.jpg", raw / ".thumbs" / "face.jpg")
    result = CliRunner().invoke(app, ["prepare", str(raw), str(tmp_path / "ds"), "--align", "celeba", "--size",
                                      "64", "-j", "1"])
    assert result.exit_code == 0, result.stderr
    assert "skipped: hidden file" in result.stderr and "skipped: hidden folder" in result.stderr
    report = json.loads((tmp_path / "ds" / "prepare-report.json").read_text())
    assert report["faces"] == 1 and report["photos"] == 2  # the folder is not a photo; the hidden file is counted
    assert {"file": ".face.jpg", "reason": "hidden file"} in report["skipped_files"]
    assert {"file": ".thumbs/", "reason": "hidden folder"} in report["skipped_files"]


def test_plus_minus_one_labels_train_a_binary_classifier(tmp_path):
    """A CSV of -1/+1 labels (CelebA's convention) gives 0/1 targets, said on stderr: BCE, not a regression."""
    if not CELEBA_IMAGES.is_dir():
        pytest.skip(f"real faces not found: {CELEBA_IMAGES}")
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = ["file,Smiling"]
    for line in (CELEBA / "list_attr_celeba.txt").read_text().splitlines()[2:42]:
        name, *values = line.split()
        shutil.copy(CELEBA_IMAGES / name, raw / name)
        rows.append(f"{name},{values[31]}")  # Smiling, -1 or 1
    (tmp_path / "smiling.csv").write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["prepare", str(raw), str(tmp_path / "ds"), "--align", "celeba", "--size", "64",
                                 "--labels", str(tmp_path / "smiling.csv"), "-j", "1"])
    assert result.exit_code == 0, result.stderr
    labels = {v for _, v in json.loads((tmp_path / "ds" / "dataset.json").read_text())["labels"]}
    assert labels == {-1, 1}  # the data set keeps what the CSV says
    result = runner.invoke(app, ["classifier", "train", str(tmp_path / "ds"), "--size", "16", "--epochs", "1",
                                 "--batch", "8", "-o", str(tmp_path / "clf.safetensors")])
    assert result.exit_code == 0, result.stderr
    assert "Smiling: labels -1/+1 read as 0/1 (a binary attribute)" in result.stderr
    clf = load_classifier(tmp_path / "clf.safetensors")
    assert clf.binary == [True] and "accuracy" in clf.info["holdout"]["Smiling"]


def test_one_training_seed_gives_one_numpy_state(tmp_path):
    """Two fresh runs with one --seed leave numpy's global generator in the same state (and another seed not)."""
    data = tmp_path / "faces"
    data.mkdir()
    for i, face in enumerate(celeba_faces(4)):
        face.save(data / f"{i}.png")
    states = []
    for run, seed in enumerate((5, 5, 6)):
        np.random.seed(1000 + run)  # whatever the process did before
        options = TrainOptions(data=str(data), out=str(tmp_path / f"runs{run}"), seed=seed, cbase=256, cmax=32,
                               map=1, batch=4, workers=0, device="cpu", aug="noaug")
        Trainer(options, log=lambda msg: None)
        states.append(np.random.get_state()[1].copy())
    assert np.array_equal(states[0], states[1]) and not np.array_equal(states[0], states[2])


@pytest.mark.slow
def test_the_bad_input_corpus_has_no_traceback_hang_or_exit_0():
    """Hundreds of bad invocations over every command (tests/bad_input_corpus.py): none ends in a traceback, a
    hang or exit 0 on input the README calls invalid."""
    counts, outcomes = run_corpus()
    assert counts["invocations"] >= 300
    assert commands_of(outcomes) == {name for name, _ in commands()}  # every command the CLI registers
    bad = {o.case.name: o.problems for o in outcomes if {"traceback", "hang", "exit 0"} & set(o.problems)}
    assert not bad, bad


def test_an_empty_word_is_refused_wherever_it_is_typed(tmp_path, special):
    """'' would mean no grid, no seed list (so 50,000 random ones) or, as a path, the current folder."""
    net = special / "net.safetensors"
    cases = {("generate", "-n", net, "-s", "0", "--grid", "", "-o", tmp_path): "--grid '' is empty",
             ("generate", "-n", net, "--seeds=", "-o", tmp_path): "--seeds '' is empty",
             ("fid", special / "faces", net, "--seeds", " "): "--seeds ' ' is empty",
             ("interpolate", "-n", net, "seed:0", "seed:1", "--space", "", "-o", tmp_path / "a.gif"): "--space ''",
             ("prepare", "", tmp_path / "ds"): "an empty argument '' after 'prepare'",
             ("prepare", special / "faces", tmp_path / "ds", "--labels", ""): "--labels '' is empty"}
    for args, message in cases.items():
        assert message in _error(list(args), 2)
    assert not (tmp_path / "ds").exists()


def test_learning_rates_and_margins_that_cannot_work_are_refused(tmp_path, special):
    for lr in ("0", "-1", "1e308"):
        line = _error(["classifier", "train", special / "faces", "--lr", lr, "-o", tmp_path / "c.safetensors"], 2)
        assert line.startswith(f"facegen: error: --lr {float(lr):g} is outside (0, 1]"), line
    line = _error(["prepare", special / "faces", tmp_path / "ds", "--align", "box", "--margin", "1e308"], 2)
    assert "--margin 1e+308 is outside 0-4" in line


def test_a_face_too_small_to_align_is_one_line_and_nothing_is_written(tmp_path, special):
    """A real photo shrunk until its face is about 20 px: project says the face is too small to find and align
    (the size it needs for this photo), exits 1 and writes nothing; at 60 px the same face is found."""
    photo = SHARED_DATA / "wild" / "face_recognition" / "biden.jpg"
    if not photo.exists():
        pytest.skip(f"real photos not found: {photo}")
    rgb = load_photo(photo)
    side = detect_faces(rgb)[0].side
    shrunk = {}
    for face in (20, 60):
        image = Image.fromarray(rgb)
        shrunk[face] = tmp_path / f"face{face}.png"
        image.resize((round(image.width * face / side), round(image.height * face / side)), Image.LANCZOS) \
            .save(shrunk[face])
    assert len(detect_faces(load_photo(shrunk[60]))) == 1
    line = _error(["project", shrunk[20], "-n", special / "net.safetensors", "--steps", "1", "-o", tmp_path / "o"], 1)
    width, height = Image.open(shrunk[20]).size
    assert line == (f"facegen: error: {shrunk[20]}: no face found (in a {width}x{height} photo a face under about "
                    "40 px across is too small to find and align); if it is already aligned, use align none")
    assert not (tmp_path / "o").exists()


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_the_entanglement_report_overwrites_its_heatmap_when_run_again(tmp_path, private_cache):
    """`directions report -o FILE.png` names a file: run twice, the second run replaces the heatmap (it was taken
    for a folder and refused once the file existed). A tiny network's faces, which dlib never finds, leave the
    identity column empty without a warning."""
    from facegen_cli.latent.directions import Direction, save_direction, store_dir

    net_file = tiny_checkpoint(tmp_path / "net.safetensors", seed=3)
    net = load_network(str(net_file))
    save_direction(Direction("unit", np.eye(net.G_ema.w_dim, dtype=np.float32)[0], net.network_id), store_dir(net))
    heatmap = tmp_path / "report.png"
    for _ in range(2):
        result = CliRunner().invoke(app, ["directions", "report", str(net_file), "--seeds", "0-1", "--json",
                                          "-o", str(heatmap)])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["directions"] == ["unit"] and report["heatmap"] == str(heatmap)
    assert Image.open(heatmap).format == "PNG"
