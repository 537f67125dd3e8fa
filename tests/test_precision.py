"""--precision fp32|bf16|auto: how it resolves, the bf16 path against fp32 on tiny nets, the option
reaching the engine from every command, and bf16 training with fp32 master weights."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facegen_cli.cli.main import app
from facegen_cli.errors import BadInput
from facegen_cli.images import save_image
from facegen_cli.latent.directions import Direction, save_direction
from facegen_cli.networks import load_network
from facegen_cli.precision import (FP32_PARTS, Precision, check_precision, cpu_has_native_bf16, resolve_precision,
                                   synthesis_in_precision)
from facegen_cli.sampler import Sampler
from facegen_cli.train.loop import Trainer
from facegen_cli.train.options import TrainOptions
from tiny_nets import tiny_checkpoint, tiny_D, tiny_G


# bf16 against fp32 on the tiny nets, measured over seeds 0-2: mean abs difference 0.5-0.7 % of the
# images' spread, max 4-6 %; D's logits within 2 %. The bounds leave about 2x room.
MEAN_TOL, MAX_TOL, LOGIT_TOL = 0.015, 0.12, 0.04


def bf16() -> Precision:
    return resolve_precision("bf16", "cpu")


# --- resolving ----------------------------------------------------------------------------------

def test_auto_is_bf16_only_on_a_cpu_with_native_bf16():
    assert resolve_precision("auto", "cpu", native_bf16=True) == Precision("bf16", "cpu")
    assert resolve_precision("auto", "cpu", native_bf16=False) == Precision("fp32", "cpu")
    assert resolve_precision("auto", "cuda") == Precision("fp32", "cuda")  # NVIDIA's own fp16 blocks there
    assert resolve_precision(" BF16 ", torch.device("cpu")).name == "bf16"
    assert resolve_precision("fp32", "cpu", native_bf16=True).name == "fp32"
    assert resolve_precision("auto", "cpu").name == ("bf16" if cpu_has_native_bf16() else "fp32")
    with pytest.raises(BadInput, match="^precision must be one of fp32, bf16, auto, got 'half'"):
        check_precision("half")
    with pytest.raises(BadInput, match="^precision must be one of fp32, bf16, auto, got 'half'"):
        resolve_precision("half", "cpu")
    # the command line names its option
    result = CliRunner().invoke(app, ["generate", "--network", "nowhere.safetensors", "--precision", "half"])
    assert result.exit_code == 2
    assert result.stderr == "facegen: error: --precision must be one of fp32, bf16, auto, got 'half'\n"


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(frozenset({"avx512f", "avx512_bf16"}))
    assert cpu_has_native_bf16(frozenset({"amx_tile", "amx_bf16"}))
    assert cpu_has_native_bf16(frozenset({"fp", "asimd", "bf16"}))  # Arm's FEAT_BF16
    assert not cpu_has_native_bf16(frozenset({"sse4_2", "avx2", "avx512f"}))


def test_only_bf16_sets_force_fp32_and_autocasts():
    assert bf16().force_fp32 and not Precision("fp32").force_fp32
    with bf16().autocast():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with Precision("fp32").autocast():
        assert not torch.is_autocast_enabled("cpu")


# --- the bf16 path against the fp32 reference ----------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("fused", [False, True])
def test_bf16_images_match_fp32_within_the_measured_tolerance(seed, fused):
    G = tiny_G(seed)
    z = torch.randn([4, G.z_dim], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = G.mapping(z, None)
        ref = G.synthesis(ws, noise_mode="const", fused_modconv=fused)
        img = synthesis_in_precision(G, ws, bf16(), noise_mode="const", fused_modconv=fused)
    assert img.dtype == torch.float32
    diff, spread = (img - ref).abs(), float(ref.std())
    assert 1e-4 * spread < float(diff.mean()) < MEAN_TOL * spread  # bf16 really ran, and stayed close
    assert float(diff.max()) < MAX_TOL * spread


def test_the_fp32_parts_stay_fp32_under_autocast():
    G = tiny_G(0)
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(3))
    seen: dict[str, torch.dtype] = {}

    def record(name: str):
        return lambda module, inputs, output: seen.setdefault(name, output.dtype) and None

    layer = G.synthesis.b8.conv1
    hooks = [layer.affine.register_forward_hook(record("affine")), layer.register_forward_hook(record("conv")),
             G.synthesis.b8.torgb.register_forward_hook(record("torgb"))]
    with torch.no_grad():
        ws = G.mapping(z, None)
        with bf16().autocast():
            ws_bf16 = G.mapping(z, None)
            G.synthesis(ws, noise_mode="const", force_fp32=True)
    for hook in hooks:
        hook.remove()
    assert torch.equal(ws_bf16, ws)  # the mapping network (and w_avg) is fp32, bit for bit
    assert seen == {"affine": torch.float32, "conv": torch.bfloat16, "torgb": torch.float32}
    assert {"mapping", "affine", "demod", "torgb", "epilogue"} == FP32_PARTS


def test_bf16_discriminator_logits_are_fp32_and_close():
    D = tiny_D(0)
    img = torch.randn([4, 3, 32, 32], generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = D(img, None)
        with bf16().autocast():
            got = D(img, None, force_fp32=True)
    assert got.dtype == torch.float32
    assert float((got - ref).abs().max()) < LOGIT_TOL * float(ref.abs().mean())


# --- the option reaches the engine from every command -------------------------------------------

@pytest.fixture
def used(monkeypatch) -> list[str]:
    """Names of the precisions whose autocast context the engine entered."""
    names: list[str] = []
    original = Precision.autocast

    def spy(self: Precision):
        names.append(self.name)
        return original(self)

    monkeypatch.setattr(Precision, "autocast", spy)
    return names


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("nets") / "tiny.safetensors")


def invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", ["generate", "mix", "interpolate", "edit", "project"])
def test_each_command_draws_in_the_precision_asked_for(command, tiny_file, tmp_path, used):
    out = tmp_path / "out"
    args = {
        "generate": ["generate", "--seeds", "0-1"],
        "mix": ["mix", "seed:1", "seed:2"],
        "interpolate": ["interpolate", "seed:1", "seed:2", "--frames", "3"],
        "edit": ["edit", "seed:1", "--direction", str(tmp_path / "d.npy"), "--strength", "1"],
        "project": ["project", str(tmp_path / "face.png"), "--align", "none", "--steps", "2",
                    "--perceptual-weight", "0"],
    }[command]
    net = load_network(str(tiny_file))
    save_direction(Direction("d", np.ones(64, np.float32) / 8, net.network_id), tmp_path)
    save_image(next(Sampler(net).samples([3])).image, tmp_path / "face.png")
    common = ["--network", str(tiny_file), "--device", "cpu", "--out",
              str(out / "m.gif") if command == "interpolate" else str(out)]
    used.clear()
    invoke(args + common + ["--precision", "bf16"])
    assert used and set(used) == {"bf16"}
    used.clear()
    invoke(args + common)
    assert set(used) == {"fp32"}  # the default: NVIDIA's arithmetic


def test_fid_passes_the_precision_to_the_generated_side(tiny_file, tmp_path, monkeypatch, used):
    import facegen_cli.metrics.fid as fid

    seen = {}
    monkeypatch.setattr(fid, "compute_fid", lambda *a, **kw: seen.update(kw) or fid.FidResult(1.0, "clean", 2, 2))
    invoke(["fid", str(tiny_file), str(tiny_file), "--num", "2", "--precision", "bf16", "--device", "cpu"])
    assert seen["precision"] == "bf16"
    stream = fid.open_stream(str(tiny_file), [0, 1], 2, 1.0, 2, 0, "cpu", precision="bf16")
    images = np.concatenate(list(stream.batches()))
    assert images.shape == (2, 32, 32, 3) and used == ["bf16"]


def test_generate_in_bf16_differs_from_fp32_by_rounding_only(tiny_file):
    net = load_network(str(tiny_file))
    ref = np.stack([s.image for s in Sampler(net).samples(range(4))]).astype(int)
    got = np.stack([s.image for s in Sampler(net, precision="bf16").samples(range(4))]).astype(int)
    diff = np.abs(got - ref)
    assert 0 < diff.mean() < 2 and diff.max() < 40  # 8-bit levels; fp32 is the NVIDIA-equal path


def test_bf16_draws_in_channels_last_on_a_copy_and_computes_what_nchw_does(tiny_file):
    # bf16 on a CPU takes the channels_last layout too, on its own copy of G: fp32 users of the same network keep
    # the plain layout (and NVIDIA's pixels); the faster layout changes nothing beyond float rounding: held to fp32,
    # it is as accurate as NCHW in bf16. (How far the two layouts' bf16 sums part depends on the CPU's kernels: on
    # an AMD EPYC with AVX-512 bf16 they differ by up to 0.078, as much as bf16 differs from fp32, 0.085.)
    net = load_network(str(tiny_file))
    sampler = Sampler(net, precision="bf16")
    conv = sampler.G.synthesis.b32.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert net.G_ema.synthesis.b32.conv1.weight.is_contiguous() and Sampler(net).G is net.G_ema
    ws = torch.from_numpy(sampler.map(sampler.zs(range(4))))
    with torch.no_grad():
        nchw = synthesis_in_precision(net.G_ema, ws, resolve_precision("bf16", "cpu"), noise_mode="const")
        fp32 = synthesis_in_precision(net.G_ema, ws, resolve_precision("fp32", "cpu"), noise_mode="const")
        layout_error, nchw_error = (sampler.synthesize(ws) - fp32).abs(), (nchw - fp32).abs()
    assert layout_error.mean() <= 1.25 * nchw_error.mean() and layout_error.max() <= 1.5 * nchw_error.max()
    assert 0 < nchw_error.mean() < 0.05


# --- training -----------------------------------------------------------------------------------

def noise_images(folder: Path, count: int = 16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, [32, 32, 3], dtype=np.uint8)).save(folder / f"img{i:08d}.png")
    return folder


TINY = dict(cbase=512, cmax=64, z_dim=64, w_dim=64, map=2, batch=4, workers=0, device="cpu", aug="ada")


def test_bf16_training_runs_every_phase_with_fp32_master_weights_and_resume_keeps_it(tmp_path, used):
    data = noise_images(tmp_path / "noise")
    opts = TrainOptions(data=str(data), out=str(tmp_path / "runs"), kimg=0.008, snap=0.004, precision="bf16", **TINY)
    trainer = Trainer(opts, log=lambda msg: None)
    steps: list[dict] = []
    last = trainer.run(on_step=steps.append)
    assert set(used) == {"bf16"}
    keys = set().union(*steps)
    assert {"loss_G", "loss_D_real", "loss_D_fake", "r1_penalty", "pl_penalty"} <= keys  # all four phases ran
    assert all(math.isfinite(v) for s in steps for v in s.values())
    for module in (trainer.G, trainer.D, trainer.G_ema):
        assert {p.dtype for p in module.parameters()} == {torch.float32}
    for phase in trainer.phases:
        for state in phase.opt.state.values():
            assert state["exp_avg"].dtype == torch.float32
    run_dir = last.parent
    assert json.loads((run_dir / "training_options.json").read_text())["precision"] == "bf16"

    resumed = Trainer(TrainOptions(data=str(data), out=str(tmp_path / "runs"), kimg=0.012, **TINY),
                      resume=str(run_dir), log=lambda msg: None)
    assert resumed.opts.precision == "bf16"  # the run's own precision, not the command line's default


def test_train_dry_run_stores_the_precision_and_refuses_bf16_where_it_does_not_apply(tmp_path):
    data = noise_images(tmp_path / "noise")
    tiny = ["--cbase", "512", "--cmax", "64", "--map", "2", "--batch", "4", "--workers", "0", "--device", "cpu"]
    result = invoke(["train", str(data), "--out", str(tmp_path / "runs"), "--dry-run", "--precision", "auto", *tiny])
    assert json.loads(result.stdout)["precision"] == "auto"
    for extra in (["--fp16"], ["--model", "dcgan"]):
        result = CliRunner().invoke(app, ["train", str(data), "--dry-run", "--precision", "bf16", *tiny, *extra])
        assert result.exit_code == 2 and "--precision bf16" in result.output
