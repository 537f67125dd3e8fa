"""StyleGAN3 generator: filter design, layer layout, equivariance, checkpoints and generate."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.signal
import scipy.special
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput
from facegen_cli.generate import write_samples
from facegen_cli.metrics.equivariance import generator_eqt, shift_image, translation_psnr
from facegen_cli.models.registry import get_architecture
from facegen_cli.models.stylegan3 import (CONFIG_R_CHANGES, Generator, SynthesisNetwork, config_name,
                                          design_lowpass_filter, kwargs_from_nvidia, layer_schedule)
from facegen_cli.networks import load_checkpoint
from facegen_cli.sampler import Sampler
from facegen_cli.specs import parse_translate
from tiny_nets import tiny_checkpoint

TINY = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, channel_base=256, channel_max=32, num_layers=6)


def tiny_G(cfg: str = "T", seed: int = 0, **kw) -> Generator:
    torch.manual_seed(seed)
    kwargs = {**TINY, **kw}
    if cfg == "R":
        kwargs.update(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=64)
    return Generator(**kwargs).eval()


# Layer names of NVIDIA's networks_stylegan3.SynthesisNetwork at its defaults (T) and with train.py's
# --cfg stylegan3-r changes, as NVIDIA's code names them: L{index}_{size}_{channels}.
NVIDIA_LAYERS = {
    ("T", 256): "36_512 36_512 36_512 52_512 52_512 84_512 84_512 148_512 148_512 148_362 276_256 276_181 276_128 "
                "256_128 256_3",
    ("T", 512): "36_512 36_512 52_512 52_512 84_512 84_512 148_512 148_483 276_323 276_215 532_144 532_96 532_64 "
                "512_64 512_3",
    ("T", 1024): "36_512 36_512 52_512 52_512 84_512 148_512 148_512 276_323 276_203 532_128 1044_81 1044_51 "
                 "1044_32 1024_32 1024_3",
    ("R", 256): "36_1024 36_1024 36_1024 52_1024 52_1024 84_1024 84_1024 148_1024 148_1024 148_724 276_512 276_362 "
                "276_256 256_256 256_3",
    ("R", 512): "36_1024 36_1024 52_1024 52_1024 84_1024 84_1024 148_1024 148_967 276_645 276_431 532_287 532_192 "
                "532_128 512_128 512_3",
    ("R", 1024): "36_1024 36_1024 52_1024 52_1024 84_1024 148_1024 148_1024 276_645 276_406 532_256 1044_161 "
                 "1044_102 1044_64 1024_64 1024_3",
}


@pytest.mark.parametrize("cfg,res", sorted(NVIDIA_LAYERS))
def test_layer_schedule_matches_nvidia_layer_names(cfg, res):
    defaults = dict(channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2,
                    first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10)
    if cfg == "R":
        defaults.update(channel_base=CONFIG_R_CHANGES["channel_base"], channel_max=CONFIG_R_CHANGES["channel_max"])
    specs = layer_schedule(res, 3, **defaults)
    assert " ".join(f"{s.size}_{s.channels}" for s in specs) == NVIDIA_LAYERS[cfg, res]
    assert specs[-1].sampling_rate == res and specs[-1].cutoff == res / 2


def test_resampling_of_the_1024_t_network():
    """Up/down factors and paddings of NVIDIA's stylegan3-t 1024 layers."""
    synthesis = SynthesisNetwork(w_dim=4, img_resolution=1024, img_channels=3, channel_base=1024, channel_max=4)
    layers = [getattr(synthesis, n) for n in synthesis.layer_names]
    assert [layer.up_factor for layer in layers] == [2, 2, 4, 2, 4, 4, 2, 4, 2, 4, 4, 2, 2, 2, 1]
    assert [layer.down_factor for layer in layers] == [2] * 14 + [1]
    assert [layer.padding[0] for layer in layers] == [9, 9, -6, 9, -6, -6, 9, -6, 9, -6, -6, 9, 9, -11, 0]
    assert [layer.padding[1] for layer in layers] == [8, 8, -9, 8, -9, -9, 8, -9, 8, -9, -9, 8, 8, -12, 0]
    assert [tuple(layer.up_filter.shape) for layer in layers[:3]] == [(12,), (12,), (24,)]
    assert layers[-1].up_filter is None and layers[-1].down_filter is None


@pytest.mark.parametrize("numtaps,cutoff,width,fs", [(12, 2.0, 5.7, 32), (24, 3.2, 6.1, 64), (12, 512, 190.4, 2048),
                                                     (7, 0.2, 0.3, 1), (40, 10, 1, 64)])
