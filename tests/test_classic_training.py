"""Proof on real faces: each classic family learns in a short run through the shared loop, and its
checkpoint generates, interpolates and averages through the same commands as StyleGAN2."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.checkpoint import load_checkpoint
from facegen_cli.cli.main import app
from facegen_cli.data.dataset import ImageDataset
from facegen_cli.data.writer import DatasetWriter, encode_png
from facegen_cli.prepare.labels import load_labels
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions

torch.set_num_threads(2)

DATA = Path(__file__).parents[1].parent / "shared" / "data"
CELEBA = DATA / "celeba10k"
FACE_BOX = (12, 22, 76, 86)  # the classic 64x64 face crop of the half-resolution CelebA: [22:86, 12:76]
TRAIN, HELD_OUT = 512, 256
TINY = dict(batch=32, workers=0, device="cpu", model_kwargs={"width": 16}, z_dim=32)


def write_celeba(out: Path, first: int, count: int) -> Path:
    """CelebA faces `first`..`first+count-1` as a 32x32 dataset with the 40 attributes in dataset.json."""
    if not (CELEBA / "images").is_dir():
        pytest.skip(f"real faces not found: {CELEBA} (the shared data folder beside the repository)")
    attrs = load_labels(str(CELEBA / "list_attr_celeba.txt"), None)
    writer = DatasetWriter(out)
    names, labels = [], []
    for i in range(count):
        file = f"{first + i + 1:06d}.jpg"
        with Image.open(CELEBA / "images" / file) as im:
            face = np.asarray(im.convert("RGB").crop(FACE_BOX).resize((32, 32), Image.LANCZOS))
        names.append(writer.write_png(i, encode_png(face)))
        labels.append([names[-1], attrs.lookup(file)])
    return writer.finish(names, {"labels": labels, "label_names": attrs.names}, {})


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    return write_celeba(tmp_path_factory.mktemp("classic") / "train", 0, TRAIN)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    return write_celeba(tmp_path_factory.mktemp("classic") / "held_out", TRAIN, HELD_OUT)


def real_images(data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of a dataset in [-1, 1] with their labels."""
    ds = ImageDataset(data, use_labels=True)
    imgs, labels = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(imgs).float() / 127.5 - 1, torch.stack(labels)


def mean_face_gap(G: torch.nn.Module, reals: torch.Tensor, labels: torch.Tensor) -> float:
    """Squared distance between G's average image and the data's: a statistic any learning G lowers."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn([len(reals), G.z_dim], generator=gen)
    with torch.no_grad():
        fakes = G(z, labels if G.c_dim else None)
    return float((fakes.mean(0) - reals.mean(0)).square().mean())


def train(data: Path, out: Path, model: str, kimg: float, **kwargs) -> tuple[Trainer, float, float, list[dict]]:
    """A short run: (trainer, mean-face gap before, after, stats.jsonl rows)."""
    opts = TrainOptions(data=str(data), out=str(out), model=model, kimg=kimg, snap=kimg / 4,
                        **{**TINY, **kwargs})
    trainer = Trainer(opts, log=lambda msg: None)
    reals, labels = real_images(data)
    before = mean_face_gap(trainer.G_ema, reals, labels)
    trainer.run()
    after = mean_face_gap(trainer.G_ema, reals, labels)
    rows = [json.loads(line) for line in (trainer.run_dir / "stats.jsonl").read_text().splitlines()]
    return trainer, before, after, rows


def test_dcgan_with_all_options_learns_faces(faces: Path, tmp_path: Path) -> None:
    trainer, before, after, rows = train(faces, tmp_path, "dcgan", 6.4, model_kwargs=dict(
        width=16, spectral_norm=True, pixel_norm=True, mbstd=True))
    assert after < before / 3, (before, after)
    assert len(rows) == 4 and {"loss_G", "loss_D_real", "loss_D_fake", "sec_per_kimg"} <= set(rows[-1])
    assert len(list(trainer.run_dir.glob("fakes*.png"))) == 4
    net = load_checkpoint(trainer.run_dir / rows[-1]["snapshot"])
    assert net.arch == "dcgan" and net.G_kwargs["pixel_norm"] and not net.architecture.has_wplus


def test_wgan_gp_critic_separates_and_generator_learns(faces: Path, tmp_path: Path) -> None:
    _, before, after, rows = train(faces, tmp_path, "wgan-gp", 9.6)
    assert after < before, (before, after)  # 60 G steps at 1e-4: measured 0.081 -> 0.074
    assert rows[-1]["wasserstein"] > 0 and "gp_penalty" in rows[-1]


def test_vae_reconstruction_improves(faces: Path, tmp_path: Path) -> None:
    trainer, _, _, rows = train(faces, tmp_path, "vae", 3.2, model_kwargs=dict(width=16, beta=1.0, recon="mse"))
    assert rows[-1]["loss_recon"] < 0.7 * rows[0]["loss_recon"], rows
    reals, _ = real_images(faces)
    with torch.no_grad():  # the prior decodes to face-like averages: closer to the data than grey
        fakes = trainer.G_ema(torch.randn(len(reals), trainer.G.z_dim))
    assert (fakes.mean(0) - reals.mean(0)).square().mean() < reals.mean(0).square().mean() / 3


def test_cgan_learns_and_generates_with_attributes(faces: Path, tmp_path: Path) -> None:
    trainer, before, after, rows = train(faces, tmp_path, "cgan", 6.4)
    assert trainer.G.c_dim == 40 and trainer.opts.cond
    assert after < before / 3, (before, after)
    snapshot = str(trainer.run_dir / rows[-1]["snapshot"])
    runner = CliRunner()
    args = ["generate", "--network", snapshot, "--seeds", "0-1", "--device", "cpu", "--out"]
    result = runner.invoke(app, [*args, str(tmp_path / "a"), "--attr", "Male=1,Smiling=1,Eyeglasses=0"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.split()) == 2
    result = runner.invoke(app, [*args, str(tmp_path / "b"), "--attr", "Male=1", "--attr-default", "0"])
    assert result.exit_code == 0, result.output
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "a" / "seed0000.png")),
                              np.asarray(Image.open(tmp_path / "b" / "seed0000.png")))
    result = runner.invoke(app, [*args, str(tmp_path / "c"), "--attr", "Hat=1"])
    assert result.exit_code == 2 and "Hat" in result.output


def auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (0.5 = chance)."""
    ranks = scores.argsort().argsort() + 1
    pos = truth.sum()
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * (len(truth) - pos)))


