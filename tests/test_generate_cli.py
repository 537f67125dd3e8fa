"""`facegen generate` and `facegen info` through the CLI, with a tiny checkpoint."""
from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from facegen_cli import networks
from facegen_cli.cli.main import app
from facegen_cli.networks import load_checkpoint
from facegen_cli.sampler import Sampler, seed_to_z
from facegen_cli.specs import parse_seeds
from tiny_nets import tiny_checkpoint


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEGEN_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("net") / "tiny.safetensors")


def run(*args, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def test_generate_writes_one_png_per_seed_identically_twice(tmp_path, network):
    out = tmp_path / "out"
    result = run("generate", "--network", network, "--seeds", "0-2,7", "--out", out, "--batch", "3")
    assert result.exit_code == 0, result.stderr
    names = ["seed0000.png", "seed0001.png", "seed0002.png", "seed0007.png"]
    assert result.stdout.splitlines() == [str(out / n) for n in names]
    assert sorted(p.name for p in out.iterdir()) == names
    img = Image.open(out / "seed0007.png")
    assert img.size == (32, 32) and img.mode == "RGB"
    first = {n: (out / n).read_bytes() for n in names}
    again = tmp_path / "again"
    assert run("generate", "--network", network, "--seeds", "0-2,7", "--out", again, "--batch", "3").exit_code == 0
    assert {n: (again / n).read_bytes() for n in names} == first
    assert first["seed0000.png"] != first["seed0001.png"]
    # Another batch size draws the same images (up to float rounding in the batched matmuls).
    single = tmp_path / "single"
    assert run("generate", "--network", network, "--seeds", "7", "--out", single, "--batch", "1").exit_code == 0
    diff = np.asarray(Image.open(single / "seed0007.png"), np.int16) - np.asarray(Image.open(out / "seed0007.png"))
    assert np.abs(diff).max() <= 1


def test_images_match_the_network_for_the_seed(tmp_path, network):
    """seed -> z is NumPy's RandomState(seed).randn, and the PNG holds G(z) rounded NVIDIA's way."""
    for seed in (0, 42, 2 ** 32 - 1):
        assert np.array_equal(seed_to_z(seed, 64), np.random.RandomState(seed).randn(64))
    out = tmp_path / "out"
    assert run("generate", "-n", network, "-s", "42", "--psi", "0.7", "-o", out).exit_code == 0
    G = load_checkpoint(network).G_ema
    z = torch.from_numpy(np.random.RandomState(42).randn(1, 64)).float()
    with torch.no_grad():
        img = G(z, truncation_psi=0.7, noise_mode="const")
    expected = (img * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(out / "seed0042.png")), expected)


def test_noise_modes_and_psi_change_the_image(tmp_path, network):
    net = load_checkpoint(network)
    base = next(Sampler(net).samples([5])).image
    assert np.array_equal(next(Sampler(net).samples([5])).image, base)
    assert not np.array_equal(next(Sampler(net, noise_mode="none").samples([5])).image, base)
    assert not np.array_equal(next(Sampler(net, psi=0.5).samples([5])).image, base)
    rand = [next(Sampler(net, noise_mode="random").samples([5])).image for _ in range(2)]
    assert np.array_equal(rand[0], rand[1])  # random noise is seeded by the image's seed
    assert not np.array_equal(rand[0], base)
    # Each image's noise depends only on its own seed, not on its neighbours.
    both = [s.image for s in Sampler(net, noise_mode="random").samples([5, 6])]
    assert np.array_equal(both[0], rand[0])