def test_kaiser_filter_is_scipys_firwin(numtaps, cutoff, width, fs):
    expect = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    got = design_lowpass_filter(numtaps, cutoff, width, fs)
    assert got.dtype == torch.float32 and got.shape == (numtaps,)
    np.testing.assert_allclose(got.numpy(), expect, atol=2e-7)


def test_kaiser_filter_frequency_response():
    f = design_lowpass_filter(48, cutoff=8, width=4, fs=64).double().numpy()
    freqs, response = scipy.signal.freqz(f, worN=[0, 8, 10, 14], fs=64)
    gain = np.abs(response)
    assert gain[0] == pytest.approx(1, abs=1e-6)  # unit DC gain
    assert gain[1] == pytest.approx(0.5, abs=0.02)  # -6 dB at the cutoff
    assert gain[3] < 1e-3  # beyond cutoff + width / 2: the stopband


@pytest.mark.parametrize("numtaps,cutoff,width,fs", [(12, 7.2, 4.5, 32), (24, 30.0, 20.3, 128), (9, 2, 3, 16)])
def test_radial_filter_is_a_windowed_jinc(numtaps, cutoff, width, fs):
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    with np.errstate(invalid="ignore", divide="ignore"):
        jinc = np.where(r > 0, scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r), cutoff)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    expect = jinc * np.outer(np.kaiser(numtaps, beta), np.kaiser(numtaps, beta))
    expect /= expect.sum()
    got = design_lowpass_filter(numtaps, cutoff, width, fs, radial=True).numpy()
    np.testing.assert_allclose(got, expect, atol=2e-7)
    np.testing.assert_allclose(got, got.T, atol=1e-7)  # symmetric under transposition and 90-degree turns
    np.testing.assert_allclose(got, np.rot90(got), atol=1e-7)


def test_identity_filter():
    assert design_lowpass_filter(1, 2.0, 1.0, 16) is None


def test_state_dict_layout():
    G = tiny_G("T")
    sd = G.state_dict()
    names = G.synthesis.layer_names
    assert G.num_ws == len(names) + 1 == 8
    assert {"mapping.fc0.weight", "mapping.fc1.bias", "mapping.w_avg", "synthesis.input.weight",
            "synthesis.input.affine.weight", "synthesis.input.transform", "synthesis.input.freqs",
            "synthesis.input.phases"} <= set(sd)
    last = names[-1]
    assert sd[f"synthesis.{last}.weight"].shape == (3, int(names[-2].split("_")[2]), 1, 1)  # ToRGB is 1x1
    assert f"synthesis.{last}.up_filter" not in sd and f"synthesis.{names[0]}.up_filter" in sd
    for name in names:
        assert sd[f"synthesis.{name}.magnitude_ema"].shape == ()
    Gc = Generator(**{**TINY, "c_dim": 5})
    assert Gc.state_dict()["mapping.embed.weight"].shape == (16, 5)
    R = tiny_G("R")
    assert all(getattr(R.synthesis, n).weight.shape[2:] == (1, 1) for n in R.synthesis.layer_names)
    assert config_name({"use_radial_filters": True}) == "R" and config_name({}) == "T"


def test_kwargs_from_nvidia_init_kwargs():
    """The init kwargs NVIDIA's train.py gives a --cfg stylegan3-r generator, as its pickles keep them."""
    nvidia = {"z_dim": 512, "w_dim": 512, "mapping_kwargs": {"num_layers": 2}, "channel_base": 65536,
              "channel_max": 1024, "magnitude_ema_beta": 0.5 ** (32 / 20000), "conv_kernel": 1,
              "use_radial_filters": True, "c_dim": 0, "img_resolution": 256, "img_channels": 3}
    kwargs = kwargs_from_nvidia(nvidia)
    assert kwargs["mapping_layers"] == 2 and "mapping_kwargs" not in kwargs
    assert config_name(kwargs) == "R" and kwargs["conv_kernel"] == 1
    small = kwargs_from_nvidia({**TINY, "mapping_kwargs": {"num_layers": 3, "lr_multiplier": 0.1}})
    G = Generator(**small)
    assert G.mapping.num_layers == 3 and G.mapping.fc0.weight_gain == pytest.approx(0.1 / 4)
    with pytest.raises(ValueError, match="mapping_kwargs.depth, architecture"):
        kwargs_from_nvidia({**nvidia, "architecture": "x", "mapping_kwargs": {"depth": 1}})


