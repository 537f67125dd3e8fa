"""facegen train: options and run folders, exact resume (also after SIGKILL), NaN stop, two gloo
processes, ADA, stats and grids, and proof that a tiny StyleGAN2 learns from real faces."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from facegen_cli.checkpoint import read_header
from facegen_cli.cli.main import app
from facegen_cli.data.dataset import ImageDataset
from facegen_cli.errors import BadInput, BadParameter, FacegenError
from facegen_cli.models import stylegan2
from facegen_cli.networks import load_checkpoint
from facegen_cli.train.augment import AdaController, AugmentPipe
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions, new_run_dir
from facegen_cli.train.plan import plan_training
from facegen_cli.train.snapshots import ScalarLog, latest_snapshot, stored_state
from real_faces import celeba_faces

TINY = dict(cbase=512, cmax=64, z_dim=64, w_dim=64, map=2, batch=4, workers=0, device="cpu")
CLI_TINY = ["--cbase", "512", "--cmax", "64", "--map", "2", "--batch", "4", "--workers", "0", "--device", "cpu"]
STATS_KEYS = {"kimg", "loss_G", "loss_D_real", "loss_D_fake", "augment_p", "sec_per_kimg", "memory_mb", "snapshot"}


def write_faces(dest: Path, count: int, labels: bool = False) -> Path:
    """`count` CelebA faces, cropped and resized to 32x32 PNGs; with labels, dataset.json too."""
    dest.mkdir(parents=True)
    names = []
    for i, face in enumerate(celeba_faces(count)):
        name = f"img{i:08d}.png"
        face.save(dest / name)
        names.append(name)
    if labels:
        (dest / "dataset.json").write_text(json.dumps({"labels": [[n, i % 2] for i, n in enumerate(names)]}))
    return dest


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_faces(tmp_path_factory.mktemp("data") / "faces", 256)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return write_faces(tmp_path_factory.mktemp("data") / "labelled", 32, labels=True)


def options(data: Path, out: Path, **kwargs) -> TrainOptions:
    return TrainOptions(data=str(data), out=str(out), **{**TINY, **kwargs})


def quiet(msg: str) -> None:
    pass


def stats_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


# --- options, run folders, labels -------------------------------------------------------------

def test_dry_run_prints_the_resolved_options_and_builds_and_creates_nothing(faces, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run built a trainer or a network")

    for built in (Trainer, stylegan2.Generator, stylegan2.Discriminator):
        monkeypatch.setattr(built, "__init__", refuse)
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["train", str(faces), "--out", str(out), "--dry-run", *CLI_TINY])
    assert result.exit_code == 0, result.stderr
    resolved = json.loads(result.stdout)
    assert resolved["res"] == 32 and resolved["batch"] == 4 and resolved["batch_gpu"] == 4
    assert resolved["gamma"] == pytest.approx(0.0002 * 32 ** 2 / 4, abs=1e-4)  # NVIDIA's heuristic
    assert resolved["aug"] == "ada" and resolved["z_dim"] == 256 and resolved["cbase"] == 512
    assert resolved["channels_last"] is True  # the CPU's faster layout unless --contiguous
    result = CliRunner().invoke(app, ["train", str(faces), "--out", str(out), "--dry-run", "--contiguous", *CLI_TINY])
    assert result.exit_code == 0 and json.loads(result.stdout)["channels_last"] is False
    assert not out.exists()


def test_run_folder_options_stats_and_grids(faces, tmp_path):
    trainer = Trainer(options(faces, tmp_path / "runs", kimg=0.008, snap=0.004, gamma=0.5), log=quiet)
    last = trainer.run()
    run = tmp_path / "runs" / "00000-small-faces-gamma0.5"
    assert last == run / "network-snapshot-000000.008.safetensors"
    assert sorted(p.name for p in run.glob("network-snapshot-*")) == [
        "network-snapshot-000000.004.safetensors", "network-snapshot-000000.008.safetensors"]
    assert json.loads((run / "training_options.json").read_text()) == json.loads(trainer.opts.to_json())
    lines = stats_lines(run)
    assert [line["kimg"] for line in lines] == [0.004, 0.008]
    for line in lines:
        assert STATS_KEYS <= line.keys() and all(math.isfinite(line[k]) for k in STATS_KEYS - {"snapshot"})
        assert line["sec_per_kimg"] > 0 and line["memory_mb"] > 0 and line["augment_p"] == 0
    assert {"r1_penalty", "pl_penalty"} <= lines[0].keys()  # both lazy regularisers run at step 0
    for kimg in ("000000.004", "000000.008"):
        with Image.open(run / f"fakes{kimg}.png") as grid:
            assert grid.size == (8 * 32, 8 * 32)
    assert new_run_dir(trainer.opts).name == "00001-small-faces-gamma0.5"

    events = EventAccumulator(str(run))
    events.Reload()
    assert STATS_KEYS - {"snapshot"} <= set(events.Tags()["scalars"])
    for key in ("kimg", "loss_G", "sec_per_kimg"):
        points = events.Scalars(key)
        assert [p.step for p in points] == [4, 8]  # images shown so far
        assert [p.value for p in points] == pytest.approx([line[key] for line in lines], rel=1e-6)


def test_scalar_log_without_tensorboard_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    log = ScalarLog(tmp_path)
    log.add(4, {"loss_G": 1.0})
    log.close()
    assert not log.enabled and list(tmp_path.iterdir()) == []


def test_training_options_json_is_replaced_whole_or_not_at_all(faces, tmp_path, monkeypatch):
    first = Trainer(options(faces, tmp_path, kimg=0.004, snap=0.004, aug="noaug"), log=quiet)
    first.run()
    written = (first.run_dir / "training_options.json").read_text()
    assert json.loads(written) == json.loads(first.opts.to_json())
    files = sorted(p.name for p in first.run_dir.iterdir())
    # A resume rewrites the file; text that cannot be encoded makes that write fail after the file is opened.
    monkeypatch.setattr(TrainOptions, "to_json", lambda self: '{"data": "\udcff"}')
    with pytest.raises(UnicodeEncodeError):
        Trainer(options(faces, tmp_path, kimg=0.008), resume=str(first.run_dir), log=quiet)
    assert (first.run_dir / "training_options.json").read_text() == written
    assert sorted(p.name for p in first.run_dir.iterdir()) == files  # no temporary file left beside it


def test_a_classic_option_for_stylegan2_is_refused_by_the_engine(faces, tmp_path):
    out = tmp_path / "runs"
    with pytest.raises(BadParameter, match="width: not an option of stylegan2; dcgan, cgan, acgan, wgan-gp, vae take"):
        Trainer(options(faces, out, model_kwargs={"width": 16}), log=quiet)
    assert not out.exists()
    result = CliRunner().invoke(app, ["train", str(faces), "--out", str(out), "--width", "16", "--dry-run", *CLI_TINY])
    assert result.exit_code == 2 and "--width: not an option of stylegan2" in result.stderr


@pytest.mark.parametrize("mixing", [0.0, 1.0])
def test_path_length_and_style_mixing_are_the_runs_choice(faces, tmp_path, mixing):
    default = Trainer(options(faces, tmp_path / "default"), log=quiet)
    assert [p.name for p in default.phases] == ["Gmain", "Greg", "Dmain", "Dreg"]
    assert (default.loss.pl_weight, default.loss.style_mixing_prob) == (2.0, 0.9)  # StyleGAN2's
    trainer = Trainer(options(faces, tmp_path / "chosen", pl_weight=0.0, style_mixing=mixing), log=quiet)
    assert [p.name for p in trainer.phases] == ["Gboth", "Dmain", "Dreg"]  # no lazy G step without path length
    running: dict[str, list[float]] = {}
    trainer.train_step((torch.randint(0, 256, [4, 3, 32, 32], dtype=torch.uint8), torch.zeros([4, 0])), running)
    assert "pl_penalty" not in running and "r1_penalty" in running
    mixed_layers = []
    for _ in range(8):
        _, ws = trainer.loss.run_G(torch.randn([4, trainer.G.z_dim]), torch.zeros([4, 0]), update_emas=False)
        mixed_layers.append(not torch.equal(ws[:, :1].expand_as(ws), ws))
    assert mixed_layers == [bool(mixing)] * 8  # probability 0: one w for every layer; 1: always two
    stored = json.loads(trainer.opts.to_json())  # what training_options.json holds, so --resume keeps them
    assert (stored["pl_weight"], stored["style_mixing"]) == (0.0, mixing)


def test_loss_options_of_stylegan2_are_refused_elsewhere_and_checked(faces, tmp_path):
    cases = {("--model", "dcgan", "--pl-weight", "1"): "--pl-weight sets stylegan2's loss; a dcgan model has none",
             ("--cfg", "stylegan3-t", "--style-mixing", "0.5"):
                 "--style-mixing sets stylegan2's loss; a stylegan3 model",
             ("--pl-weight", "-1"): "--pl-weight -1 is outside 0-10000",
             ("--pl-weight", "nan"): "--pl-weight nan: give a finite number",
             ("--style-mixing", "1.5"): "--style-mixing 1.5 is outside 0-1"}
    for args, message in cases.items():
        result = CliRunner().invoke(app, ["train", str(faces), "--out", str(tmp_path / "runs"), *args, "--dry-run"])
        assert result.exit_code == 2 and message in result.stderr, (args, result.stderr)
    assert not (tmp_path / "runs").exists()


def test_cond_opens_the_dataset_once(labelled, tmp_path, monkeypatch):
    opened = []
    open_dataset = ImageDataset.__init__

    def counted(self, *args, **kwargs):
        opened.append(args)
        open_dataset(self, *args, **kwargs)

    monkeypatch.setattr(ImageDataset, "__init__", counted)
    trainer = Trainer(options(labelled, tmp_path, cond=True), log=quiet)
    assert len(opened) == 1
    assert trainer.G.c_dim == 2 and trainer.dataset.labels.tolist() == [[1, 0], [0, 1]] * 16  # classes i % 2


def test_labels_are_noted_and_cond_needs_them(faces, labelled, tmp_path):
    notes = []
    plan_training(options(labelled, tmp_path), log=notes.append)
    assert any("has labels" in note and "(cond)" in note for note in notes)
    assert plan_training(options(labelled, tmp_path, cond=True), log=quiet).G_kwargs["c_dim"] == 2
    with pytest.raises(BadInput, match="^cond: .*no labels"):
        plan_training(options(faces, tmp_path, cond=True), log=quiet)
    result = CliRunner().invoke(app, ["train", str(faces), "--out", str(tmp_path), "--cond", "--dry-run", *CLI_TINY])
    assert result.exit_code == 2 and "no labels" in result.stderr


# --- resume ----------------------------------------------------------------------------------

def _train(data: Path, out: Path, kimg: float, resume: Path | None = None, p: float | None = None) -> Trainer:
    trainer = Trainer(options(data, out, kimg=kimg, snap=0.012, cond=True, seed=7), resume=resume, log=quiet)
    if p is not None:  # ADA active from the start, so augmentation draws are part of what must match
        trainer.augment.p.fill_(p)
    trainer.run()
    return trainer


def test_resume_continues_exactly_like_an_uninterrupted_run(labelled, tmp_path):
    # 8 steps of 4 images straight, or 6 steps, then a new Trainer from the 0.024 kimg snapshot
    # (inside a 4-step ADA window, after a path-length step) for the last 2.
    straight = _train(labelled, tmp_path, 0.032, p=0.3)
    half = _train(labelled, tmp_path, 0.024, p=0.3)
    snap = half.run_dir / "network-snapshot-000000.024.safetensors"
    resumed = _train(labelled, tmp_path, 0.032, resume=snap)
    assert resumed.run_dir == half.run_dir and resumed.cur_nimg == straight.cur_nimg == 32

    for name in ("G", "D", "G_ema"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resume"
    for key, opt in straight._optimizers().items():
        a, b = opt.state_dict()["state"], resumed._optimizers()[key].state_dict()["state"]
        assert all(torch.equal(a[i][s], b[i][s]) for i in a for s in a[i]), f"{key} optimizer differs"
    assert float(straight.augment.p) == float(resumed.augment.p) > 0.3 - 1e-3
    assert straight.ada.signs == resumed.ada.signs

    # The final checkpoints agree tensor for tensor, training state included (random states too).
    fa = straight.run_dir / "network-snapshot-000000.032.safetensors"
    fb = resumed.run_dir / "network-snapshot-000000.032.safetensors"
    ta, tb = load_file(str(fa)), load_file(str(fb))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert read_header(fa)["training_state"] == read_header(fb)["training_state"]
    assert [line["kimg"] for line in stats_lines(resumed.run_dir)] == [0.012, 0.024, 0.032]


def test_resume_keeps_the_runs_precision_unless_told_another(faces, tmp_path):
    # An fp32 run continued with --precision bf16 trains on in bf16 and stores it; a later resume without
    # the option keeps bf16, as it keeps every other option of the run.
    first = Trainer(options(faces, tmp_path, kimg=0.004, snap=0.004, aug="noaug"), log=quiet)
    first.run()
    assert first.opts.precision == "fp32" and first.loss.precision.name == "fp32"
    notes: list[str] = []
    snap = first.run_dir / "network-snapshot-000000.004.safetensors"
    second = Trainer(options(faces, tmp_path, kimg=0.008, snap=0.004, precision="bf16"), resume=snap,
                     log=notes.append)
    assert second.loss.precision.name == "bf16" and second.cur_nimg == 4
    assert any("continuing in bf16 (the run trained in fp32 until here)" in note for note in notes)
    second.run()
    snap = second.run_dir / "network-snapshot-000000.008.safetensors"
    assert stored_state(snap)["options"]["precision"] == "bf16"
    assert json.loads((second.run_dir / "training_options.json").read_text())["precision"] == "bf16"
    third = plan_training(options(faces, tmp_path, kimg=0.012), resume=str(snap), log=quiet)
    assert third.opts.precision == "bf16"
    for given, expected in (([], "bf16"), (["--precision", "fp32"], "fp32")):  # the CLI's default is "the run's"
        result = CliRunner().invoke(app, ["train", str(faces), "--out", str(tmp_path), "--resume", str(snap),
                                          "--dry-run", *given])
        assert result.exit_code == 0 and json.loads(result.stdout)["precision"] == expected, result.stderr


def test_channels_last_computes_what_contiguous_nchw_computes(faces, tmp_path):
    # The CPU's default layout against the plain reference (--contiguous): one step of every phase
    # (Gmain, Greg, Dmain, Dreg) from one seed on one batch, to float rounding.
    reals = torch.randint(0, 256, [4, 3, 32, 32], dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    steps = {}
    for layout in (True, False):
        trainer = Trainer(options(faces, tmp_path / str(layout), seed=3, channels_last=layout), log=quiet)
        conv = trainer.G.synthesis.b32.conv1.weight
        assert conv.is_contiguous(memory_format=torch.channels_last if layout else torch.contiguous_format)
        running: dict[str, list[float]] = {}
        trainer.train_step((reals, torch.zeros([4, 0])), running)
        assert set(running) >= {"loss_G", "pl_penalty", "loss_D_real", "r1_penalty"}
        steps[layout] = trainer, running
    (fast, fast_stats), (plain, plain_stats) = steps[True], steps[False]
    assert fast_stats.keys() == plain_stats.keys()
    for key in fast_stats:
        assert fast_stats[key] == pytest.approx(plain_stats[key], rel=1e-4, abs=1e-6), key
    for name in ("G", "D"):
        a, b = dict(getattr(fast, name).named_parameters()), dict(getattr(plain, name).named_parameters())
        for key in a:
            # to the gradients' own tolerance: on an AMD EPYC one weight of b8.conv0's 36,864 parts by 2.5e-4
            torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-5, msg=f"{name}.{key}")
            if a[key].grad is not None:
                torch.testing.assert_close(a[key].grad, b[key].grad, rtol=1e-3, atol=1e-5, msg=f"{name}.{key}.grad")


def _facegen(*args: str) -> list[str]:
    return [sys.executable, "-c", "from facegen_cli.cli.main import main; main()", *args]


def test_a_run_killed_with_sigkill_resumes_from_its_last_snapshot(faces, tmp_path):
    out = tmp_path / "runs"
    args = ["train", str(faces), "--out", str(out), *CLI_TINY, "--snap", "0.004"]
    proc = subprocess.Popen(_facegen(*args, "--kimg", "10"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not list(out.glob("*/network-snapshot-*.safetensors")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "no snapshot within 240 s"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run = next(out.iterdir())
    # The kill may land between writing the checkpoint and its stats line: the checkpoint is
    # what a resume needs, so read the kimg from it.
    first = read_header(latest_snapshot(run))["provenance"]["kimg"]
    resumed_to = round(first + 0.008, 3)
    result = subprocess.run(_facegen(*args, "--resume", "latest", "--kimg", str(resumed_to)),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} at {first:.3f} kimg" in result.stderr
    assert result.stdout.splitlines()[-1] == str(run / f"network-snapshot-{resumed_to:010.3f}.safetensors")
    assert [p.name for p in out.iterdir()] == [run.name]  # the same run folder, no new one
    kimgs = [line["kimg"] for line in stats_lines(run)]
    assert kimgs == sorted(kimgs) and kimgs[-1] == resumed_to and len(set(kimgs)) == len(kimgs)
    state = load_checkpoint(run / f"network-snapshot-{resumed_to:010.3f}.safetensors",
                            with_training_state=True).training_state
    assert state["cur_nimg"] == round(resumed_to * 1000)


# --- NaN stop --------------------------------------------------------------------------------

def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(faces, tmp_path):
    trainer = Trainer(options(faces, tmp_path, kimg=0.02, snap=0.004, aug="noaug"), log=quiet)
    accumulate = trainer.loss.accumulate

    def poisoned(phase, real, *args, **kwargs):  # from the third step on, the reals hold a NaN
        if trainer.step >= 2:
            real = real.clone()
            real[0, 0, 0, 0] = float("nan")
        return accumulate(phase, real, *args, **kwargs)

    trainer.loss.accumulate = poisoned
    with pytest.raises(FacegenError, match=r"loss_D_real became nan at 0\.008 kimg.*last good checkpoint: "
                                           r".*network-snapshot-000000\.008\.safetensors"):
        trainer.run()
    assert trainer.scalars.writer.all_writers is None  # the TensorBoard writer was closed on the way out
    snaps = sorted(p.name for p in trainer.run_dir.glob("network-snapshot-*"))
    assert snaps[-1] == "network-snapshot-000000.008.safetensors" and len(snaps) == 2
    good = load_checkpoint(trainer.run_dir / snaps[-1], modules=("G_ema", "G", "D"), with_training_state=True)
    assert good.training_state["cur_nimg"] == 8
    assert all(torch.isfinite(p).all() for m in (good.G, good.D, good.G_ema) for p in m.parameters())


# --- distributed -----------------------------------------------------------------------------

def test_two_gloo_processes_hold_identical_weights_and_only_rank0_writes(faces, tmp_path):
    out, reports = tmp_path / "runs", tmp_path / "reports"
    worker = Path(__file__).with_name("dist_train_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
           str(faces), str(out), str(reports), "0.016"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((reports / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["real_batch_sizes"] == rank1["real_batch_sizes"] == [2]  # --batch 4 split over 2 ranks
    for key in ("G", "D", "G_ema", "augment_p", "kimg"):
        assert rank0[key] == rank1[key], f"{key} differs between ranks"
    assert rank0["kimg"] == 0.016 and rank0["augment_p"] != 0.3  # ADA moved p, identically on both
    runs = list(out.iterdir())
    assert len(runs) == 1 and len(stats_lines(runs[0])) == 1  # one folder, one line: rank 1 wrote nothing
    state = load_checkpoint(runs[0] / "network-snapshot-000000.016.safetensors",
                            with_training_state=True).training_state
    assert len(state["rng"]) == 2  # both ranks' random streams, so a resume continues each of them


# --- ADA -------------------------------------------------------------------------------------

def test_augment_pipe_is_the_identity_at_p0_and_a_differentiable_change_at_p1():
    torch.manual_seed(0)
    images = torch.rand([8, 3, 32, 32]) * 2 - 1
    pipe = AugmentPipe()
    assert torch.equal(pipe(images), images)
    pipe.p.fill_(1)
    x = images.clone().requires_grad_(True)
    y = pipe(x)
    assert y.shape == x.shape and not torch.allclose(y, images, atol=1e-3)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ada_controller_follows_the_sign_of_d_on_reals():
    pipe = AugmentPipe()
    pipe.p.fill_(0.5)
    ada = AdaController(pipe, target=0.6, interval=4, speed_kimg=100)
    step = 32 * 4 / 100_000
    for _ in range(4):
        ada.observe(0.9)  # D overconfident on reals
    ada.update(32)
    assert float(pipe.p) == pytest.approx(0.5 + step) and ada.signs == []
    for _ in range(4):
        ada.observe(0.1)
    ada.update(32)
    ada.update(32)  # nothing observed since: p stays
    assert float(pipe.p) == pytest.approx(0.5)
    pipe.p.fill_(0)
    ada.observe(-1.0)
    ada.update(32)
    assert float(pipe.p) == 0  # clamped to [0, 1]


# --- learning --------------------------------------------------------------------------------

def _separation_and_distance(trainer: Trainer, reals: torch.Tensor, data_mean: torch.Tensor,
                             data_std: torch.Tensor) -> tuple[float, float]:
    """(mean D(real) - mean D(fake), distance of the fakes' per-channel mean/std from the data's)."""
    gen = torch.Generator().manual_seed(99)
    z = torch.randn([len(reals), trainer.G.z_dim], generator=gen)
    c = torch.zeros([len(reals), 0])
    with torch.no_grad():
        fakes = trainer.G_ema(z, c, noise_mode="const")
        separation = float(trainer.D(reals, c).mean() - trainer.D(trainer.G(z, c, noise_mode="const"), c).mean())
    mean, std = fakes.mean([0, 2, 3]), fakes.std([0, 2, 3])
    return separation, float((mean - data_mean).abs().sum() + (std - data_std).abs().sum())


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_tiny_stylegan2_learns_from_256_real_faces(faces, tmp_path, precision):
    trainer = Trainer(options(faces, tmp_path, kimg=0.48, snap=1, batch=8, aug="noaug", seed=1, precision=precision),
                      log=quiet)
    data = torch.stack([trainer.dataset[i][0] for i in range(len(trainer.dataset))]).float() / 127.5 - 1
    data_mean, data_std = data.mean([0, 2, 3]), data.std([0, 2, 3])
    reals = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(5))[:64]]
    sep0, dist0 = _separation_and_distance(trainer, reals, data_mean, data_std)
    trainer.run()
    sep1, dist1 = _separation_and_distance(trainer, reals, data_mean, data_std)
    # fp32 and bf16, seeds 0-4 on 1 thread and seed 1 on 2: D's separation grew by 4.0-6.0 (from -0.64..1.61)
    # and the colour distance fell to 0.03-0.21 of its start; an untrained pair changes neither.
    assert sep1 > sep0 + 2, (sep0, sep1)
    assert dist1 < 0.5 * dist0, (dist0, dist1)
