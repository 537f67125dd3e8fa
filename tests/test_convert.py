"""Importing NVIDIA pickles and rosinality checkpoints: same image for the same seed, nothing executed.

NVIDIA pickles are written in NVIDIA's own layouts: PyTorch snapshots by `nvidia_layout.py` as
stylegan2-ada-pytorch's and stylegan3's `training_loop.py` write them (bare class names,
`module_src`, `init_args`/`init_kwargs`), and TensorFlow-era `(G, D, Gs)` pickles by
`tf_layout.py`, whose imported networks are checked against what the TF variables compute.
"""
from __future__ import annotations

import argparse
import builtins
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import nvidia_layout as nl
import tf_layout as tl
from facegen_cli.cli.main import app
from facegen_cli.convert.importer import convert_file
from facegen_cli.convert.nvidia import IMPORTERS, FamilyImporter, network_family
from facegen_cli.convert.safe_pickle import PersistentRecord, load_restricted
from facegen_cli.errors import FacegenError
from facegen_cli.networks import load_checkpoint, load_network
from facegen_cli.ops.upfirdn2d import setup_filter
from facegen_cli.sampler import seed_to_z
from tiny_nets import D_KWARGS, G_KWARGS, SG3_KWARGS, SG3_R, tiny_D, tiny_G, tiny_sg3

NON_DEFAULT = dict(mapping_lr_multiplier=0.05, num_fp16_res=2, conv_clamp=256.0)
# The globals NVIDIA's own code writes into a snapshot, in order (read from real pickles made
# by stylegan2-ada-pytorch and stylegan3 with torch 2.x and numpy 2).
NVIDIA_SNAPSHOT_GLOBALS = [
    "torch_utils.persistence._reconstruct_persistent_obj", "collections.OrderedDict",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_tensor_v2", "torch.storage._load_from_bytes",
    "numpy._core.multiarray.scalar", "numpy.dtype", "dnnlib.util.EasyDict",
]
# A stylegan3 snapshot adds numpy arrays (the layers' sizes), read from real ones made by stylegan3's code.
NVIDIA_SG3_SNAPSHOT_GLOBALS = NVIDIA_SNAPSHOT_GLOBALS[:-1] + [
    "numpy._core.multiarray._reconstruct", "numpy.ndarray", "dnnlib.util.EasyDict"]


def snapshot(path: Path, G_ema, G=None, D=None, g_kwargs=None, d_kwargs=None, **kw) -> Path:
    return nl.snapshot_pickle(path, G_ema, {**G_KWARGS, **(g_kwargs or {})}, G, D, {**D_KWARGS, **(d_kwargs or {})},
                              **kw)


def pickle_globals(data: bytes) -> list[str]:
    """Globals a pickle resolves, in order, read with pickletools (memoised strings followed)."""
    memo, pushed, out = {}, [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            pushed.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ("BINGET", "LONG_BINGET"):
            pushed.append(memo.get(arg))
        elif op.name == "STACK_GLOBAL":
            out.append(f"{pushed[-2]}.{pushed[-1]}")
            pushed.append(None)
        elif op.name == "GLOBAL":
            out.append(arg.replace(" ", "."))
            pushed.append(None)
        else:
            pushed.append(None)
    return out


def marker_src(marker: Path) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).write_text('module_src ran')\nclass SynthesisBlock: pass\n"


def same_image(a: torch.nn.Module, b: torch.nn.Module, seed: int = 42, c=None) -> bool:
    z = torch.from_numpy(seed_to_z(seed, a.z_dim)).float()[None]
    return torch.allclose(a(z, c, noise_mode="const"), b(z, c, noise_mode="const"), atol=1e-6)


def run_cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegen: error:"), result.stderr
    return lines[0]


