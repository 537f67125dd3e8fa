"""Importing NVIDIA pickles and rosinality checkpoints: same image for the same seed, nothing executed.

The NVIDIA pickles are built here with the structure of NVIDIA's `torch_utils.persistence`:
each network object pickles as `_reconstruct_persistent_obj(meta)`, meta holding the class
name, the class's source code and the module's `__dict__` state. Fake `torch_utils` and
`dnnlib` modules exist only while dumping, so loading cannot fall back on them.
"""
from __future__ import annotations

import argparse
import builtins
import collections
import contextlib
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from facegen_cli.checkpoint import load_checkpoint
from facegen_cli.cli.main import app
from facegen_cli.convert.importer import convert_file
from facegen_cli.errors import FacegenError
from facegen_cli.latent.seeds import seed_to_z
from facegen_cli.networks import load_network
from facegen_cli.ops.upfirdn2d import setup_filter
from tiny_nets import D_KWARGS, G_KWARGS, tiny_D, tiny_G

torch.set_num_threads(2)

FAKE_MODULES = ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")
# Attributes NVIDIA computes with numpy, so they pickle as numpy scalars.
NUMPY_FLOAT_ATTRS = ("weight_gain", "act_gain")


@contextlib.contextmanager
def fake_nvidia_modules():
    """Register stand-ins for NVIDIA's `torch_utils.persistence` and `dnnlib.util` while dumping."""
    torch_utils = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("only used for dumping")

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = _reconstruct_persistent_obj.__name__
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    easy_dict = type("EasyDict", (dict,), {"__module__": util.__name__})
    util.EasyDict = easy_dict
    torch_utils.persistence = persistence
    dnnlib.util = util
    sys.modules.update({m.__name__: m for m in (torch_utils, persistence, dnnlib, util)})
    try:
        yield persistence, easy_dict
    finally:
        for name in FAKE_MODULES:
            sys.modules.pop(name, None)


class Persistent:
    """Pickles exactly as a `@persistence.persistent_class` object does."""

    def __init__(self, reconstruct, meta: dict):
        self.reconstruct = reconstruct
        self.meta = meta

    def __reduce__(self):
        return self.reconstruct, (self.meta,)


def module_state(module: torch.nn.Module, persistence, class_prefix: str, module_src: str, extra=None) -> Persistent:
    """The persistent record of one of our modules, as NVIDIA's pickle would hold it (recursively)."""
    state: dict = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (name, module_state(child, persistence, class_prefix, module_src, extra) if child is not None else None)
            for name, child in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": {},
    }
    for name, value in vars(module).items():
        if name.startswith("_") or name == "training":
            continue
        state[name] = np.float64(value) if name in NUMPY_FLOAT_ATTRS else value
    if extra:
        state.update(extra(module))
    meta = dict(type="class", version=4, module_src=module_src,
                class_name=f"{class_prefix}.{type(module).__name__}", state=state)
    return Persistent(persistence._reconstruct_persistent_obj, meta)


def nvidia_extras(module: torch.nn.Module) -> dict:
    """Attributes NVIDIA's modules carry that ours do not need."""
    kind = type(module).__name__
    if kind == "SynthesisBlock":
        return {"architecture": "skip", "is_last": False, "channels_last": False, "fused_modconv_default": True}
    if kind in ("DiscriminatorBlock", "DiscriminatorEpilogue"):
        return {"architecture": "resnet"}
    if kind == "SynthesisLayer":
        # A non-persistent buffer: present in the state, never part of the state dict.
        buffers = collections.OrderedDict(module._buffers)
        buffers["scratch"] = torch.zeros(3)
        return {"_buffers": buffers, "_non_persistent_buffers_set": {"scratch"}}
    return {}