def test_demodulation_cancels_weight_and_style_scale_and_input_gain_normalises():
    G = tiny_G("T")
    layer = getattr(G.synthesis, G.synthesis.layer_names[3])
    x = torch.randn([2, layer.in_channels, layer.in_size, layer.in_size])
    w = torch.randn([2, 16])
    with torch.no_grad():
        ref = layer(x, w)
        layer.weight.mul_(3.0)
        layer.affine.weight.mul_(0.5)
        layer.affine.bias.mul_(0.5)
        assert torch.allclose(layer(x, w), ref, atol=1e-5)
        layer.magnitude_ema.fill_(4.0)  # input magnitude tracked as 4: inputs are divided by 2
        assert torch.allclose(layer(x * 2, w), ref, atol=1e-5)
        assert not torch.allclose(layer(x, w), ref, atol=1e-2)


def test_magnitude_ema_tracks_input_power():
    G = tiny_G("T").train()
    z = torch.randn([4, 16])
    first = getattr(G.synthesis, G.synthesis.layer_names[0])
    beta = first.magnitude_ema_beta
    with torch.no_grad():
        ws = G.mapping(z, None)
        features = G.synthesis.input(ws[:, 0])
        G.synthesis(ws, update_emas=True)
    expect = features.square().mean() + (1 - features.square().mean()) * beta
    assert first.magnitude_ema.item() == pytest.approx(expect.item(), rel=1e-5)
    before = first.magnitude_ema.clone()
    with torch.no_grad():
        G.synthesis(ws)
    assert torch.equal(first.magnitude_ema, before)  # only update_emas=True moves it


def test_input_translation_moves_the_fourier_features():
    G = tiny_G("T")
    ws = G.mapping(torch.randn([2, 16]), None)
    inp = G.synthesis.input
    with torch.no_grad():
        ref = inp(ws[:, 0])
        G.synthesis.set_transform(translate=(3 / inp.sampling_rate, -2 / inp.sampling_rate))
        moved = inp(ws[:, 0])
    shifted, mask = shift_image(ref, 3, -2)
    assert torch.allclose(moved * mask, shifted, atol=1e-4)


def test_rotating_an_r_network_by_90_degrees_turns_its_image():
    """Config R (1x1 convolutions, radial filters) commutes with quarter turns exactly."""
    G = tiny_G("R", seed=2)
    ws = G.mapping(torch.randn([2, 16]), None)
    with torch.no_grad():
        img = G.synthesis(ws)
        G.synthesis.set_transform(rotate=90)
        turned = G.synthesis(ws)
    assert img.std() > 0.01
    assert torch.allclose(turned, torch.rot90(img, k=1, dims=[2, 3]), atol=1e-4)
    assert not torch.allclose(turned, img, atol=1e-2)


def test_t_network_is_translation_equivariant_and_stylegan2_like_layers_are_not():
    """EQ-T of a T network against the same network (same weights, same Fourier input) built with
    StyleGAN2-like layers: the leaky ReLU at the layer's own sampling rate, no oversampling, and
    4-tap resampling filters; its output scaled to the same image spread, as PSNR depends on it."""
    kw = dict(seed=1, img_resolution=32, channel_base=512, margin_size=6)
    G = tiny_G("T", **kw)
    aliasing = tiny_G("T", lrelu_upsampling=1, filter_size=2, **kw)
    first = G.synthesis.layer_names[1]
    assert torch.equal(getattr(G.synthesis, first).weight, getattr(aliasing.synthesis, first).weight)
    assert getattr(aliasing.synthesis, first).up_factor == 1  # no oversampling around the non-linearity
    with torch.no_grad():
        ws = G.mapping(torch.randn([4, 16]), None)
        aliasing.synthesis.output_scale *= (G.synthesis(ws).std() / aliasing.synthesis(ws).std()).item()
    eqt = generator_eqt(G, num_samples=4, num_shifts=3)
    assert torch.equal(G.synthesis.input.transform, torch.eye(3))  # restored
    eqt_aliasing = generator_eqt(aliasing, num_samples=4, num_shifts=3)
    assert eqt > 55
    assert eqt > eqt_aliasing + 15