def test_writer_matches_nvidias_pickle_structure(tmp_path):
    """The test pickles use the same globals, in the same order, as NVIDIA's real snapshots."""
    data = snapshot(tmp_path / "s.pkl", tiny_G(0, c_dim=3), tiny_G(1, c_dim=3), tiny_D(2, c_dim=3),
                    g_kwargs=dict(c_dim=3), d_kwargs=dict(c_dim=3)).read_bytes()
    assert data[:2] == b"\x80\x04"
    assert pickle_globals(data) == NVIDIA_SNAPSHOT_GLOBALS
    assert b"training.networks" not in data  # class names are bare


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_nvidia_snapshot_converts_to_the_same_network(tmp_path, flavour):
    G_ema, G = tiny_G(0, **NON_DEFAULT), tiny_G(1, **NON_DEFAULT)
    D = tiny_D(2, num_fp16_res=2, conv_clamp=256.0)
    marker = tmp_path / "marker-src"
    src = snapshot(tmp_path / "network-snapshot-000100.pkl", G_ema, G, D, g_kwargs=NON_DEFAULT,
                   d_kwargs=dict(num_fp16_res=2, conv_clamp=256.0), flavour=flavour, module_src=marker_src(marker))
    dest = tmp_path / "converted.safetensors"
    result = run_cli("convert", src, dest)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(dest)
    assert not marker.exists()

    net = load_checkpoint(dest, modules=("G_ema", "G", "D"))
    assert net.G_kwargs == {**G_KWARGS, **NON_DEFAULT}
    assert net.D_kwargs["channel_base"] == 1024 and net.D_kwargs["channel_max"] == 64
    assert net.D_kwargs["num_fp16_res"] == 2 and net.D_kwargs["conv_clamp"] == 256.0
    assert net.D_kwargs["mbstd_group_size"] == 4 and net.D_kwargs["mbstd_num_channels"] == 1
    assert net.provenance["source"] == "nvidia-pickle"
    assert net.provenance["source_class"] == "Generator" and net.provenance["source_family"] == "stylegan2"
    assert net.provenance["dataset"] == "~/datasets/faces-32x32.zip"
    assert same_image(net.G_ema, G_ema) and same_image(net.G, G)
    assert not same_image(net.G_ema, G)
    for mine, theirs in ((net.G_ema, G_ema), (net.G, G), (net.D, D)):
        for name, t in theirs.state_dict().items():
            assert torch.equal(mine.state_dict()[name], t), name
    img = torch.randn([2, 3, 32, 32])
    assert torch.equal(net.D(img), D(img))


def test_only_the_asked_networks_are_built(tmp_path, monkeypatch):
    """generate/info and `convert --ema-only` want G_ema alone: G and D are not built."""
    G_ema = tiny_G(3)
    src = snapshot(tmp_path / "stylegan2-tiny.pkl", G_ema, tiny_G(4), tiny_D(5), numpy_legacy=True)
    built = []

    def counted(build):
        def run(record, what):
            built.append(what)
            return build(record, what)
        return run

    sg2 = IMPORTERS["stylegan2"]
    monkeypatch.setitem(IMPORTERS, "stylegan2",
                        FamilyImporter(sg2.arch, counted(sg2.generator), counted(sg2.discriminator)))
    direct = load_network(str(src))
    assert built == [f"{src}: G_ema"]
    assert direct.G is None and direct.D is None
    assert same_image(direct.G_ema, G_ema, seed=7)
    built.clear()
    dest = convert_file(src, tmp_path / "tiny.safetensors", ema_only=True)
    assert built == [f"{src}: G_ema"]
    assert same_image(load_checkpoint(dest).G_ema, G_ema, seed=7)


@pytest.mark.parametrize("flavour", ["ada", "sg3"])
def test_conditional_nvidia_snapshot(tmp_path, flavour):
    G_ema, D = tiny_G(4, c_dim=3), tiny_D(5, c_dim=3)
    src = snapshot(tmp_path / "cond.pkl", G_ema, D=D, g_kwargs=dict(c_dim=3), d_kwargs=dict(c_dim=3), flavour=flavour)
    net = load_checkpoint(convert_file(src, tmp_path / "c.safetensors"), modules=("G_ema", "D"))
    assert net.G_kwargs["c_dim"] == 3 and net.D_kwargs["c_dim"] == 3
    assert net.D_kwargs["cmap_dim"] == 64 and net.D_kwargs["mapping_layers"] == 8
    c = torch.eye(3)[[1]]
    assert same_image(net.G_ema, G_ema, c=c)
    z = torch.from_numpy(seed_to_z(1, 64)).float()[None]
    assert not torch.allclose(net.G_ema(z, c, noise_mode="const"), net.G_ema(z, torch.eye(3)[[2]], noise_mode="const"))
    img = torch.randn([1, 3, 32, 32])
    assert torch.equal(net.D(img, c), D(img, c))


