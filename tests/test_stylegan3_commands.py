"""Every latent command on a StyleGAN3 network, through the same code as StyleGAN2: published names,
mix (layer groups by each layer's band), SeFa on the synthesis layers' style affines, edit,
interpolate, project (no noise maps) and fid."""
from __future__ import annotations

import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import nvidia_layout as nl
from facegen_cli import networks
from facegen_cli.checkpoint import save_checkpoint
from facegen_cli.cli.main import app
from facegen_cli.latent.directions import Direction, save_direction, sefa, store_dir
from facegen_cli.latent.interpolate import morph_frames
from facegen_cli.latent.project import ProjectOptions, project
from facegen_cli.latent.layers import resolve_layers, w_resolutions
from facegen_cli.latent.sources import read_latent
from facegen_cli.models.stylegan3 import Generator
from facegen_cli.networks import load_network
from facegen_cli.sampler import Sampler
from facegen_cli.specs import parse_layers
from tiny_nets import D_KWARGS, SG3_KWARGS, SG3_R, tiny_D, tiny_sg3

pytestmark = pytest.mark.usefixtures("private_cache")

# NVIDIA's StyleGAN3 files (stylegan3 README), all in one NGC folder.
NVIDIA_SG3_FILES = [f"stylegan3-{cfg}-{data}.pkl" for cfg in "tr" for data in (
    "ffhq-1024x1024", "ffhqu-256x256", "ffhqu-1024x1024", "metfaces-1024x1024", "metfacesu-1024x1024",
    "afhqv2-512x512")]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegen: error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def sg3_path(tmp_path_factory):
    """A tiny StyleGAN3-T checkpoint (16 px, 8 W+ entries)."""
    return save_checkpoint(tmp_path_factory.mktemp("sg3") / "sg3t.safetensors", "stylegan3", SG3_KWARGS, tiny_sg3(0))


@pytest.fixture(scope="module")
def sg3_net(sg3_path):
    return load_network(str(sg3_path))


def test_published_stylegan3_names(tmp_path, monkeypatch):
    """Each published file has a short name; a cached file is used without touching the network,
    and offline a missing one is one line saying where to put it."""
    urls = {name: url for name, url in networks.PUBLISHED.items() if name.startswith("sg3-")}
    folder = "https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/"
    assert sorted(url.removeprefix(folder) for url in urls.values()) == sorted(NVIDIA_SG3_FILES)
    assert urls["sg3-t-ffhq-1024"] == folder + "stylegan3-t-ffhq-1024x1024.pkl"
    assert urls["sg3-r-afhqv2-512"] == folder + "stylegan3-r-afhqv2-512x512.pkl"

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    dest = tmp_path / "cache" / "networks" / "stylegan3-r-ffhqu-256x256.pkl"
    missing = run("info", "sg3-r-ffhqu-256")
    assert missing.exit_code == 1
    line = one_error_line(missing)
    assert str(dest) in line and urls["sg3-r-ffhqu-256"] in line and not dest.exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {**SG3_KWARGS, **SG3_R}
    d_kwargs = dict(D_KWARGS, img_resolution=16)
    nl.snapshot_pickle(dest, tiny_sg3(5, **SG3_R), kwargs, D=tiny_D(1, **d_kwargs), D_kwargs=d_kwargs, flavour="sg3")
    found = run("info", "sg3-r-ffhqu-256")
    assert found.exit_code == 0, found.stderr
    assert {"architecture: stylegan3", "config: R", "resolution: 16", "num_ws: 8"} <= set(found.stdout.splitlines())


def test_layer_groups_follow_each_layers_band():
    """StyleGAN3 1024 (16 W+ entries): coarse 0-3, middle 4-6, fine 7-15, as StyleGAN2's 4-8 / 16-32 / 64+ px."""
    with torch.device("meta"):
        G = Generator(img_resolution=1024)
    assert w_resolutions(G) == [4, 4, 4, 8, 16, 16, 32, 64, 64, 128, 256, 256, 512, 1024, 1024, 1024]
    groups = {name: resolve_layers(G, parse_layers(name)) for name in ("coarse", "middle", "fine")}
    assert groups == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6], "fine": list(range(7, 16))}
    with torch.device("meta"):
        G256 = Generator(img_resolution=256)
    assert resolve_layers(G256, parse_layers("middle")) == [5, 6, 7, 8]
    assert resolve_layers(18, parse_layers("coarse")) == [0, 1, 2, 3]  # a bare W+ length counts as StyleGAN2