def test_eqt_command_measures_a_stylegan3_network_and_refuses_a_stylegan2_one(tmp_path):
    G = tiny_G("T", seed=5)
    path = save_checkpoint(tmp_path / "sg3.safetensors", "stylegan3", TINY, G)
    result = CliRunner().invoke(app, ["eqt", str(path), "--samples", "3", "--shifts", "2", "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)
    expect = generator_eqt(load_checkpoint(path).G_ema, num_samples=3, num_shifts=2, seed=4)
    assert measured == {"eqt_db": expect, "samples": 3, "shifts": 2, "seed": 4, "psi": 1.0}
    bare = CliRunner().invoke(app, ["eqt", "--network", str(path), "--samples", "3", "--shifts", "2", "--seed", "4"])
    assert bare.stdout == f"{expect:.4f}\n"
    sg2 = tiny_checkpoint(tmp_path / "sg2.safetensors")
    refused = CliRunner().invoke(app, ["eqt", str(sg2)])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [f"facegen: error: {sg2}: a stylegan2 network; EQ-T needs StyleGAN3, "
                                                   "whose input can be translated"]


def test_shift_image_and_psnr():
    img = torch.arange(12.0).reshape(1, 1, 3, 4)
    out, mask = shift_image(img, 1, -1)
    assert out[0, 0].tolist() == [[0, 4, 5, 6], [0, 8, 9, 10], [0, 0, 0, 0]]
    assert mask.sum() == 6
    assert translation_psnr(lambda tx, ty: torch.ones([1, 1, 4, 4]), [(1, 0)], 4) == math.inf


def test_checkpoint_round_trip_and_generate(tmp_path):
    for cfg in "TR":
        G = tiny_G(cfg, seed=3)
        with torch.no_grad():
            G.mapping.w_avg.normal_()
        kwargs = {**TINY, **(dict(conv_kernel=1, use_radial_filters=True, channel_base=512, channel_max=64)
                             if cfg == "R" else {})}
        path = save_checkpoint(tmp_path / f"sg3{cfg}.safetensors", "stylegan3", kwargs, G)
        net = load_checkpoint(path)
        assert net.architecture.has_wplus and get_architecture("stylegan3").make_G is Generator
        samples = list(Sampler(net, psi=0.7, noise_mode="const").samples([0, 7]))
        assert samples[0].image.shape == (16, 16, 3) and samples[0].ws.shape == (G.num_ws, 16)
        z = torch.from_numpy(np.random.RandomState(7).randn(1, 16)).float()
        with torch.no_grad():
            expect = G(z, None, truncation_psi=0.7, noise_mode="none")
        got = torch.from_numpy(samples[1].image).permute(2, 0, 1).float()
        assert (got - (expect[0] * 127.5 + 128).clamp(0, 255).floor()).abs().max() <= 1
        assert got.std() > 1
        random_mode = list(Sampler(net, psi=0.7, noise_mode="random").samples([7]))
        assert np.array_equal(random_mode[0].image, samples[1].image)  # no noise inputs in StyleGAN3


def test_generate_translate_and_rotate(tmp_path):
    G = tiny_G("T", seed=4)
    path = save_checkpoint(tmp_path / "sg3.safetensors", "stylegan3", TINY, G)
    result = CliRunner().invoke(app, ["generate", "--network", str(path), "--seeds", "5", "--psi", "0.8", "--out",
                                      str(tmp_path / "out"), "--translate", "0.25,-0.1", "--rotate", "20", "--json"])
    assert result.exit_code == 0, result.output
    record = [line for line in result.stdout.splitlines() if line.startswith("{")][0]
    assert '"translate": [0.25, -0.1]' in record and '"rotate": 20.0' in record
    z = torch.from_numpy(np.random.RandomState(5).randn(1, 16)).float()
    with torch.no_grad():
        G.synthesis.set_transform((0.25, -0.1), 20)
        expect = ((G(z, None, truncation_psi=0.8) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0]
                  .permute(1, 2, 0).numpy())
    got = np.asarray(Image.open(tmp_path / "out" / "seed0005.png"))
    assert np.abs(got.astype(int) - expect.astype(int)).max() <= 1
    net = load_checkpoint(path)
    list(write_samples(Sampler(net, translate=(0.1, 0.0)), [5], tmp_path / "again"))
    assert torch.equal(net.G_ema.synthesis.input.transform, torch.eye(3))  # restored afterwards
    assert parse_translate("0.25,-0.1") == (0.25, -0.1)
    with pytest.raises(BadInput, match="^translate '0.1'"):
        parse_translate("0.1")
    with pytest.raises(BadInput, match="StyleGAN3"):
        Sampler(load_checkpoint(tiny_checkpoint(tmp_path / "sg2.safetensors")), rotate=5)