def test_discriminator_label_mapping_with_another_learning_rate(tmp_path):
    """A label-mapping learning rate other than NVIDIA's default is folded into the stored weights."""
    D = tiny_D(6, c_dim=3)
    for i in range(D.mapping.num_layers):
        fc = getattr(D.mapping, f"fc{i}")
        fc.weight_gain, fc.bias_gain = 0.1 / fc.in_features ** 0.5, 0.1
    src = snapshot(tmp_path / "lr.pkl", tiny_G(0, c_dim=3), D=D, g_kwargs=dict(c_dim=3), d_kwargs=dict(c_dim=3))
    net = load_network(str(src), modules=("G_ema", "D"))
    img, c = torch.randn([2, 3, 32, 32]), torch.eye(3)[[0, 2]]
    assert torch.allclose(net.D(img, c), D(img, c), rtol=1e-5, atol=1e-6)


SG3_CONFIGS = {"T": {}, "R": SG3_R, "T-cond": dict(c_dim=3), "R-cond": dict(SG3_R, c_dim=3, conv_clamp=None)}


def stylegan3_snapshot(path: Path, cfg: str = "T") -> tuple[Path, torch.nn.Module, dict]:
    """A stylegan3 snapshot: networks_stylegan3 G and G_ema, networks_stylegan2 D (16 px)."""
    kwargs = {**SG3_KWARGS, **SG3_CONFIGS[cfg]}
    G_ema, c_dim = tiny_sg3(0, **SG3_CONFIGS[cfg]), kwargs["c_dim"]
    d_kwargs = dict(D_KWARGS, img_resolution=16, c_dim=c_dim)
    nl.snapshot_pickle(path, G_ema, kwargs, tiny_sg3(1, **SG3_CONFIGS[cfg]), tiny_D(2, **d_kwargs), d_kwargs,
                       flavour="sg3")
    return path, G_ema, kwargs


def sg3_labels(G) -> torch.Tensor | None:
    return torch.eye(G.c_dim)[[0, G.c_dim - 1]] if G.c_dim else None


def test_stylegan3_writer_matches_nvidias_pickle_structure(tmp_path):
    """Same globals in the same order as a real stylegan3 snapshot; the generator's records carry
    NVIDIA's attributes (numpy-typed where NVIDIA's are) and the init kwargs train.py builds."""
    src, G, _ = stylegan3_snapshot(tmp_path / "s.pkl", "R")
    data = src.read_bytes()
    assert pickle_globals(data) == NVIDIA_SG3_SNAPSHOT_GLOBALS and b"training.networks" not in data
    rec = load_restricted(src)["G_ema"]
    assert rec.attr("_init_kwargs") == dict(z_dim=16, w_dim=16, mapping_kwargs={"num_layers": 2}, channel_base=512,
                                            channel_max=64, magnitude_ema_beta=0.999, conv_kernel=1,
                                            use_radial_filters=True, num_layers=6, c_dim=0, img_resolution=16,
                                            img_channels=3)
    synthesis = rec.children["synthesis"]
    assert synthesis.attr("layer_names") == G.synthesis.layer_names
    first = synthesis.children[G.synthesis.layer_names[0]]
    assert isinstance(first.attr("in_cutoff"), np.float64) and first.attr("in_size").tolist() == [36, 36]
    assert first.attr("down_radial") is True and first.attr("_init_kwargs")["use_radial_filters"] is True
    assert "embed" in rec.children["mapping"].state and rec.children["mapping"].attr("embed") is None


