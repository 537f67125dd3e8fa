"""facegen checkpoints: round trips, training state, fp16 storage, identity, broken and foreign files."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from facegen_cli.checkpoint import load_strict, pack_state, read_header, save_checkpoint, unpack_state
from facegen_cli.errors import FacegenError
from tiny_nets import D_KWARGS, G_KWARGS, tiny_D, tiny_G
from facegen_cli.networks import load_checkpoint


def _training_state() -> dict:
    gen = torch.Generator().manual_seed(3)
    return {
        "kimg": 12.5,
        "step": 400,
        "done": False,
        "note": None,
        "G_opt": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn([4, 5], generator=gen)},
                      1: {"step": torch.tensor(3.0), "exp_avg": torch.randn([7], generator=gen)}},
            "param_groups": [{"lr": 0.0025, "betas": (0.0, 0.99), "eps": 1e-8, "params": [0, 1]}],
        },
        "augment_p": torch.tensor(0.125, dtype=torch.float64),
        "rng": (torch.arange(10, dtype=torch.uint8), [1, 2.5, "x", (True, None)]),
        "ints": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    }


def _assert_tree_equal(got, want):
    assert type(got) is type(want), (got, want)
    if isinstance(want, torch.Tensor):
        assert got.dtype == want.dtype and torch.equal(got, want)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _assert_tree_equal(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            _assert_tree_equal(a, b)
    else:
        assert got == want


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype and torch.equal(sa[name], sb[name]), name


def test_round_trip_of_everything(tmp_path):
    G_ema, G, D = tiny_G(0), tiny_G(1), tiny_D(2)
    state = _training_state()
    path = save_checkpoint(tmp_path / "run.safetensors", "stylegan2", G_KWARGS, G_ema, G=G, D=D, D_kwargs=D_KWARGS,
                           provenance={"dataset": "ffhq-tiny", "kimg": 12.5}, training_state=state)
    net = load_checkpoint(path, modules=("G_ema", "G", "D"), with_training_state=True)
    assert net.arch == "stylegan2" and net.path == path
    assert net.G_kwargs == G_KWARGS and net.D_kwargs == D_KWARGS
    for got, want in ((net.G_ema, G_ema), (net.G, G), (net.D, D)):
        _assert_same_weights(got, want)
        assert not got.training and not any(p.requires_grad for p in got.parameters())
    assert net.provenance["dataset"] == "ffhq-tiny" and net.provenance["kimg"] == 12.5
    assert net.provenance["date"] and net.provenance["facegen_version"]
    assert net.network_id == net.provenance["id"]
    _assert_tree_equal(net.training_state, state)
    z = torch.randn([2, 64])
    assert torch.equal(net.G_ema(z, noise_mode="const"), G_ema(z, noise_mode="const"))
    img = torch.randn([2, 3, 32, 32])
    assert torch.equal(net.D(img), D(img))


def test_default_load_builds_only_g_ema(tmp_path):
    path = save_checkpoint(tmp_path / "g.safetensors", "stylegan2", G_KWARGS, tiny_G(), training_state={"a": 1})
    net = load_checkpoint(path)
    assert net.G is None and net.D is None and net.training_state is None
    assert load_checkpoint(path, modules=("G_ema", "D")).D is None  # asked for, but not stored
    assert read_header(path)["modules"] == ["G_ema"]


def test_pack_state_keeps_structure_and_collects_tensors():
    tensors: dict[str, torch.Tensor] = {}
    state = _training_state()
    packed = pack_state(state, tensors, "state")
    json.dumps(packed)  # the non-tensor side is plain JSON
    assert len(tensors) == 7
    assert all(k.startswith("state.") for k in tensors)
    _assert_tree_equal(unpack_state(json.loads(json.dumps(packed)), tensors), state)


def test_pack_state_converts_numpy_scalars_and_refuses_objects():
    import numpy as np
    tensors: dict[str, torch.Tensor] = {}
    assert pack_state({"x": np.float64(1.5), "n": np.int64(3)}, tensors, "s") == {"__dict__": [["x", 1.5], ["n", 3]]}
    with pytest.raises(TypeError, match="object"):
        pack_state({"bad": object()}, tensors, "s")


def test_half_storage(tmp_path):
    G = tiny_G()
    full = save_checkpoint(tmp_path / "full.safetensors", "stylegan2", G_KWARGS, G)
    half = save_checkpoint(tmp_path / "half.safetensors", "stylegan2", G_KWARGS, G, half=True)
    with safe_open(str(half), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"F16"}
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_checkpoint(half).G_ema
    for name, t in loaded.state_dict().items():
        assert t.dtype == torch.float32
        assert torch.equal(t, G.state_dict()[name].half().float()), name
    assert read_header(half)["provenance"]["id"] == read_header(full)["provenance"]["id"]


def test_weights_id_is_stable_and_content_based(tmp_path):
    a1 = save_checkpoint(tmp_path / "a1.safetensors", "stylegan2", G_KWARGS, tiny_G(0))
    a2 = save_checkpoint(tmp_path / "a2.safetensors", "stylegan2", G_KWARGS, tiny_G(0), D=tiny_D(5), D_kwargs=D_KWARGS)
    b = save_checkpoint(tmp_path / "b.safetensors", "stylegan2", G_KWARGS, tiny_G(1))
    ids = [read_header(p)["provenance"]["id"] for p in (a1, a2, b)]
    assert ids[0] == ids[1] != ids[2]
    assert len(ids[0]) == 16 and int(ids[0], 16) >= 0
    assert load_checkpoint(a1).network_id == ids[0]


def test_provenance_id_can_be_given(tmp_path):
    path = save_checkpoint(tmp_path / "n.safetensors", "stylegan2", G_KWARGS, tiny_G(), provenance={"id": "faces-v1"})
    assert load_checkpoint(path).network_id == "faces-v1"


def test_truncated_file_is_an_error_naming_it(tmp_path):
    path = save_checkpoint(tmp_path / "whole.safetensors", "stylegan2", G_KWARGS, tiny_G())
    data = path.read_bytes()
    for name, cut in (("tail.safetensors", len(data) - 1000), ("head.safetensors", 100), ("tiny.safetensors", 5)):
        broken = tmp_path / name
        broken.write_bytes(data[:cut])
        with pytest.raises(FacegenError, match=name):
            load_checkpoint(broken)


def test_foreign_files_are_errors_naming_them(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("these are not weights\n" * 10)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other), metadata={"format": "pt"})
    for path in (text, empty, other, tmp_path / "missing.safetensors"):
        with pytest.raises(FacegenError, match=path.name):
            load_checkpoint(path)


def test_weights_that_do_not_fit_the_stored_kwargs_are_an_error(tmp_path):
    wrong = {**G_KWARGS, "channel_max": 32}
    path = save_checkpoint(tmp_path / "wrong.safetensors", "stylegan2", wrong, tiny_G())
    with pytest.raises(FacegenError, match="wrong.safetensors.*do not fit"):
        load_checkpoint(path)


def test_strict_loading_names_the_first_offending_entries():
    """The one strict loader (checkpoints and every importer): missing, unexpected and reshaped entries."""
    source = tiny_G(1).state_dict()
    names = list(source)
    cases = {
        "missing": ({k: v for k, v in source.items() if k not in names[:5]},
                    f"missing {', '.join(sorted(names[:5])[:3])} and 2 more"),
        "unexpected": ({**source, "extra.weight": torch.zeros(2)}, "unexpected extra.weight"),
        "reshaped": ({**source, names[0]: source[names[0]][:1]},
                     f"{names[0]} has shape {(1, *source[names[0]].shape[1:])}"),
    }
    for state, reason in cases.values():
        with pytest.raises(FacegenError) as err:
            load_strict(tiny_G(0), state, "net.pt: G", "the StyleGAN2 layout")
        message = str(err.value)
        assert message.startswith("net.pt: G weights do not fit the StyleGAN2 layout (") and reason in message
    kept = load_strict(tiny_G(0), {k: v for k, v in source.items() if not k.endswith("w_avg")}, "G", "x",
                       keep_own=("w_avg",))
    assert torch.equal(kept.mapping.fc0.weight, source["mapping.fc0.weight"]) and not kept.training
    assert torch.equal(kept.mapping.w_avg, tiny_G(0).mapping.w_avg)


def test_newer_format_and_unknown_architecture_are_refused(tmp_path):
    for name, patch, message in (("newer", {"format_version": 99}, "newer facegen"),
                                 ("arch", {"arch": "stylegan9"}, "unknown architecture")):
        path = tmp_path / f"{name}.safetensors"
        header = {"format": "facegen-checkpoint", "format_version": 1, "arch": "stylegan2", "G_kwargs": G_KWARGS,
                  "D_kwargs": {}, "provenance": {}, "training_state": None, "modules": ["G_ema"], **patch}
        save_file({"G_ema.x": torch.zeros(1)}, str(path), metadata={"facegen": json.dumps(header)})
        with pytest.raises(FacegenError, match=message):
            load_checkpoint(path)


def test_save_is_atomic(tmp_path):
    path = tmp_path / "keep.safetensors"
    save_checkpoint(path, "stylegan2", G_KWARGS, tiny_G(0))
    before = path.read_bytes()
    with pytest.raises(TypeError):
        save_checkpoint(path, "stylegan2", G_KWARGS, tiny_G(1), training_state={"bad": object()})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.safetensors"]


def test_convert_slims_a_checkpoint_for_shipping(tmp_path):
    """`facegen convert --ema-only --half` keeps G_ema alone, in fp16, with the same identity."""
    from facegen_cli.convert.importer import convert_file

    G, D = tiny_G(1), tiny_D(1)
    full = save_checkpoint(tmp_path / "full.safetensors", "stylegan2", G_KWARGS, G, G=G, D=D, D_kwargs=D_KWARGS,
                           provenance={"kimg": 1.5})
    slim = convert_file(full, tmp_path / "slim.safetensors", ema_only=True, half=True)
    assert slim.stat().st_size < full.stat().st_size / 4
    header = read_header(slim)
    assert header["modules"] == ["G_ema"]
    assert header["provenance"]["id"] == read_header(full)["provenance"]["id"]
    assert header["provenance"]["kimg"] == 1.5
    with safe_open(str(slim), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys() if "noise_const" in k or "weight" in k)
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = G(z, None, noise_mode="const")
        got = load_checkpoint(slim).G_ema(z, None, noise_mode="const")
    assert (got - want).abs().max() < 0.05