def marker_src(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src ran')\nclass Generator: pass\n"


def nvidia_pickle(path: Path, G_ema, G=None, D=None, class_prefix: str = "training.networks",
                  module_src: str = "class Generator: pass\n", g_class: str | None = None,
                  numpy_legacy: bool = False) -> Path:
    """Write a network-snapshot-style pickle for our modules, with NVIDIA's persistence structure."""
    with fake_nvidia_modules() as (persistence, EasyDict):
        def record(module):
            return module_state(module, persistence, class_prefix, module_src, nvidia_extras) if module else None

        g_ema = record(G_ema)
        if g_class:
            g_ema.meta["class_name"] = g_class
        g_ema.meta["state"]["_init_kwargs"] = EasyDict(
            z_dim=G_ema.z_dim, w_dim=G_ema.w_dim, mapping_kwargs=EasyDict(num_layers=2),
            synthesis_kwargs=EasyDict(channel_base=1024, channel_max=64))
        snapshot = {"G": record(G), "D": record(D), "G_ema": g_ema, "augment_pipe": None,
                    "training_set_kwargs": EasyDict(path="~/datasets/faces-32x32.zip", use_labels=False,
                                                    resolution=32)}
        data = pickle.dumps(snapshot, protocol=4)
    for name in FAKE_MODULES:
        assert name not in sys.modules
    if numpy_legacy:  # numpy < 2 names its scalar constructor numpy.core.multiarray.scalar
        new = b"\x8c\x15numpy.core.multiarray"
        data = data.replace(b"\x8c\x16numpy._core.multiarray", new)
        assert new in data
    path.write_bytes(data)
    return path


def same_image(a: torch.nn.Module, b: torch.nn.Module, seed: int = 42, c=None) -> bool:
    z = torch.from_numpy(seed_to_z(seed, a.z_dim)).float()[None]
    return torch.allclose(a(z, c, noise_mode="const"), b(z, c, noise_mode="const"), atol=1e-6)


def run_cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


NON_DEFAULT = dict(mapping_lr_multiplier=0.05, num_fp16_res=2, conv_clamp=256.0)


@pytest.mark.parametrize("class_prefix", ["training.networks", "training.networks_stylegan2"])
def test_nvidia_pickle_converts_to_the_same_network(tmp_path, class_prefix):
    G_ema, G, D = tiny_G(0, **NON_DEFAULT), tiny_G(1, **NON_DEFAULT), tiny_D(2, num_fp16_res=2, conv_clamp=256.0)
    marker = tmp_path / "marker-src"
    src = nvidia_pickle(tmp_path / "network-snapshot-000100.pkl", G_ema, G, D, class_prefix=class_prefix,
                        module_src=marker_src(marker))
    dest = tmp_path / "converted.safetensors"
    result = run_cli("convert", src, dest)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(dest)
    assert not marker.exists()

    net = load_checkpoint(dest, modules=("G_ema", "G", "D"))
    assert net.G_kwargs == {**G_KWARGS, **NON_DEFAULT}
    for key, want in dict(channel_base=1024, channel_max=64, mapping_layers=2, mapping_lr_multiplier=0.05,
                          num_fp16_res=2, conv_clamp=256.0).items():
        assert net.G_kwargs[key] == want, key
    assert net.D_kwargs["channel_base"] == 1024 and net.D_kwargs["channel_max"] == 64
    assert net.D_kwargs["num_fp16_res"] == 2 and net.D_kwargs["conv_clamp"] == 256.0
    assert net.D_kwargs["mbstd_group_size"] == 4 and net.D_kwargs["mbstd_num_channels"] == 1
    assert net.provenance["source"] == "nvidia-pickle"
    assert net.provenance["source_class"] == f"{class_prefix}.Generator"
    assert net.provenance["dataset"] == "~/datasets/faces-32x32.zip"
    assert same_image(net.G_ema, G_ema) and same_image(net.G, G)
    assert not same_image(net.G_ema, G)
    for mine, theirs in ((net.G_ema, G_ema), (net.G, G), (net.D, D)):
        assert torch.equal(mine.state_dict()["b4.conv.weight" if mine is net.D else "mapping.w_avg"],
                           theirs.state_dict()["b4.conv.weight" if mine is net.D else "mapping.w_avg"])
    img = torch.randn([2, 3, 32, 32])
    assert torch.allclose(net.D(img), D(img))


def test_engine_conversion_and_direct_loading_of_a_pickle(tmp_path):
    G_ema = tiny_G(3)
    src = nvidia_pickle(tmp_path / "stylegan2-tiny.pkl", G_ema, numpy_legacy=True)
    dest = convert_file(src, tmp_path / "tiny.safetensors")
    assert same_image(load_checkpoint(dest).G_ema, G_ema, seed=7)
    # generate/info also take the pickle itself, imported on the fly.
    direct = load_network(str(src))
    assert direct.G is None and direct.D is None
    assert same_image(direct.G_ema, G_ema, seed=7)


def test_conditional_nvidia_pickle(tmp_path):
    G_ema, D = tiny_G(4, c_dim=3), tiny_D(5, c_dim=3)
    net = load_checkpoint(convert_file(nvidia_pickle(tmp_path / "cond.pkl", G_ema, D=D), tmp_path / "c.safetensors"),
                          modules=("G_ema", "D"))
    assert net.G_kwargs["c_dim"] == 3 and net.D_kwargs["c_dim"] == 3
    assert net.D_kwargs["cmap_dim"] == 64 and net.D_kwargs["mapping_layers"] == 8
    c = torch.eye(3)[[1]]
    assert same_image(net.G_ema, G_ema, c=c)
    img = torch.randn([1, 3, 32, 32])
    assert torch.allclose(net.D(img, c), D(img, c))


def test_stylegan3_is_refused_clearly(tmp_path):
    src = nvidia_pickle(tmp_path / "stylegan3-t.pkl", tiny_G(), g_class="training.networks_stylegan3.Generator")
    dest = tmp_path / "out.safetensors"
    result = run_cli("convert", src, dest)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegen: error:")
    assert "StyleGAN3" in lines[0]
    assert not dest.exists() and list(tmp_path.iterdir()) == [src]


class Payload:
    """Pickles as a call to `fn(*args)`: what a malicious pickle looks like."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _write_marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


@pytest.mark.parametrize("payload,global_name", [
    (lambda m: Payload(os.system, f"touch {m}"), f"{os.system.__module__}.system"),
    (lambda m: Payload(builtins.exec, _write_marker_code(m)), "builtins.exec"),
    (lambda m: Payload(builtins.eval, f"__import__('pathlib').Path({str(m)!r}).touch()"), "builtins.eval"),
])
def test_malicious_pickles_never_run(tmp_path, payload, global_name):
    # The payload is live: an ordinary unpickler would run it.
    live = tmp_path / "live-marker"
    pickle.loads(pickle.dumps(payload(live), protocol=4))
    assert live.exists()

    marker = tmp_path / "marker"
    top = tmp_path / "top.pkl"
    top.write_bytes(pickle.dumps({"G_ema": payload(marker)}, protocol=4))
    # The same payload hidden deep inside an otherwise valid network's state.
    G = tiny_G()
    with fake_nvidia_modules() as (persistence, _):
        record = module_state(G, persistence, "training.networks", "", nvidia_extras)
        layer = record.meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"]["b8"]
        layer.meta["state"]["_buffers"] = collections.OrderedDict(resample_filter=payload(marker))
        nested_bytes = pickle.dumps({"G_ema": record}, protocol=4)
    nested = tmp_path / "nested.pkl"
    nested.write_bytes(nested_bytes)

    for src in (top, nested):
        dest = tmp_path / f"{src.stem}.safetensors"
        result = run_cli("convert", src, dest)
        assert result.exit_code == 1, result.stdout
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("facegen: error:")
        assert global_name in result.stderr and str(src) in result.stderr
        assert not marker.exists() and not dest.exists()
        with pytest.raises(FacegenError, match=global_name.replace(".", r"\.")):
            load_network(str(src))
        assert not marker.exists()


def test_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "src-marker"
    src = nvidia_pickle(tmp_path / "net.pkl", tiny_G(), module_src=marker_src(marker))
    exec(compile(marker_src(tmp_path / "proof"), "proof", "exec"), {})  # the source is live code
    assert (tmp_path / "proof").exists()
    result = run_cli("info", src)
    assert result.exit_code == 0, result.stderr
    assert "resolution: 32" in result.stdout
    assert not marker.exists()


def test_garbage_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x04" + os.urandom(64))
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(nvidia_pickle(tmp_path / "whole.pkl", tiny_G()).read_bytes()[:5000])
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    for src in (garbage, truncated, text, plain, tmp_path / "missing.pkl"):
        result = run_cli("convert", src, tmp_path / "out.safetensors")
        assert result.exit_code == 1, (src, result.stdout)
        assert result.stderr.startswith("facegen: error:") and result.stderr.count("\n") == 1, result.stderr
        assert src.name in result.stderr
    assert not (tmp_path / "out.safetensors").exists()
    result = run_cli("convert", tmp_path / "whole.pkl", tmp_path / "out.pt")
    assert result.exit_code == 2 and ".safetensors" in result.stderr


# rosinality/stylegan2-pytorch names, derived from our modules by the inverse of the importer's mapping.

def _blur_kernel(factor: int = 2) -> torch.Tensor:
    return setup_filter([1, 3, 3, 1]) * factor ** 2


def rosinality_g(G) -> dict[str, torch.Tensor]:
    syn = G.synthesis
    g: dict[str, torch.Tensor] = {"input.input": syn.b4.const[None].clone()}
    for i in range(G.mapping.num_layers):
        fc = getattr(G.mapping, f"fc{i}")
        g[f"style.{i + 1}.weight"], g[f"style.{i + 1}.bias"] = fc.weight.clone(), fc.bias.clone()

    def styled(name: str, layer, noise_idx: int) -> None:
        g[f"{name}.conv.weight"] = layer.weight[None].clone()
        g[f"{name}.conv.modulation.weight"] = layer.affine.weight.clone()
        g[f"{name}.conv.modulation.bias"] = layer.affine.bias.clone()
        g[f"{name}.noise.weight"] = layer.noise_strength.reshape(1).clone()
        g[f"{name}.activate.bias"] = layer.bias.clone()
        g[f"noises.noise_{noise_idx}"] = layer.noise_const[None, None].clone()
        if layer.up > 1:
            g[f"{name}.conv.blur.kernel"] = _blur_kernel()

    def to_rgb(name: str, layer, upsample: bool) -> None:
        g[f"{name}.conv.weight"] = layer.weight[None].clone()
        g[f"{name}.conv.modulation.weight"] = layer.affine.weight.clone()
        g[f"{name}.conv.modulation.bias"] = layer.affine.bias.clone()
        g[f"{name}.bias"] = layer.bias.reshape(1, -1, 1, 1).clone()
        if upsample:
            g[f"{name}.upsample.kernel"] = _blur_kernel()

    styled("conv1", syn.b4.conv1, 0)
    to_rgb("to_rgb1", syn.b4.torgb, False)
    for i, res in enumerate(syn.block_resolutions[1:]):
        block = getattr(syn, f"b{res}")
        styled(f"convs.{2 * i}", block.conv0, 2 * i + 1)
        styled(f"convs.{2 * i + 1}", block.conv1, 2 * i + 2)
        to_rgb(f"to_rgbs.{i}", block.torgb, True)
    return g


def rosinality_d(D) -> dict[str, torch.Tensor]:
    top = D.block_resolutions[0]
    first = getattr(D, f"b{top}")
    d = {"convs.0.0.weight": first.fromrgb.weight.clone(), "convs.0.1.bias": first.fromrgb.bias.clone()}
    for i, res in enumerate(D.block_resolutions, start=1):
        block = getattr(D, f"b{res}")
        d[f"convs.{i}.conv1.0.weight"] = block.conv0.weight.clone()
        d[f"convs.{i}.conv1.1.bias"] = block.conv0.bias.clone()
        d[f"convs.{i}.conv2.0.kernel"] = _blur_kernel(1)
        d[f"convs.{i}.conv2.1.weight"] = block.conv1.weight.clone()
        d[f"convs.{i}.conv2.2.bias"] = block.conv1.bias.clone()
        d[f"convs.{i}.skip.0.kernel"] = _blur_kernel(1)
        d[f"convs.{i}.skip.1.weight"] = block.skip.weight.clone()
    d["final_conv.0.weight"], d["final_conv.1.bias"] = D.b4.conv.weight.clone(), D.b4.conv.bias.clone()
    d["final_linear.0.weight"], d["final_linear.0.bias"] = D.b4.fc.weight.clone(), D.b4.fc.bias.clone()
    d["final_linear.1.weight"], d["final_linear.1.bias"] = D.b4.out.weight.clone(), D.b4.out.bias.clone()
    return d


def rosinality_ckpt(path: Path, G_ema, G, D, latent_avg: bool = True, legacy: bool = False) -> Path:
    ckpt = {"g": rosinality_g(G), "d": rosinality_d(D), "g_ema": rosinality_g(G_ema),
            "g_optim": {"state": {}, "param_groups": [{"lr": 0.002, "betas": (0, 0.99), "params": [0, 1]}]},
            "args": argparse.Namespace(size=32, n_mlp=2, latent=64, channel_multiplier=2, r1=10.0)}
    if latent_avg:
        ckpt["latent_avg"] = G_ema.mapping.w_avg.clone()
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_rosinality_checkpoint_draws_the_same_image(tmp_path):
    G_ema, G, D = tiny_G(6), tiny_G(7), tiny_D(8)
    src = rosinality_ckpt(tmp_path / "050000.pt", G_ema, G, D)
    dest = tmp_path / "rosinality.safetensors"
    result = run_cli("convert", src, dest)
    assert result.exit_code == 0, result.stderr
    net = load_checkpoint(dest, modules=("G_ema", "G", "D"))
    assert net.G_kwargs["channel_base"] == 1024 and net.G_kwargs["channel_max"] == 64
    assert net.G_kwargs["mapping_layers"] == 2 and net.G_kwargs["img_resolution"] == 32
    assert net.provenance["source"] == "rosinality-checkpoint"
    for mine, theirs in ((net.G_ema, G_ema), (net.G, G)):
        for name, t in theirs.state_dict().items():
            # rosinality keeps one latent_avg (of g_ema); G shares it
            assert torch.equal(mine.state_dict()[name], t) or (mine is net.G and name == "mapping.w_avg"), name
        assert same_image(mine, theirs, seed=3)
    assert torch.equal(net.G.mapping.w_avg, G_ema.mapping.w_avg)
    z = torch.randn([2, 64])
    assert torch.equal(net.G_ema(z, truncation_psi=0.5, noise_mode="const"),
                       G_ema(z, truncation_psi=0.5, noise_mode="const"))
    img = torch.randn([2, 3, 32, 32])
    assert torch.allclose(net.D(img), D(img))


def test_rosinality_checkpoint_in_torch_legacy_format(tmp_path):
    """Checkpoints saved before torch 1.6 are not zip files; they must not be taken for NVIDIA pickles."""
    G_ema = tiny_G(10)
    src = rosinality_ckpt(tmp_path / "old.pt", G_ema, G_ema, tiny_D(), legacy=True)
    assert not src.read_bytes().startswith(b"PK")
    assert same_image(load_checkpoint(convert_file(src, tmp_path / "old.safetensors")).G_ema, G_ema)


def test_rosinality_without_latent_avg_estimates_it(tmp_path):
    G_ema = tiny_G(9)
    src = rosinality_ckpt(tmp_path / "noavg.pt", G_ema, G_ema, tiny_D(), latent_avg=False)
    net = load_checkpoint(convert_file(src, tmp_path / "n.safetensors"))
    z = torch.randn([20000, 64], generator=torch.Generator().manual_seed(5))
    expected = G_ema.mapping(z, None)[:, 0].mean(0)
    spread = G_ema.mapping(z, None)[:, 0].std(0)
    assert ((net.G_ema.mapping.w_avg - expected).abs() < 0.05 * spread).all()
    assert same_image(net.G_ema, G_ema)  # psi = 1 does not use w_avg


def test_rosinality_file_without_generator_is_refused(tmp_path):
    src = tmp_path / "d_only.pt"
    torch.save({"d": rosinality_d(tiny_D())}, src)
    result = run_cli("convert", src, tmp_path / "x.safetensors")
    assert result.exit_code == 1 and "no g_ema" in result.stderr and "d_only.pt" in result.stderr