@pytest.mark.parametrize("cfg", sorted(SG3_CONFIGS))
def test_stylegan3_snapshot_imports_to_the_same_network(tmp_path, cfg):
    src, G, kwargs = stylegan3_snapshot(tmp_path / f"sg3-{cfg}.pkl", cfg)
    net = load_network(str(src), modules=("G_ema", "G", "D"))
    assert net.arch == "stylegan3" and nl.stylegan3_settings(net.G_kwargs) == nl.stylegan3_settings(kwargs)
    assert net.provenance["source_family"] == "stylegan3" and net.D is not None and net.G is not None
    z, c = torch.from_numpy(np.stack([seed_to_z(s, 16) for s in (0, 5)])).float(), sg3_labels(G)
    ws = G.mapping(z, c, truncation_psi=0.7)
    assert torch.equal(net.G_ema.mapping(z, c, truncation_psi=0.7), ws)
    img = G.synthesis(ws)
    assert torch.allclose(net.G_ema.synthesis(ws), img, atol=1e-6) and img.std() > 0.05
    dest = convert_file(src, tmp_path / "sg3.safetensors")
    back = load_checkpoint(dest, modules=("G_ema", "G", "D"))
    assert back.arch == "stylegan3" and torch.allclose(back.G_ema.synthesis(ws), img, atol=1e-6)


@pytest.mark.parametrize("cfg", ["T", "R-cond"])
def test_stylegan3_snapshot_generates_and_shows_in_info(tmp_path, cfg):
    src, G, kwargs = stylegan3_snapshot(tmp_path / "sg3.pkl", cfg)
    label = ["--label", "2"] if G.c_dim else []
    result = run_cli("generate", "--network", src, "--seeds", "3", "--psi", "0.6", "--out", tmp_path / "imgs", *label)
    assert result.exit_code == 0, result.output
    z = torch.from_numpy(seed_to_z(3, 16)).float()[None]
    c = torch.eye(3)[[2]] if G.c_dim else None
    expect = (G(z, c, truncation_psi=0.6) * 127.5 + 128).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    got = np.asarray(Image.open(tmp_path / "imgs" / "seed0003.png"))
    assert np.abs(got.astype(int) - expect.astype(int)).max() <= 1 and got.std() > 1
    info = run_cli("info", src)
    assert info.exit_code == 0, info.output
    lines = info.stdout.splitlines()
    assert f"config: {cfg[0]}" in lines and "resolution: 16" in lines and "num_ws: 8" in lines
    channels = [(name, getattr(G.synthesis, name).out_channels) for name in G.synthesis.layer_names]
    assert [f"layers.{n}: {ch}" for n, ch in channels] == [line for line in lines if line.startswith("layers.")]
    assert channels[-1][1] == 3 and channels[0][0] == ("L0_36_64" if cfg[0] == "R" else "L0_36_32")


def test_stylegan3_unknown_setting_is_one_line(tmp_path, monkeypatch):
    """A generator built with a setting facegen does not know is refused, naming the file."""
    write_init = nl.stylegan3_init_kwargs
    monkeypatch.setattr(nl, "stylegan3_init_kwargs", lambda *a: {**write_init(*a), "shiny_new_option": 1})
    src, _, _ = stylegan3_snapshot(tmp_path / "new.pkl")
    result = run_cli("convert", src, tmp_path / "out.safetensors")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert str(src) in line and "shiny_new_option" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.pkl"]


def test_family_from_module_source_when_layers_say_nothing():
    def record(src: str) -> PersistentRecord:
        synthesis = PersistentRecord("SynthesisNetwork", {"_modules": {}})
        return PersistentRecord("Generator", {"_modules": {"synthesis": synthesis}}, module_src=src)

    assert network_family(record(nl.SG3_SRC)) == "stylegan3"
    assert network_family(record(nl.ADA_SRC)) == "stylegan2"
    assert network_family(record("class Something: pass\n")) is None


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
    with nl.fake_nvidia_modules() as (reconstruct, EasyDict):
        ctx = dict(w_dim=G.w_dim, img_channels=3, img_resolution=32)
        record = nl.persistent_record(G, reconstruct, "ada", nl.ADA_SRC, ctx,
                                      init_kwargs=nl.training_kwargs(G, G_KWARGS, "ada", EasyDict))
        block = record.meta["state"]["_modules"]["synthesis"].meta["state"]["_modules"]["b8"]
        block.meta["state"]["_buffers"] = {"resample_filter": payload(marker)}
        nested_bytes = pickle.dumps({"G_ema": record})
    nested = tmp_path / "nested.pkl"
    nested.write_bytes(nested_bytes)

    for src in (top, nested):
        dest = tmp_path / f"{src.stem}.safetensors"
        result = run_cli("convert", src, dest)
        assert result.exit_code == 1, result.stdout
        line = one_error_line(result)
        assert global_name in line and str(src) in line
        assert not marker.exists() and not dest.exists()
        with pytest.raises(FacegenError, match=global_name.replace(".", r"\.")):
            load_network(str(src))
        assert not marker.exists()