def test_grid(tmp_path, network):
    out = tmp_path / "grid"
    result = run("generate", "-n", network, "--seeds", "0-3", "--grid", "2x2", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["grid.png"]
    assert result.stdout.splitlines() == [str(out / "grid.png")]
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (64, 64, 3)
    single = tmp_path / "single"
    assert run("generate", "-n", network, "--seeds", "0-3", "--out", single).exit_code == 0
    assert np.array_equal(grid[32:, :32], np.asarray(Image.open(single / "seed0002.png")))
    result = run("generate", "-n", network, "--seeds", "0-4", "--grid", "2x2", "--out", tmp_path / "toosmall")
    assert result.exit_code == 2
    assert result.stderr == "facegen: error: --grid 2x2 does not fit 5 seeds\n"  # the engine's check, named by the option
    assert not (tmp_path / "toosmall").exists()


def test_save_latents_and_json(tmp_path, network):
    out = tmp_path / "out"
    result = run("generate", "-n", network, "--seeds", "3,4", "--save-latents", "--json", "--psi", "0.5",
                 "--out", out)
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["seed"] for r in records] == [3, 4]
    for r in records:
        assert r["path"] == str(out / f"seed{r['seed']:04d}.png") and r["psi"] == 0.5
        assert r["noise_mode"] == "const"
        ws = np.load(r["latent"])
        assert ws.shape == (8, 64) and ws.dtype == np.float32
    net = load_checkpoint(network)
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(64) for s in (3, 4)])).float()
    with torch.no_grad():
        expected = net.G_ema.mapping(z, None, truncation_psi=0.5)[1].numpy()
    np.testing.assert_array_equal(np.load(out / "seed0004.npy"), expected)


def test_jpeg_format(tmp_path, network):
    out = tmp_path / "jpg"
    assert run("generate", "-n", network, "-s", "1", "--format", "jpg", "-o", out).exit_code == 0
    assert Image.open(io.BytesIO((out / "seed0001.jpg").read_bytes())).format == "JPEG"


def test_seeds_from_stdin(tmp_path, network):
    out = tmp_path / "out"
    result = run("generate", "-n", network, "--seeds", "-", "--out", out, input="5\n9, 11\n")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["seed0005.png", "seed0009.png", "seed0011.png"]


def test_parse_seeds():
    assert parse_seeds("0-3,120,200-202") == [0, 1, 2, 3, 120, 200, 201, 202]
    assert parse_seeds(" 7 ") == [7]


BAD_USAGE = [
    (["--seeds", "5-2"], "backwards"),
    (["--seeds", "a-b"], "malformed seed"),
    (["--seeds", ""], "empty"),
    (["--seeds", "1,,2"], "malformed seed"),
    (["--seeds", "-3"], "malformed seed"),
    (["--psi", "3"], "psi"),
    (["--psi", "-2.5"], "psi"),
    (["--grid", "2by2"], "grid"),
    (["--noise-mode", "loud"], "noise"),
    (["--format", "gif"], "format"),
    (["--device", "tpu"], "device"),
]


@pytest.mark.parametrize("args,message", BAD_USAGE, ids=[" ".join(a) for a, _ in BAD_USAGE])
def test_bad_usage_exits_2_with_one_line(tmp_path, network, args, message):
    out = tmp_path / "out"
    result = run("generate", "-n", network, "--out", out, *args, input="")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegen: error:"), result.stderr
    assert message in lines[0]
    assert result.stdout == ""
    assert not out.exists() or not any(out.iterdir())


def test_out_must_be_a_folder(tmp_path, network):
    out = tmp_path / "taken.png"
    out.write_bytes(b"keep")
    result = run("generate", "-n", network, "-s", "0", "--out", out)
    assert result.exit_code == 2 and result.stderr == f"facegen: error: --out {out}: exists and is not a folder\n"
    assert out.read_bytes() == b"keep"


def test_empty_stdin_is_bad_usage(tmp_path, network):
    result = run("generate", "-n", network, "--seeds", "-", "--out", tmp_path / "o", input="  \n")
    assert result.exit_code == 2 and "empty" in result.stderr