def test_mix_takes_the_middle_entries_from_b(sg3_path, sg3_net, tmp_path):
    G = sg3_net.G_ema
    assert w_resolutions(G) == [4, 4, 4, 8, 8, 16, 16, 16]  # tiny 16 px: middle is 5-7, no fine layers
    result = run("mix", "seed:1", "seed:2", "--layers", "middle", "--save-latents", "--network", sg3_path,
                 "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    sampler = Sampler(sg3_net)
    a, b = (read_latent(sampler, s) for s in (1, 2))
    mixed = np.load(tmp_path / "mix-seed0001-seed0002.npy")
    assert np.array_equal(mixed[:5], a[:5]) and np.array_equal(mixed[5:], b[5:]) and not np.allclose(a[5:], b[5:])
    image = np.asarray(Image.open(tmp_path / "mix-seed0001-seed0002.png"))
    assert np.array_equal(image, sampler.images(mixed[None])[0])
    assert not np.array_equal(image, sampler.images(a[None])[0])
    fine = run("mix", "seed:1", "seed:2", "--layers", "fine", "--network", sg3_path, "--out", tmp_path / "f")
    assert fine.exit_code == 2 and "has no fine layers" in one_error_line(fine)


def test_sefa_factorises_the_synthesis_layers_style_affines(sg3_path, sg3_net, tmp_path):
    G = sg3_net.G_ema
    convs = [getattr(G.synthesis, name) for name in G.synthesis.layer_names[:-1]]  # ToRGB left out
    A = np.concatenate([(c.affine.weight * c.affine.weight_gain).double().numpy() for c in convs])
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(A.T @ A)
    result = run("directions", "sefa", sg3_path, "--top", "3", "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    for rank in range(3):
        got = np.load(tmp_path / f"sefa-{rank:02d}.npy")
        assert abs(float(got @ vectors[:, -1 - rank])) == pytest.approx(1, abs=1e-5)
    coarse = resolve_layers(G, parse_layers("coarse"))  # W+ 0-4: the input's transform is skipped
    coarse_vectors, _ = sefa(sg3_net, 2, coarse)
    B = A[: sum(c.affine.weight.shape[0] for c in convs[:4])]  # entries 1-4 are L0-L3
    assert abs(float(coarse_vectors[0] @ np.linalg.eigh(B.T @ B)[1][:, -1])) == pytest.approx(1, abs=1e-5)
    refused = run("directions", "sefa", sg3_path, "--layers", "0", "--out", tmp_path / "r")
    assert refused.exit_code == 2 and "input transform" in one_error_line(refused)


def test_edit_moves_along_a_stored_direction(sg3_path, sg3_net, tmp_path):
    vector = np.random.RandomState(0).randn(16).astype(np.float32)
    vector /= np.linalg.norm(vector)
    save_direction(Direction("smile", vector, sg3_net.network_id, None, {"method": "fit"}), store_dir(sg3_net))
    result = run("edit", "seed:3", "-d", "smile", "--strength", "2", "--layers", "coarse", "--save-latents",
                 "--network", sg3_path, "--out", tmp_path)
    assert result.exit_code == 0, result.stderr
    sampler = Sampler(sg3_net)
    ws = read_latent(sampler, 3)
    edited = np.load(tmp_path / "seed0003-smile_+2.npy")
    assert np.allclose(edited[:5], ws[:5] + 2 * vector, atol=1e-6) and np.array_equal(edited[5:], ws[5:])
    image = np.asarray(Image.open(tmp_path / "seed0003-smile_+2.png"))
    assert np.array_equal(image, sampler.images(edited[None])[0])


def test_interpolate_in_w(sg3_net):
    sampler = Sampler(sg3_net)
    keys = np.stack([read_latent(sampler, s) for s in (1, 2)])
    frames = morph_frames(sampler, keys, 3, False, "w")
    assert frames.shape == (3, 16, 16, 3)
    assert np.array_equal(frames[0], sampler.images(keys[:1])[0])
    assert np.array_equal(frames[1], sampler.images(keys.mean(0, keepdims=True))[0])


@pytest.mark.slow  # ~2.5 min with the machine loaded 15x; the recipe itself is held by test_latent_project
def test_project_without_noise_maps(tmp_path):
    """StyleGAN3 has no noise inputs: projection optimises W+ alone and gets much closer to the target."""
    torch.manual_seed(0)
    G = Generator(**SG3_KWARGS).eval()
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, G.z_dim), None)[:, 0].mean(0))
    net = load_network(save_checkpoint(tmp_path / "smooth.safetensors", "stylegan3", SG3_KWARGS, G))
    sampler = Sampler(net)
    target = sampler.images(read_latent(sampler, 5)[None])[0]
    start = sampler.images(G.mapping.w_avg.numpy()[None, None].repeat(G.num_ws, 1))[0]
    ws, image, stats = project(net, target, ProjectOptions(steps=60, wplus=True, perceptual_weight=0))
    assert ws.shape == (8, 16) and np.isfinite(ws).all()
    mse = [float(((x.astype(np.float64) - target) ** 2).mean()) for x in (start, image)]
    # target seed 5, 60 steps: the projection is at least twice closer than the mean-W start
    assert mse[1] < mse[0] / 2 and stats["psnr_db"] == pytest.approx(stats["psnr_db_network_noise"])


@pytest.mark.slow  # loads Inception: ~1.5 min with the machine loaded 15x
def test_fid_of_a_stylegan3_network_equals_its_images_saved(sg3_path, sg3_net, tmp_path):
    from facegen_cli.images import save_image
    from facegen_cli.metrics.fid import compute_fid
    from facegen_cli.metrics.inception import InceptionFeatures

    seeds = list(range(6))
    folder, other = tmp_path / "same", tmp_path / "other"
    for dest, chosen in ((folder, seeds), (other, list(range(100, 106)))):
        dest.mkdir()
        images = np.concatenate(list(Sampler(sg3_net, psi=0.7, batch=6).image_batches(chosen)))
        for seed, image in zip(chosen, images):
            save_image(image, dest / f"seed{seed:04d}.png")
    extractor = InceptionFeatures("clean")
    same = compute_fid(sg3_path, folder, seeds=seeds, psi=0.7, batch=6, extractor=extractor)
    apart = compute_fid(sg3_path, other, seeds=seeds, psi=0.7, batch=6, extractor=extractor)
    assert same.count_a == 6 and abs(same.fid) < 1e-3 < apart.fid