def test_acgan_classifier_beats_chance_on_held_out_faces(faces: Path, held_out: Path, tmp_path: Path) -> None:
    trainer, before, after, rows = train(faces, tmp_path, "acgan", 6.4)
    assert after < before / 3, (before, after)
    assert rows[-1]["loss_D_aux"] < rows[0]["loss_D_aux"]
    reals, labels = real_images(held_out)
    D = trainer.D.eval()
    with torch.no_grad():
        probs = D.classify(reals).numpy()
    truth = labels.numpy() > 0.5
    both = [i for i in range(truth.shape[1]) if 5 <= truth[:, i].sum() <= len(truth) - 5]
    aucs = {trainer.dataset.label_names[i]: auc(probs[:, i], truth[:, i]) for i in both}
    assert np.mean(list(aucs.values())) > 0.6, aucs
    assert aucs["Male"] > 0.7, aucs


def test_interpolate_and_average_work_and_style_mixing_is_refused(faces: Path, tmp_path: Path) -> None:
    trainer, _, _, rows = train(faces, tmp_path, "dcgan", 0.064)
    snapshot = str(trainer.run_dir / rows[-1]["snapshot"])
    runner = CliRunner()
    net = ["--network", snapshot, "--device", "cpu"]
    result = runner.invoke(app, ["interpolate", "seed:0", "seed:1", "--frames", "3", *net, "--out", str(tmp_path / "i")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["mix", "seed:0", "seed:1", "--average", *net, "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "average.png").is_file()
    result = runner.invoke(app, ["mix", "seed:0", "seed:1", *net, "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and "W+" in result.output


@pytest.mark.parametrize("model", ["wgan-gp", "vae"])
def test_resume_continues_exactly(faces: Path, tmp_path: Path, model: str) -> None:
    def run(out: Path, kimg: float, resume: str | None = None) -> Trainer:
        opts = TrainOptions(data=str(faces), out=str(out), model=model, kimg=kimg, snap=0.064, **TINY)
        trainer = Trainer(opts, resume=resume, log=lambda msg: None)
        trainer.run()
        return trainer

    whole = run(tmp_path / "whole", 0.192)
    run(tmp_path / "parts", 0.064)
    resumed = run(tmp_path / "parts", 0.192, resume="latest")
    assert resumed.step == whole.step == 6
    for a, b in zip([*whole.G.state_dict().values(), *whole.D.state_dict().values()],
                    [*resumed.G.state_dict().values(), *resumed.D.state_dict().values()]):
        assert torch.equal(a, b)
