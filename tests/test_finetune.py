"""facegen train --resume-from: a new run that starts from a network's weights (fine-tuning),
with fresh D and optimizers where the network has none, and --freezed D layers."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from facegen_cli.checkpoint import read_header, save_checkpoint
from facegen_cli.errors import BadInput
from facegen_cli.networks import load_checkpoint
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions
from facegen_cli.train.snapshots import latest_snapshot
from real_faces import celeba_folder

TINY = dict(cbase=512, cmax=64, z_dim=64, w_dim=64, map=2, batch=4, workers=0, device="cpu", aug="noaug")


def quiet(msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """64 real CelebA faces at 32x32."""
    return celeba_folder(tmp_path_factory.mktemp("data") / "faces", 64)


def train(data: Path, out: Path, kimg: float, **kwargs) -> Trainer:
    trainer = Trainer(TrainOptions(data=str(data), out=str(out), kimg=kimg, snap=kimg, **{**TINY, **kwargs}),
                      log=quiet)
    trainer.run()
    return trainer


@pytest.fixture(scope="module")
def trained(faces, tmp_path_factory) -> Path:
    """A snapshot of a short run: G, D, G_ema and training state."""
    run = train(faces, tmp_path_factory.mktemp("runs"), 0.016, seed=3)
    return latest_snapshot(run.run_dir)


def ema_only(snapshot: Path, dest: Path) -> Path:
    net = load_checkpoint(snapshot)
    return save_checkpoint(dest, net.arch, net.G_kwargs, net.G_ema, provenance={"dataset": "test"})


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_full_checkpoint_starts_a_new_run_with_its_G_D_and_G_ema(faces, trained, tmp_path):
    source = load_checkpoint(trained, modules=("G_ema", "G", "D"))
    trainer = Trainer(TrainOptions(data=str(faces), out=str(tmp_path), kimg=0.004, resume_from=str(trained),
                                   **{**TINY, "cbase": None, "cmax": None, "z_dim": None, "w_dim": None, "map": None}),
                      log=quiet)
    for name in ("G", "D", "G_ema"):
        assert same_weights(getattr(trainer, name), getattr(source, name)), name
    # A new run from the first image, with the network's architecture in its options.
    assert trainer.cur_nimg == 0 and trainer.run_dir.parent == tmp_path and trainer.run_dir.name.startswith("00000-")
    assert (trainer.opts.cbase, trainer.opts.cmax, trainer.opts.map) == (512, 64, 2)
    # The first fakes are the network's: the run's grid equals the source G_ema's images (to float rounding:
    # on a CPU the run computes in channels_last, which sums in another order than the contiguous source).
    z = torch.randn([4, 64], generator=torch.Generator().manual_seed(0))
    c = torch.zeros([4, 0])
    with torch.no_grad():
        torch.testing.assert_close(trainer.G_ema(z, c, noise_mode="const"), source.G_ema(z, c, noise_mode="const"),
                                   rtol=0, atol=1e-5)


def test_a_run_from_a_network_counts_on_from_its_kimg_also_after_resume(faces, trained, tmp_path):
    seen = read_header(trained)["provenance"]["kimg_total"]  # a run from scratch: its own kimg
    assert seen == pytest.approx(0.016)
    first = train(faces, tmp_path, 0.004, resume_from=str(trained))
    assert first.start_kimg == pytest.approx(seen)
    snap = latest_snapshot(first.run_dir)
    provenance = read_header(snap)["provenance"]
    assert (provenance["kimg"], provenance["kimg_total"]) == pytest.approx((0.004, seen + 0.004))
    # --resume of that run keeps counting from the same start (it is in the training state).
    resumed = Trainer(TrainOptions(data=str(faces), out=str(tmp_path), kimg=0.008, snap=0.004, **TINY),
                      resume=str(snap), log=quiet)
    resumed.run()
    assert read_header(latest_snapshot(resumed.run_dir))["provenance"]["kimg_total"] == pytest.approx(seen + 0.008)


def test_an_ema_only_network_gets_G_from_G_ema_and_a_fresh_D(faces, trained, tmp_path):
    path = ema_only(trained, tmp_path / "ema.safetensors")
    source = load_checkpoint(trained, modules=("G_ema", "D"))
    said: list[str] = []
    trainer = Trainer(TrainOptions(data=str(faces), out=str(tmp_path / "runs"), kimg=0.008, resume_from=str(path),
                                   **TINY), log=said.append)
    assert same_weights(trainer.G, source.G_ema) and same_weights(trainer.G_ema, source.G_ema)
    assert not same_weights(trainer.D, source.D)  # fresh, from the run's seed
    assert any("no G (copied from G_ema) and no D (fresh)" in line for line in said)
    trainer.run()  # and it trains
    assert trainer.cur_nimg == 8 and not same_weights(trainer.G, source.G_ema)


def test_frozen_discriminator_layers_do_not_change_and_the_rest_learns(faces, trained, tmp_path):
    trainer = Trainer(TrainOptions(data=str(faces), out=str(tmp_path), kimg=0.016, resume_from=str(trained),
                                   freezed=3, **TINY), log=quiet)
    before = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.run()
    after = trainer.D.state_dict()
    # NVIDIA's count from the image: the 32 px block's fromrgb, conv0, conv1 (skip is the 4th).
    frozen = {k for k in before if k.startswith(("b32.fromrgb.", "b32.conv0.", "b32.conv1."))}
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    learnt = [k for k in before if k not in frozen and k.endswith("weight")]
    assert all(not torch.equal(before[k], after[k]) for k in learnt)


def test_a_network_that_does_not_fit_the_data_is_one_line_before_any_work(faces, trained, tmp_path):
    with pytest.raises(BadInput, match=r"^resume_from .*: the network has resolution 32, .* has 64"):
        bigger = tmp_path / "big"
        bigger.mkdir()
        for i in range(4):
            Image.new("RGB", (64, 64), (i, i, i)).save(bigger / f"{i}.png")
        Trainer(TrainOptions(data=str(bigger), out=str(tmp_path / "runs"), resume_from=str(trained), **TINY),
                log=quiet)
    with pytest.raises(BadInput, match=r"the network has cbase 512; leave the option out or match it"):
        Trainer(TrainOptions(data=str(faces), out=str(tmp_path / "runs"), resume_from=str(trained),
                             **{**TINY, "cbase": 1024}), log=quiet)
    with pytest.raises(BadInput, match=r"^freezed 99: D has \d+ layers"):
        Trainer(TrainOptions(data=str(faces), out=str(tmp_path / "runs"), resume_from=str(trained), freezed=99,
                             **TINY), log=quiet)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
