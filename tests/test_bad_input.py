"""Bad invocations of every kind end in one `facegen: error:` line naming the file or option, the
project's exit code (2 usage, 1 failure), no traceback and no half-written output."""
from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.cli.common import read_stdin
from facegen_cli.cli.main import app, report
from facegen_cli.data.dataset import ImageSource, check_images
from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.metrics.sources import dataset_stream
from tiny_nets import tiny_checkpoint
from facegen_cli.networks import load_checkpoint


NUM_WS, W_DIM = 8, 64  # the tiny network's W+


def _png(path, width, height, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Every bad file the cases below point at, made once."""
    d = tmp_path_factory.mktemp("fx")
    network_id = load_checkpoint(tiny_checkpoint(d / "net.safetensors")).network_id
    for i in range(3):
        _png(d / "ds" / f"img{i}.png", 32, 32, i)
    _png(d / "mixed/a.png", 32, 32)
    _png(d / "mixed/b.png", 48, 48)
    _png(d / "fakepng/a.png", 32, 32)
    (d / "fakepng/b.png").write_text("a text file named .png\n")
    good = np.random.default_rng(0).standard_normal((NUM_WS, W_DIM)).astype(np.float32)
    np.save(d / "good.npy", good)
    nan = good.copy()
    nan[2, 3] = np.nan
    np.save(d / "nan.npy", nan)
    np.save(d / "inf.npy", np.where(good > 1, np.inf, good))
    np.save(d / "big.npy", good.astype(np.float64) * 1e300)
    np.savez(d / "nan.npz", w=nan[None])
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(d / "str.npy", np.array(["abc"] * W_DIM))
    np.save(d / "complex.npy", good[0] + 1j)
    (d / "empty.npy").write_bytes(b"")
    for name, vector in (("unit", np.eye(W_DIM, dtype=np.float32)[0]), ("nanvec", np.full(W_DIM, np.nan, np.float32))):
        np.save(d / f"{name}.npy", vector)
        (d / f"{name}.json").write_text(json.dumps({"network_id": network_id, "layers": None}))
    (d / "file").write_text("x")
    (d / "folder.gif").mkdir()
    torch.save({"g_ema": torch.nn.Linear(2, 2)}, d / "module.pt")
    buf = io.BytesIO()
    torch.save({"g_ema": {}}, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()
    # torch's legacy header, then a plain pickle of a tensor (its storage pickled via torch.storage._load_from_bytes)
    (d / "frombytes.pt").write_bytes(legacy[:legacy.index(b".") + 1] + pickle.dumps({"g_ema": torch.zeros(2)},
                                                                                   protocol=2))
    return d


def run(args, env=None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def one_error_line(result, code: int, *fragments: str) -> str:
    """The single stderr line of a failed command, after checking its exit code and content."""
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert not isinstance(result.exception, (AssertionError, TypeError, AttributeError)), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr  # not even a blank line or a progress bar before it
    assert lines[0].startswith("facegen: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.exit_code == code, (result.exit_code, lines[0])
    assert result.stdout == ""
    return lines[0]


NET = ["-n", "{fx}/net.safetensors"]
CASES = {
    # output paths that cannot be written: checked while parsing, before the network loads
    "generate-out-proc": (["generate", *NET, "-s", "0", "-o", "/proc/facegen-x"], 2, "--out /proc/facegen-x"),
    "generate-out-under-file": (["generate", *NET, "-s", "0", "-o", "{fx}/file/sub"], 2, "is a file, not a folder"),
    "generate-out-is-file": (["generate", *NET, "-s", "0", "-o", "{fx}/file"], 2, "exists and is not a folder"),
    "interpolate-out-is-folder": (["interpolate", *NET, "seed:0", "seed:1", "--frames", "3", "-o", "{fx}/folder.gif"],
                                  2, "--out", "is a folder"),
    "classifier-out-is-folder": (["classifier", "train", "{fx}/ds", "-o", "{fx}/ds"], 2, "--out", "is a folder"),
    "mix-out-proc": (["mix", *NET, "seed:0", "seed:1", "-o", "/proc/facegen-x"], 2, "--out /proc/facegen-x"),
    # numbers: NaN, Inf, seed ranges too large to list
    "edit-strength-nan": (["edit", *NET, "seed:0", "-d", "{fx}/unit.npy", "--strength", "nan", "-o", "{out}"],
                          2, "--strength nan"),
    "edit-strength-inf": (["edit", *NET, "seed:0", "-d", "{fx}/unit.npy", "--strength", "-inf", "-o", "{out}"],
                          2, "--strength -inf"),
    "edit-range-nan": (["edit", *NET, "seed:0", "-d", "{fx}/nothere.npy", "--range", "nan:3", "-o", "{out}"],
                       2, "--range 'nan:3'"),  # checked while parsing, before the direction is looked for
    "generate-psi-inf": (["generate", *NET, "-s", "0", "--psi", "inf", "-o", "{out}"], 2, "--psi inf"),
    "interpolate-fps-nan": (["interpolate", *NET, "seed:0", "seed:1", "--fps", "nan", "-o", "{out}/a.gif"],
                            2, "--fps"),
    "generate-all-seeds": (["generate", *NET, "-s", "0-4294967295", "-o", "{out}"], 2, "4294967296 seeds"),
    "generate-seeds-over-grid": (["generate", *NET, "-s", "0-99", "--grid", "2x2", "-o", "{out}"],
                                 2, "--grid 2x2 does not fit 100 seeds"),
    "mix-weights-nan": (["mix", *NET, "seed:0", "seed:1", "--average", "--weights", "nan,1", "-o", "{out}"],
                        2, "--weights"),
    "mix-all-seeds": (["mix", *NET, "seed:0-4294967295", "seed:1", "-o", "{out}"], 2, "'seed:0-4294967295'"),
    "fid-all-seeds": (["fid", "{fx}/ds", "{fx}/net.safetensors", "--seeds", "0-4294967295"], 2, "4294967296 seeds"),
    # latents that are not finite real numbers
    "mix-nan-latent": (["mix", *NET, "{fx}/nan.npy", "seed:1", "-o", "{out}"], 1, "nan.npy", "NaN"),
    "mix-inf-latent": (["mix", *NET, "{fx}/inf.npy", "seed:1", "-o", "{out}"], 1, "inf.npy", "infinite"),
    "mix-overflowing-latent": (["mix", *NET, "{fx}/big.npy", "seed:1", "-o", "{out}"], 1, "big.npy", "float32"),
    "interpolate-nan-npz": (["interpolate", *NET, "seed:0", "{fx}/nan.npz", "--frames", "3", "-o", "{out}/a.gif"],
                            1, "nan.npz", "NaN"),
    "edit-nan-latent": (["edit", *NET, "{fx}/nan.npy", "-d", "{fx}/unit.npy", "--strength", "1", "-o", "{out}"],
                        1, "nan.npy"),
    "edit-nan-direction": (["edit", *NET, "seed:0", "-d", "{fx}/nanvec.npy", "--strength", "1", "-o", "{out}"],
                           1, "nanvec.npy", "NaN"),
    "mix-object-latent": (["mix", *NET, "{fx}/obj.npy", "seed:1", "-o", "{out}"], 1, "obj.npy", "Python objects"),
    "mix-string-latent": (["mix", *NET, "{fx}/str.npy", "seed:1", "-o", "{out}"], 1, "str.npy", "<U3"),
    "mix-complex-latent": (["mix", *NET, "{fx}/complex.npy", "seed:1", "-o", "{out}"], 1, "complex.npy", "complex"),
    "mix-empty-latent": (["mix", *NET, "{fx}/empty.npy", "seed:1", "-o", "{out}"], 1, "empty.npy"),
    # --noise-mode everywhere, as in generate
    "mix-noise-mode": (["mix", *NET, "seed:0", "seed:1", "--noise-mode", "bogus", "-o", "{out}"], 2, "--noise-mode"),
    "interpolate-noise-mode": (["interpolate", *NET, "seed:0", "seed:1", "--noise-mode", "x", "-o", "{out}/a.gif"],
                               2, "--noise-mode"),
    "edit-noise-mode": (["edit", *NET, "seed:0", "-d", "{fx}/unit.npy", "--strength", "1", "--noise-mode", "x",
                         "-o", "{out}"], 2, "--noise-mode"),
    # a missing input path is a usage error (2) in every command
    "generate-missing-network": (["generate", "-n", "{fx}/nothere.safetensors", "-o", "{out}"], 2, "nothere"),
    "info-missing-network": (["info", "{fx}/nothere.safetensors"], 2, "nothere"),
    "mix-missing-latent": (["mix", *NET, "{fx}/nothere.npy", "seed:1", "-o", "{out}"], 2, "nothere.npy"),
    "edit-missing-direction": (["edit", *NET, "seed:0", "-d", "nothere", "--strength", "1", "-o", "{out}"],
                               2, "nothere"),
    "project-missing-photo": (["project", "{fx}/nothere.png", *NET, "-o", "{out}"], 2, "nothere.png"),
    "train-missing-data": (["train", "{fx}/nothere", "-o", "{out}", "--dry-run"], 2, "nothere"),
    "train-missing-resume": (["train", "{fx}/ds", "-o", "{out}", "--dry-run", "--resume", "{fx}/nothere"],
                             2, "--resume", "nothere"),
    "train-negative-batch": (["train", "{fx}/ds", "-o", "{out}", "--dry-run", "--batch", "-4"], 2, "--batch"),
    "classifier-missing-data": (["classifier", "train", "{fx}/nothere", "-o", "{out}/c.safetensors"], 2, "nothere"),
    "fid-missing-side": (["fid", "{fx}/nothere", "{fx}/ds"], 2, "nothere"),
    "fid-text-png-second": (["fid", "{fx}/ds", "{fx}/fakepng", "--workers", "2"], 1, "fakepng/b.png", "not an image"),
    "directions-missing-classifier": (["directions", "fit", *NET, "--attr", "Smiling", "-c", "{fx}/nothere.st"],
                                      2, "nothere.st"),
    # data sets: bad files are found before any DataLoader worker starts, and no run folder is made
    "train-mixed-sizes-dry-run": (["train", "{fx}/mixed", "-o", "{out}", "--dry-run"], 1, "b.png", "48x48"),
    "train-mixed-sizes": (["train", "{fx}/mixed", "-o", "{out}", "--kimg", "0.001", "--workers", "2"],
                          1, "b.png", "differs"),
    "train-text-png": (["train", "{fx}/fakepng", "-o", "{out}", "--kimg", "0.001"], 1, "b.png", "cannot decode"),
    # torch files refused by weights_only loading: the refused global, never torch's advice
    "generate-pt-module": (["generate", "-n", "{fx}/module.pt", "-o", "{out}"], 1, "module.pt",
                           "torch.nn.modules.linear.Linear"),
    "info-pt-from-bytes": (["info", "{fx}/frombytes.pt"], 1, "frombytes.pt", "torch.storage._load_from_bytes"),
    # usage errors of Typer itself are one line too
    "generate-batch-zero": (["generate", *NET, "--batch", "0", "-o", "{out}"], 2, "--batch"),
    "project-no-photo": (["project"], 2, "photo"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_invocation_is_one_line(name, fx, tmp_path, monkeypatch):
    args, code, *fragments = CASES[name]
    out = tmp_path / "out"
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    result = run([a.format(fx=fx, out=out) for a in args])
    line = one_error_line(result, code, *fragments)
    assert "weights_only" not in line
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


def test_unwritable_cache_is_one_line(fx, tmp_path):
    """FACEGEN_CACHE under a regular file: the published network cannot be fetched into it."""
    result = run(["generate", "-n", "ffhq-256", "-s", "0", "-o", tmp_path / "out"],
                 env={"FACEGEN_CACHE": str(fx / "file" / "cache")})
    one_error_line(result, 2, "FACEGEN_CACHE", "Not a directory")
    assert not (tmp_path / "out").exists()


def test_project_prints_no_progress_before_its_error(fx, tmp_path):
    (tmp_path / "text.png").write_text("not a photo")
    result = run(["project", tmp_path / "text.png", "-n", fx / "net.safetensors", "-o", tmp_path / "out"])
    one_error_line(result, 1, "text.png")


def test_fid_checks_files_before_its_workers(fx):
    """A text file named .png stops `fid` before the DataLoader's workers start, naming the file."""
    with pytest.raises(FacegenError, match=r"fakepng/b\.png: cannot decode image"):
        next(dataset_stream(fx / "fakepng", batch=2, workers=2).batches())
    assert check_images(ImageSource(fx / "ds")) == {f"img{i}.png": (32, 32) for i in range(3)}


def test_truncated_jpeg_is_found_before_training(tmp_path):
    """verify() reads no JPEG scan data; a JPEG cut short is found by its missing end-of-image marker."""
    for i in range(2):
        buf = io.BytesIO()
        pixels = np.random.default_rng(i).integers(0, 255, (64, 64, 3), np.uint8)
        Image.fromarray(pixels).save(buf, "JPEG", quality=95)
        data = buf.getvalue()
        (tmp_path / f"img{i}.jpg").write_bytes(data[:len(data) // 2] if i else data)
    with pytest.raises(FacegenError, match=r"img1\.jpg: cannot decode image \(truncated JPEG"):
        check_images(ImageSource(tmp_path))
    result = run(["train", tmp_path, "-o", tmp_path / "runs", "--kimg", "0.001"])
    one_error_line(result, 1, "img1.jpg")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, stdin, fragment", [
    (["generate", "-s", "-"], "0-2 seven", "'seven'"),
    (["generate", "-s", "-"], "", "empty"),
    (["mix", "-", "-"], "seed:0", "stdin holds no latents"),
    (["mix", "-", "seed:1"], b"\xff\xfe\x00 garbage", "stdin is not text"),
    (["interpolate", "-", "--frames", "3"], "seed:0 seed:0-4294967295", "4294967296 latents"),
])
def test_stdin_garbage_is_one_line(fx, tmp_path, args, stdin, fragment):
    out = tmp_path / ("out.gif" if args[0] == "interpolate" else "out")
    result = CliRunner().invoke(app, [*args, "-n", str(fx / "net.safetensors"), "-o", str(out)], input=stdin)
    one_error_line(result, 2, fragment)
    assert not out.exists()


def test_stdin_on_a_terminal_is_refused_not_waited_on(fx, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal())
    with pytest.raises(BadInput, match="--seeds '-' reads stdin, which is a terminal"):
        read_stdin("--seeds")


def test_non_utf8_output_names_are_printed_as_their_bytes(fx, tmp_path):
    """A folder name that is not UTF-8 (kept by Python as surrogates) comes out on stdout as its own bytes."""
    out = tmp_path / "out\udcff"
    result = run(["generate", "-n", fx / "net.safetensors", "-s", "0", "-o", out])
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == str(out / "seed0000.png").encode("utf-8", "surrogateescape") + b"\n"


@pytest.mark.parametrize("error, line", [
    (MemoryError(), "facegen: error: out of memory (MemoryError); ask for fewer or smaller images"),
    (PermissionError(13, "Permission denied", "/data/x.png"), "facegen: error: /data/x.png: Permission denied"),
    (ValueError("bad\nthing"), "facegen: error: internal error ValueError: bad thing (set FACEGEN_DEBUG=1 for the "
                               "traceback)"),
])
def test_unexpected_errors_are_one_line_too(error, line, capsys, monkeypatch):
    """The last resort for what no check foresaw: one line, exit 1, the traceback only on request."""
    monkeypatch.delenv("FACEGEN_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        report(error)
    assert stop.value.code == 1 and capsys.readouterr().err == line + "\n"
    monkeypatch.setenv("FACEGEN_DEBUG", "1")
    with pytest.raises(type(error)):
        report(error)


def test_worker_errors_keep_their_own_message():
    """An error raised in a DataLoader worker comes back as its one line, not the worker's traceback."""
    wrapped = ("Caught FacegenError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 1, in f\nfacegen_cli.errors.FacegenError: /data/b.png: cannot decode image (x)\n')
    assert str(FacegenError(wrapped)) == "/data/b.png: cannot decode image (x)"


def test_project_json_prints_its_figures(fx, tmp_path):
    _png(tmp_path / "face.png", 40, 40)
    out = tmp_path / "out"
    result = run(["project", tmp_path / "face.png", "-n", fx / "net.safetensors", "--align", "none", "--steps", "2",
                  "--perceptual-weight", "0", "-o", out, "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["steps"] == 2 and np.isfinite(record["psnr_db"]) and record["psnr_db"] > 0
    assert sorted(record["paths"]) == sorted(str(p) for p in out.iterdir())