def test_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "src-marker"
    src = snapshot(tmp_path / "net.pkl", tiny_G(), module_src=marker_src(marker))
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
    truncated.write_bytes(snapshot(tmp_path / "whole.pkl", tiny_G()).read_bytes()[:5000])
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    not_a_generator = tmp_path / "augment-only.pkl"
    with nl.fake_nvidia_modules() as (reconstruct, _):
        not_a_generator.write_bytes(pickle.dumps({"G_ema": nl.augment_pipe_record(reconstruct)}))
    for src in (garbage, truncated, text, plain, not_a_generator, tmp_path / "missing.pkl"):
        result = run_cli("convert", src, tmp_path / "out.safetensors")
        assert result.exit_code == (2 if src.name == "missing.pkl" else 1), (src, result.stdout)
        assert src.name in one_error_line(result)
    assert not (tmp_path / "out.safetensors").exists()
    result = run_cli("convert", tmp_path / "whole.pkl", tmp_path / "out.pt")
    assert result.exit_code == 2 and ".safetensors" in result.stderr


# TensorFlow-era pickles: random variables in TF's names and layouts, checked against what TF computes.

TF_G = dict(resolution=32, fmap_base=512, fmap_max=64, latent=64, dlatent=64, mapping_layers=2)


def tf_nets(seed: int, label_size: int = 0, version: int = 4, d_mapping_layers: int = 0, **static):
    """(G, D, Gs) TF networks plus the variables of Gs and D, as NVIDIA's TF code pickles them."""
    rng = np.random.RandomState(seed)
    common = dict(resolution=32, num_channels=3, label_size=label_size, fmap_base=512, fmap_max=64)
    kwargs = dict(common, latent_size=64, dlatent_size=64, mapping_layers=2, **static)
    g_vars = [tl.tf_generator_variables(rng, label_size=label_size, **TF_G) for _ in range(2)]
    d_vars = tl.tf_discriminator_variables(rng, 32, 512, 64, label_size=label_size, mapping_layers=d_mapping_layers)
    G, Gs = (tl.tf_generator_network(*v, kwargs, version=version, name=n) for v, n in zip(g_vars, ("G", "Gs")))
    D = nl.TFNetwork("D", "D_main" if version >= 5 else "D_stylegan2", d_vars, static_kwargs=common, version=version)
    flat = dict(g_vars[1][0])
    flat.update({f"mapping/{k}": v for k, v in g_vars[1][1]})
    flat.update({f"synthesis/{k}": v for k, v in g_vars[1][2]})
    return (G, D, Gs), flat, dict(d_vars)