@pytest.mark.parametrize("kind", ["unknown-name", "text-file", "missing-file", "folder", "truncated"])
def test_bad_network_is_one_line(tmp_path, network, kind):
    """A network that is not there (or a folder) is bad usage (2); one that cannot be read is a failure (1)."""
    if kind == "unknown-name":
        spec = "ffhq-2048"
    elif kind == "text-file":
        spec = tmp_path / "notes.txt"
        spec.write_text("not a network\n")
    elif kind == "missing-file":
        spec = tmp_path / "nowhere.safetensors"
    elif kind == "folder":
        spec = tmp_path
    else:
        spec = tmp_path / "cut.safetensors"
        spec.write_bytes(network.read_bytes()[:3000])
    out = tmp_path / "out"
    result = run("generate", "-n", spec, "--seeds", "0-3", "--out", out)
    assert result.exit_code == (2 if kind in ("unknown-name", "missing-file", "folder") else 1), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegen: error:"), result.stderr
    assert str(spec) in lines[0]
    assert not out.exists()


def test_published_name_offline_fails_fast_saying_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setitem(networks.PUBLISHED, "ffhq-256", "http://127.0.0.1:9/stylegan2-ffhq-256x256.pkl")
    cache = tmp_path / "cache"
    start = time.perf_counter()
    result = run("generate", "-n", "ffhq-256", "--seeds", "0", "--out", tmp_path / "out")
    assert time.perf_counter() - start < 10
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegen: error:")
    expected_dest = cache / "networks" / "stylegan2-ffhq-256x256.pkl"
    assert str(expected_dest) in lines[0] and "127.0.0.1:9" in lines[0]
    assert not expected_dest.exists() and list((cache / "networks").iterdir()) == []
    assert not (tmp_path / "out").exists()


def test_published_name_uses_the_cached_file(tmp_path, monkeypatch, network):
    """Once the file is in the cache (downloaded or put there by hand), no network access is needed."""
    from nvidia_layout import snapshot_pickle
    from tiny_nets import G_KWARGS, tiny_G

    monkeypatch.setitem(networks.PUBLISHED, "ffhq-256", "http://127.0.0.1:9/stylegan2-ffhq-256x256.pkl")
    dest = tmp_path / "cache" / "networks" / "stylegan2-ffhq-256x256.pkl"
    dest.parent.mkdir(parents=True)
    snapshot_pickle(dest, tiny_G(11), G_KWARGS)
    result = run("info", "ffhq-256")
    assert result.exit_code == 0, result.stderr
    assert "resolution: 32" in result.stdout and "provenance.source: nvidia-pickle" in result.stdout


def test_info(network):
    result = run("info", network)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for expected in ("architecture: stylegan2", "resolution: 32", "w_dim: 64", "z_dim: 64", "num_ws: 8",
                     "conditioning: 0", "provenance.dataset: tiny-test"):
        assert expected in lines, expected
    details = json.loads(run("info", "--network", network, "--json").stdout)
    assert details["num_ws"] == 8 and details["settings"]["channel_base"] == 1024


def test_info_unknown_network():
    result = run("info", "no-such-net")
    assert result.exit_code == 2 and result.stderr.startswith("facegen: error: no-such-net")


def test_conditional_generation(tmp_path):
    net = tiny_checkpoint(tmp_path / "cond.safetensors", c_dim=3)
    out = tmp_path / "out"
    assert run("generate", "-n", net, "-s", "0", "--label", "1", "-o", out / "a").exit_code == 0
    assert run("generate", "-n", net, "-s", "0", "--label", "0,0,1", "-o", out / "b").exit_code == 0
    assert (out / "a" / "seed0000.png").read_bytes() != (out / "b" / "seed0000.png").read_bytes()
    for args, message in ((["--label", "3"], "outside"), ([], "conditional"), (["--label", "1,0"], "takes 3")):
        result = run("generate", "-n", net, "-s", "0", "-o", out / "c", *args)
        assert result.exit_code == 2 and message in result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("facegen: error:")
    assert not (out / "c").exists()


def test_version_and_help():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.startswith("facegen ")
    result = run("--help")
    for command in ("generate", "convert", "info"):
        assert command in result.stdout
