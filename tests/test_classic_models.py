"""The classic families' networks and options: DCGAN (spectral norm, pixel norm, minibatch stddev),
cGAN, ACGAN, VAE and WGAN-GP, their registration, schedules and command-line checks."""
from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput
from facegen_cli.models import cgan, dcgan, vae
from facegen_cli.models.registry import get_architecture
from facegen_cli.train.classic_losses import gradient_penalty, kl_divergence
from facegen_cli.train.families import FAMILIES, WGAN_N_CRITIC
from facegen_cli.train.options import TrainOptions, resolve

CLASSIC = ("dcgan", "cgan", "acgan", "vae", "wgan-gp")


@pytest.mark.parametrize("res", [32, 64, 128])
def test_generator_interface_and_shapes(res: int) -> None:
    G = dcgan.Generator(z_dim=32, c_dim=5, img_resolution=res, width=8)
    assert (G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (32, 5, res, 3)
    img = G(torch.randn(2, 32), torch.ones(2, 5), truncation_psi=0.5)
    assert img.shape == (2, 3, res, res) and img.abs().max() <= 1
    D = dcgan.Discriminator(c_dim=5, img_resolution=res, width=8, mbstd=True)
    assert D(img, torch.ones(2, 5)).shape == (2, 1)


def test_resolution_outside_range_is_refused() -> None:
    with pytest.raises(ValueError, match="32, 64, 128"):
        dcgan.Generator(img_resolution=256)


def test_truncation_scales_z_toward_zero() -> None:
    G = dcgan.Generator(z_dim=16, img_resolution=32, width=8).eval()
    z = torch.randn(3, 16)
    assert torch.equal(G(z, truncation_psi=0.0), G(torch.zeros_like(z)))
    assert torch.allclose(G(z, truncation_psi=0.5), G(z * 0.5))


def test_pixel_norm_gives_unit_rms_features_after_every_block() -> None:
    G = dcgan.Generator(z_dim=16, img_resolution=32, width=8, pixel_norm=True)
    norms = [m for m in G.modules() if isinstance(m, dcgan.PixelNorm)]
    assert len(norms) == 3  # after every conv but the output
    feats = []
    handle = norms[1].register_forward_hook(lambda m, i, o: feats.append(o))
    G(torch.randn(4, 16))
    handle.remove()
    rms = feats[0].square().mean(dim=1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=1e-4)


def test_spectral_norm_bounds_every_discriminator_layer() -> None:
    D = dcgan.Discriminator(img_resolution=32, width=8, spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    for _ in range(30):  # power iterations converge during training-mode forwards
        D(torch.randn(4, 3, 32, 32))
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_minibatch_stddev_makes_d_see_the_batch() -> None:
    torch.manual_seed(0)
    x, others = torch.randn(1, 3, 32, 32), torch.randn(3, 3, 32, 32)
    for mbstd in (False, True):
        D = dcgan.Discriminator(img_resolution=32, width=8, spectral_norm=True, mbstd=mbstd).eval()
        a = D(torch.cat([x, others]))[0]
        b = D(torch.cat([x, others * 3]))[0]
        assert torch.allclose(a, b) != mbstd


def test_acgan_discriminator_has_auxiliary_head() -> None:
    D = cgan.ACGANDiscriminator(c_dim=40, img_resolution=32, width=8)
    img = torch.randn(3, 3, 32, 32)
    logits, aux = D.heads(img)
    assert logits.shape == (3, 1) and aux.shape == (3, 40)
    assert torch.equal(D(img, torch.zeros(3, 40)), logits)
    assert D.classify(img).min() >= 0 and D.classify(img).max() <= 1


def test_vae_encoder_reparameterises() -> None:
    E = vae.Encoder(z_dim=16, img_resolution=32, width=8)
    z, mu, logvar = E.sample(torch.randn(4, 3, 32, 32))
    assert z.shape == mu.shape == logvar.shape == (4, 16)
    assert not torch.equal(z, mu)
    assert kl_divergence(torch.zeros(2, 16), torch.zeros(2, 16)).abs().max() == 0


def test_gradient_penalty_is_zero_for_a_unit_slope_critic() -> None:
    class Linear(torch.nn.Module):
        def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :1]

    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    assert gradient_penalty(Linear(), real, fake, torch.zeros(4, 0)).abs().max() < 1e-6


@pytest.mark.parametrize("name", CLASSIC)
def test_families_are_registered_without_wplus(name: str) -> None:
    arch = get_architecture(name)
    assert not arch.has_wplus and FAMILIES[name].arch == name


def _opts(model: str, **kwargs) -> TrainOptions:
    return resolve(TrainOptions(data="unused", model=model, **kwargs), 32, 1, FAMILIES[model].defaults)


def test_classic_defaults() -> None:
    dc, wgan, vae_opts, sg2 = _opts("dcgan"), _opts("wgan-gp"), _opts("vae"), _opts("stylegan2")
    assert (dc.z_dim, dc.glr, dc.dlr, dc.batch, dc.aug, dc.gamma) == (128, 2e-4, 2e-4, 64, "noaug", 0)
    assert (wgan.glr, wgan.dlr, wgan.gamma) == (1e-4, 1e-4, 10)
    assert vae_opts.glr == 1e-3 and sg2.aug == "ada" and sg2.z_dim == 256
    assert _opts("dcgan", z_dim=100, glr=1e-3).z_dim == 100  # the command line wins


def test_schedules_and_optimisers() -> None:
    for name, betas, g_interval, lr in (("dcgan", (0.5, 0.999), 1, 2e-4), ("wgan-gp", (0.0, 0.9), WGAN_N_CRITIC, 1e-4)):
        opts = _opts(name)
        G_kwargs, D_kwargs = FAMILIES[name].build(opts, 32, 3, 0)
        arch = get_architecture(name)
        phases = FAMILIES[name].phases(arch.make_G(**G_kwargs), arch.make_D(**D_kwargs), opts)
        assert [(p.name, p.interval) for p in phases] == [("Dmain", 1), ("Gmain", g_interval)]
        assert all(p.opt.defaults["betas"] == betas and p.opt.defaults["lr"] == lr for p in phases)
    critic = dcgan.Discriminator(**FAMILIES["wgan-gp"].build(_opts("wgan-gp"), 32, 3, 0)[1])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    opts = _opts("vae")
    G_kwargs, E_kwargs = FAMILIES["vae"].build(opts, 32, 3, 0)
    G, E = dcgan.Generator(**G_kwargs), vae.Encoder(**E_kwargs)
    (phase,) = FAMILIES["vae"].phases(G, E, opts)
    trained = {id(p) for group in phase.opt.param_groups for p in group["params"]}
    assert trained == {id(p) for p in [*G.parameters(), *E.parameters()]}


@pytest.mark.parametrize("model, kwargs, c_dim, match", [
    ("cgan", {}, 0, "needs labels"),
    ("acgan", {}, 0, "needs labels"),
    ("vae", {"spectral_norm": True}, 0, "spectral_norm: not an option of vae; dcgan"),
    ("dcgan", {"beta": 2.0}, 0, "beta: not an option of dcgan; vae takes it"),
    ("vae", {"recon": "l1"}, 0, "recon must be one of bce, mse, got 'l1'"),
    ("vae", {}, 3, "unconditionally"),
])
def test_build_refuses_what_a_family_cannot_do(model: str, kwargs: dict, c_dim: int, match: str) -> None:
    with pytest.raises(BadInput, match=match):
        FAMILIES[model].build(_opts(model, model_kwargs=kwargs), 32, 3, c_dim)
    with pytest.raises(BadInput, match="trains at 32, 64, 128"):
        FAMILIES["dcgan"].build(_opts("dcgan"), 256, 3, 0)


def test_cli_passes_flags_and_refuses_them_for_stylegan2(tmp_path) -> None:
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        Image.new("RGB", (32, 32), (i * 60, 0, 0)).save(data / f"img{i:08d}.png")
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(data), "--model", "dcgan", "--spectral-norm", "--pixel-norm", "--mbstd",
                                 "--latent", "64", "--width", "16", "--dry-run"])
    assert result.exit_code == 0, result.output
    opts = json.loads(result.stdout)
    assert opts["model_kwargs"] == {"spectral_norm": True, "pixel_norm": True, "mbstd": True, "width": 16}
    assert opts["z_dim"] == 64 and opts["aug"] == "noaug"
    result = runner.invoke(app, ["train", str(data), "--spectral-norm", "--dry-run"])
    assert result.exit_code == 2 and "--spectral-norm" in result.output
    result = runner.invoke(app, ["train", str(data), "--model", "cgan", "--dry-run"])
    assert result.exit_code == 2 and "labels" in result.output