def test_tf_stylegan2_pickle_computes_what_tf_computes(tmp_path):
    """stylegan2 (TF) saved with pickle.HIGHEST_PROTOCOL (4 on its Python 3.6)."""
    nets, gs_vars, d_vars = tf_nets(0)
    src = tl.tf_pickle(tmp_path / "stylegan2-ffhq-config-f.pkl", nets, protocol=4)
    assert b"dnnlib.tflib.network" in src.read_bytes()
    dest = tmp_path / "tf.safetensors"
    result = run_cli("convert", src, dest)
    assert result.exit_code == 0, result.stderr
    net = load_checkpoint(dest, modules=("G_ema", "G", "D"))
    assert net.G_kwargs == {**G_KWARGS, "conv_clamp": None}
    assert net.provenance["source"] == "nvidia-tf-pickle" and net.provenance["source_class"] == "G_main"

    z = np.random.RandomState(1).randn(2, 64)
    ws_ref, img_ref = tl.tf_generator(gs_vars, z, 32, truncation_psi=0.7)
    ws = net.G_ema.mapping(torch.from_numpy(z).float(), None, truncation_psi=0.7)
    assert torch.allclose(ws.double(), ws_ref, rtol=1e-5, atol=1e-5)
    img = net.G_ema.synthesis(ws, noise_mode="const").double()
    assert (img - img_ref).abs().max() < 1e-4 * img_ref.abs().max()
    assert not same_image(net.G, net.G_ema)  # G is the TF `G`, not `Gs`

    images = np.random.RandomState(2).randn(4, 3, 32, 32)
    logits_ref = tl.tf_discriminator(d_vars, images, 32)
    logits = net.D(torch.from_numpy(images).float()).double()
    assert torch.allclose(logits, logits_ref, rtol=1e-4, atol=1e-4 * logits_ref.abs().max().item())


def test_tf_stylegan2_ada_conditional_pickle(tmp_path):
    """stylegan2-ada (TF): Network state version 5, default pickle protocol (3 on its Python 3.7)."""
    nets, gs_vars, d_vars = tf_nets(3, label_size=3, version=5, d_mapping_layers=2, mapping_lrmul=0.01,
                                    num_fp16_res=0, conv_clamp=None, mbstd_group_size=4)
    net = load_network(str(tl.tf_pickle(tmp_path / "ada-tf.pkl", nets, protocol=3)), modules=("G_ema", "D"))
    z, labels = np.random.RandomState(4).randn(2, 64), np.eye(3)[[0, 2]]
    ws_ref, img_ref = tl.tf_generator(gs_vars, z, 32, labels=labels)
    ws = net.G_ema.mapping(torch.from_numpy(z).float(), torch.from_numpy(labels).float())
    assert torch.allclose(ws.double(), ws_ref, rtol=1e-5, atol=1e-5)
    img = net.G_ema.synthesis(ws, noise_mode="const").double()
    assert (img - img_ref).abs().max() < 1e-4 * img_ref.abs().max()
    images = np.random.RandomState(5).randn(4, 3, 32, 32)
    labels4 = np.eye(3)[[0, 1, 2, 0]]
    logits_ref = tl.tf_discriminator(d_vars, images, 32, labels=labels4)
    logits = net.D(torch.from_numpy(images).float(), torch.from_numpy(labels4).float()).double()
    assert torch.allclose(logits, logits_ref, rtol=1e-4, atol=1e-4 * logits_ref.abs().max().item())


@pytest.mark.parametrize("change,reason", [
    ("stylegan1", "not a StyleGAN2 generator"),
    ("orig", "architecture 'orig' is not supported"),
    ("relu", "nonlinearity='relu' is not supported"),
])
def test_unsupported_tf_networks_are_refused_in_one_line(tmp_path, change, reason):
    nets, _, _ = tf_nets(6, **({"nonlinearity": "relu"} if change == "relu" else {}))
    synthesis = nets[2]._state["components"]["synthesis"]._state
    if change == "stylegan1":
        synthesis["variables"] = [(k, v) for k, v in synthesis["variables"] if "mod_" not in k]
    if change == "orig":
        synthesis["variables"] = [(k.replace("32x32/ToRGB", "ToRGB_lod0"), v) for k, v in synthesis["variables"]]
    src = tl.tf_pickle(tmp_path / "tf.pkl", nets)
    result = run_cli("info", src)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert reason in line and str(src) in line


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


def test_rosinality_weights_of_the_wrong_shape_are_refused_naming_them(tmp_path):
    src = tmp_path / "odd.pt"
    g = rosinality_g(tiny_G(3))
    g["conv1.activate.bias"] = g["conv1.activate.bias"][:-1]
    torch.save({"g_ema": g}, src)
    line = one_error_line(run_cli("convert", src, tmp_path / "x.safetensors"))
    assert "odd.pt: g_ema weights do not fit the StyleGAN2 layout" in line
    assert "synthesis.b4.conv1.bias has shape" in line
