"""The encoder: its output (shape, w_avg at start), training (the latent loss falls; resume goes on), its file
(round trip, fp16, another network's refused) and `project --encoder` on a tiny network."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.encoder.encode import encode, run_encode
from facegen_cli.encoder.model import Encoder, offset_norm
from facegen_cli.encoder.store import check_network, find_encoder, load_encoder, save_encoder
from facegen_cli.encoder.train import EncoderTrainer, EncoderTrainOptions, train_encoder
from facegen_cli.errors import BadInput, BadParameter
from facegen_cli.latent.project import image_stats
from facegen_cli.latent.tuning import TuneOptions
from facegen_cli.networks import load_network
from real_faces import celeba_faces
from tiny_nets import tiny_checkpoint

pytestmark = pytest.mark.usefixtures("private_cache")
SMALL = {"channel_base": 256, "channel_max": 32, "features": 64}  # a small encoder keeps the tests quick


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def faces(count: int) -> torch.Tensor:
    """Real 32 px faces as NCHW in [-1, 1]."""
    return torch.from_numpy(np.stack([np.asarray(f) for f in celeba_faces(count, size=32, first=9000)])).permute(
        0, 3, 1, 2).float() / 127.5 - 1


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("net") / "net.safetensors", seed=5)


def options(**changes) -> EncoderTrainOptions:
    return EncoderTrainOptions(**{"batch": 4, "perceptual_weight": 0.0, "encoder": SMALL, **changes})


def test_an_untrained_encoder_answers_w_avg_in_the_networks_shape(net_file):
    G = load_network(str(net_file)).G_ema
    encoder = EncoderTrainer(load_network(str(net_file)), options()).encoder.eval()
    with torch.no_grad():
        ws = encoder(faces(3))
    assert ws.shape == (3, G.num_ws, G.w_dim)
    assert torch.equal(ws, G.mapping.w_avg.expand(3, G.num_ws, -1))
    assert offset_norm(ws).abs().max() == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_few_steps_lower_the_latent_loss(net_file, seed):
    trainer = EncoderTrainer(load_network(str(net_file)), options(batch=8, lr=3e-3, seed=seed))
    images, true_ws = trainer.batch(10_000)  # a batch no training step draws

    def latent_loss() -> float:
        with torch.no_grad():
            return float((trainer.encoder(images) - true_ws).square().sum(2).mean() / trainer.w_std ** 2)

    before = latent_loss()
    for _ in range(25):
        trainer.step()
    assert latent_loss() < 0.8 * before


def test_the_file_round_trips_and_training_resumes(net_file, tmp_path):
    net = load_network(str(net_file))
    path, record = train_encoder(net, tmp_path / "e.safetensors", options(kimg=0.008), data=None)
    assert record["steps"] == 2 and record["options"]["encoder"] == SMALL
    found = load_encoder(path)
    trainer = EncoderTrainer(net, options())
    assert found.network_id == net.network_id and found.encoder.kwargs == {**trainer.encoder.kwargs, **SMALL}
    assert found.optimizer["state"][0]["step"] == 2
    assert not found.encoder.training and not any(p.requires_grad for p in found.encoder.parameters())
    half = save_encoder(tmp_path / "half.safetensors", found.encoder, found.network_id, found.training, half=True)
    shipped = load_encoder(half)
    assert shipped.optimizer is None and shipped.training == found.training
    for (name, a), b in zip(found.encoder.state_dict().items(), shipped.encoder.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), name
    _, record = train_encoder(net, None, options(kimg=0.016), resume=path)  # out: the file it resumed
    assert record["steps"] == 4 and load_encoder(path).optimizer["state"][0]["step"] == 4


def test_training_starts_from_another_networks_encoder_of_the_same_sizes(net_file, tmp_path):
    other = load_network(str(tiny_checkpoint(tmp_path / "other.safetensors", seed=6)))
    net = load_network(str(net_file))
    assert other.network_id != net.network_id
    path, _ = train_encoder(other, tmp_path / "e.safetensors", options(kimg=0.008))
    before = load_encoder(path).encoder
    trainer = EncoderTrainer(net, options(), start_from=path)
    images = faces(2)
    with torch.no_grad():  # the same offsets from w_avg, now this network's w_avg
        moved = trainer.encoder.eval()(images) - net.G_ema.mapping.w_avg
        assert torch.allclose(moved, before(images) - other.G_ema.mapping.w_avg, atol=1e-6)
    assert trainer.record["started_from"] == {"network_id": other.network_id, "file": "e.safetensors", "kimg": 0.008,
                                              "steps": 2, "seconds": load_encoder(path).training["seconds"]}
    assert trainer.record["kimg"] == 0 and not trainer.optimizer.state
    out, record = train_encoder(net, tmp_path / "new.safetensors", options(kimg=0.008), start_from=path)
    assert load_encoder(out).network_id == net.network_id and record["started_from"]["network_id"] == other.network_id
    with pytest.raises(BadParameter, match="either a file to resume or one to start from"):
        EncoderTrainer(net, options(), resume=out, start_from=path)
    wide = save_encoder(tmp_path / "wide.safetensors", Encoder(32, 3, 64, net.G_ema.num_ws + 1, **SMALL), "ab", {})
    result = run("encoder", "train", net_file, "--start-from", wide, "--kimg", "0.004", "-o", tmp_path / "x.safetensors")
    assert result.exit_code == 2 and "wide.safetensors: its image and latent sizes differ" in result.output
    assert not (tmp_path / "x.safetensors").exists()


def test_another_networks_encoder_is_refused(net_file, tmp_path):
    net = load_network(str(net_file))
    path = save_encoder(tmp_path / "e.safetensors", Encoder(32, 3, 64, net.G_ema.num_ws, **SMALL), "0123abcd", {})
    with pytest.raises(BadInput, match="an encoder for network 0123abcd, not for .*net.safetensors"):
        check_network(load_encoder(path), net)
    photo = tmp_path / "face.png"
    next(celeba_faces(1, size=32, first=9000)).save(photo)
    result = run("project", photo, "-n", net_file, "--encoder", path, "--align", "none", "-o", tmp_path / "out")
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "facegen: error:" in result.output and "0123abcd" in result.output
    with pytest.raises(Exception, match="no encoder ships for network"):
        find_encoder("default", net)


def test_project_with_an_encoder_writes_its_files(net_file, tmp_path):
    net = load_network(str(net_file))
    enc_file, _ = train_encoder(net, tmp_path / "e.safetensors", options(kimg=0.004))
    photo = tmp_path / "face.png"
    next(celeba_faces(1, size=32, first=9001)).save(photo)
    out = tmp_path / "out"
    result = run("project", photo, "-n", net_file, "--encoder", enc_file, "--align", "none", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert [p.split("/")[-1] for p in stats["paths"]] == ["face-target.png", "face-projected.png",
                                                           "face-projected.npy"]
    assert stats["steps"] == 0 and np.isfinite(stats["psnr_db"])
    latent = np.load(out / "face-projected.npy")
    target = np.asarray(Image.open(out / "face-target.png"))
    assert np.allclose(latent, encode(net, load_encoder(enc_file), target)[0], atol=1e-5)
    refused = run("project", photo, "-n", net_file, "--encoder", enc_file, "--steps", 5, "-o", out)
    assert refused.exit_code == 2 and "--encoder gives the latent in one forward pass" in refused.output


def test_tuning_starts_from_the_encoders_latent(net_file, tmp_path):
    net = load_network(str(net_file))
    enc_file, _ = train_encoder(net, tmp_path / "e.safetensors", options(kimg=0.004))
    photo = tmp_path / "face.png"
    next(celeba_faces(1, size=32, first=9002)).save(photo)
    paths, stats = run_encode(net, photo, tmp_path / "out", enc_file, how="none",
                              tune_opts=TuneOptions(steps=2, perceptual_weight=0.0))
    assert [p.name for p in paths][-2:] == ["face-tuned.png", "face-tuned.safetensors"]
    target = np.asarray(Image.open(tmp_path / "out" / "face-target.png"))
    pivot, image, _ = encode(net, load_encoder(enc_file), target)
    assert np.allclose(np.load(tmp_path / "out" / "face-projected.npy"), pivot, atol=1e-5)
    assert stats["pivot"]["psnr_db"] == pytest.approx(image_stats(image, target)["psnr_db"])
