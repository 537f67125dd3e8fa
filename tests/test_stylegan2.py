"""StyleGAN2 generator and discriminator: shapes, truncation, noise modes, conditioning, NVIDIA's layout."""
from __future__ import annotations

import math

import pytest
import torch

from facegen_cli.models.layers import MappingNetwork, MinibatchStdLayer
from facegen_cli.models.stylegan2 import Discriminator, Generator, prefer_fused_modconv
from tiny_nets import D_KWARGS, G_KWARGS, tiny_D, tiny_G


def _z(n: int, seed: int = 0, dim: int = 64) -> torch.Tensor:
    return torch.randn([n, dim], generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("res,num_ws", [(32, 8), (64, 10)])
def test_generator_shapes_and_num_ws(res, num_ws):
    G = tiny_G(img_resolution=res)
    assert G.num_ws == num_ws == G.synthesis.num_ws == G.mapping.num_ws
    ws = G.mapping(_z(3), None)
    assert ws.shape == (3, num_ws, 64)
    img = G(_z(3), noise_mode="const")
    assert img.shape == (3, 3, res, res) and img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert G.synthesis.block_resolutions == [2 ** i for i in range(2, int(math.log2(res)) + 1)]


def test_generator_channel_counts_follow_base_and_max():
    G = Generator(**{**G_KWARGS, "img_resolution": 64, "channel_base": 2048, "channel_max": 128})
    # channels(res) = min(2048 // res, 128): 128 at 4..16, 64 at 32, 32 at 64
    assert G.synthesis.b4.const.shape == (128, 4, 4)
    assert G.synthesis.b16.conv1.weight.shape == (128, 128, 3, 3)
    assert G.synthesis.b32.conv0.weight.shape == (64, 128, 3, 3)
    assert G.synthesis.b64.conv0.weight.shape == (32, 64, 3, 3)
    assert G.synthesis.b64.torgb.weight.shape == (3, 32, 1, 1)


def test_mapping_broadcasts_one_w_and_normalises_z():
    G = tiny_G()
    ws = G.mapping(_z(2), None)
    assert torch.equal(ws[:, 0:1].expand_as(ws), ws)
    # z is normalised to unit second moment first, so its scale does not matter.
    torch.testing.assert_close(G.mapping(_z(2) * 7.5, None), ws)


def test_truncation_psi_zero_gives_w_avg():
    G = tiny_G()
    ws = G.mapping(_z(4), None, truncation_psi=0)
    torch.testing.assert_close(ws, G.mapping.w_avg.expand_as(ws), rtol=0, atol=1e-6)


def test_truncation_interpolates_toward_w_avg():
    G = tiny_G()
    full = G.mapping(_z(2), None)
    half = G.mapping(_z(2), None, truncation_psi=0.5)
    torch.testing.assert_close(half, G.mapping.w_avg + 0.5 * (full - G.mapping.w_avg))


def test_truncation_cutoff_only_touches_first_layers():
    G = tiny_G()
    full = G.mapping(_z(2), None)
    cut = G.mapping(_z(2), None, truncation_psi=0, truncation_cutoff=3)
    torch.testing.assert_close(cut[:, :3], G.mapping.w_avg.expand(2, 3, -1), rtol=0, atol=1e-6)
    assert torch.equal(cut[:, 3:], full[:, 3:])
    assert not torch.allclose(cut[:, 3:], G.mapping.w_avg.expand(2, G.num_ws - 3, -1))


def test_w_avg_tracks_mapping_output_in_training_mode_only():
    G = tiny_G()
    before = G.mapping.w_avg.clone()
    G.mapping(_z(4), None)
    assert torch.equal(G.mapping.w_avg, before)  # eval mode: frozen
    G.mapping.train()
    w = G.mapping(_z(4), None)[:, 0]
    torch.testing.assert_close(G.mapping.w_avg, before + (w.mean(0) - before) * (1 - 0.995))
    G.mapping(_z(4), None, update_w_avg=False)
    torch.testing.assert_close(G.mapping.w_avg, before + (w.mean(0) - before) * (1 - 0.995))


def test_noise_const_is_deterministic_and_none_differs_only_by_noise():
    G = tiny_G()
    ws = G.mapping(_z(2), None)
    const_a = G.synthesis(ws, noise_mode="const")
    const_b = G.synthesis(ws, noise_mode="const")
    assert torch.equal(const_a, const_b)
    none = G.synthesis(ws, noise_mode="none")
    assert not torch.allclose(const_a, none, atol=1e-3)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    assert torch.equal(G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="none"))
    assert torch.equal(G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="none"))


def test_noise_random_is_reproducible_with_a_seeded_generator():
    G = tiny_G()
    ws = G.mapping(_z(2), None)
    a = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(7))
    b = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(7))
    c = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c, atol=1e-3)
    assert not torch.allclose(a, G.synthesis(ws, noise_mode="const"), atol=1e-3)


def test_unknown_noise_mode_is_refused():
    G = tiny_G()
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(G.mapping(_z(1), None), noise_mode="loud")


def test_fused_and_non_fused_generator_agree():
    G = tiny_G()
    ws = G.mapping(_z(3), None)
    fused = G.synthesis(ws, noise_mode="const", fused_modconv=True)
    plain = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)


def test_default_modconv_path_follows_the_measured_rule():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not prefer_fused_modconv(True, torch.float32, 1, 1024, cpu)  # training: never fused
    assert [prefer_fused_modconv(False, torch.float32, 1, res, cpu) for res in (4, 64, 128, 1024)] == [
        False, False, True, True]
    assert prefer_fused_modconv(False, torch.float32, 8, 1024, cpu)
    assert not prefer_fused_modconv(False, torch.float32, 8, 64, cpu)
    assert not prefer_fused_modconv(False, torch.bfloat16, 1, 1024, cpu, channels_last=True)  # bf16 drawing
    assert prefer_fused_modconv(False, torch.float32, 8, 4, cuda)  # NVIDIA's rule on CUDA
    assert not prefer_fused_modconv(False, torch.float16, 8, 4, cuda)
    assert prefer_fused_modconv(False, torch.float16, 1, 4, cuda)


def test_generator_ws_layers_each_matter():
    """Each of the num_ws entries feeds a layer: changing any one of them changes the image."""
    G = tiny_G()
    ws = G.mapping(_z(1), None)
    # The non-fused path is the faster one for tiny networks on CPU; the fused one is tested above.
    base = G.synthesis(ws, noise_mode="const", fused_modconv=False)
    other = G.mapping(_z(1, seed=9), None)
    for i in range(G.num_ws):
        mixed = ws.clone()
        mixed[:, i] = other[:, i]
        img = G.synthesis(mixed, noise_mode="const", fused_modconv=False)
        assert not torch.allclose(img, base, atol=1e-4), f"w {i} unused"


@pytest.mark.parametrize("res", [32, 64])
def test_discriminator_output_shape_and_gradient(res):
    D = tiny_D(img_resolution=res)
    img = torch.randn([6, 3, res, res], requires_grad=True)
    logits = D(img)
    assert logits.shape == (6, 1)
    (grad,) = torch.autograd.grad(logits.sum(), [img])
    assert grad.shape == img.shape and grad.abs().sum() > 0


def test_discriminator_handles_batches_that_do_not_split_into_groups():
    D = tiny_D()
    assert D(torch.randn([3, 3, 32, 32])).shape == (3, 1)
    assert D(torch.randn([1, 3, 32, 32])).shape == (1, 1)


def test_minibatch_std_appends_group_stddev():
    layer = MinibatchStdLayer(group_size=2, num_channels=1)
    x = torch.randn([4, 3, 2, 2], dtype=torch.float64)
    y = layer(x)
    assert y.shape == (4, 4, 2, 2)
    assert torch.equal(y[:, :3], x)
    # Groups are samples {0, 2} and {1, 3} (stride n / group_size).
    for members in ((0, 2), (1, 3)):
        std = (x[list(members)].var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        for m in members:
            torch.testing.assert_close(y[m, 3], std.expand(2, 2))


def test_conditional_generator_and_discriminator():
    G = tiny_G(c_dim=3)
    D = tiny_D(c_dim=3)
    z = _z(2)
    c_a = torch.eye(3)[[0, 1]]
    c_b = torch.eye(3)[[2, 2]]
    img_a = G(z, c_a, noise_mode="const")
    img_b = G(z, c_b, noise_mode="const")
    assert img_a.shape == (2, 3, 32, 32)
    assert not torch.allclose(img_a, img_b, atol=1e-4)
    out_a, out_b = D(img_a, c_a), D(img_a, c_b)
    assert out_a.shape == (2, 1)
    assert not torch.allclose(out_a, out_b)
    assert D.b4.cmap_dim == 64 and D.mapping.fc0.weight.shape == (64, 64)
    assert G.mapping.embed.weight.shape == (64, 3)


GENERATOR_KEYS = {
    "synthesis.b4.const": (64, 4, 4),
    "synthesis.b4.conv1.weight": (64, 64, 3, 3),
    "synthesis.b4.conv1.noise_const": (4, 4),
    "synthesis.b4.conv1.noise_strength": (),
    "synthesis.b4.conv1.affine.weight": (64, 64),
    "synthesis.b4.conv1.affine.bias": (64,),
    "synthesis.b4.conv1.resample_filter": (4, 4),
    "synthesis.b4.torgb.weight": (3, 64, 1, 1),
    "synthesis.b4.torgb.bias": (3,),
    "synthesis.b4.resample_filter": (4, 4),
    "synthesis.b8.conv0.affine.weight": (64, 64),
    "synthesis.b8.conv0.weight": (64, 64, 3, 3),
    "synthesis.b8.conv0.noise_const": (8, 8),
    "synthesis.b32.conv0.weight": (32, 64, 3, 3),
    "synthesis.b32.conv1.bias": (32,),
    "synthesis.b32.torgb.affine.weight": (32, 64),
    "mapping.fc0.weight": (64, 64),
    "mapping.fc0.bias": (64,),
    "mapping.fc1.weight": (64, 64),
    "mapping.w_avg": (64,),
}
DISCRIMINATOR_KEYS = {
    "b32.fromrgb.weight": (32, 3, 1, 1),
    "b32.fromrgb.bias": (32,),
    "b32.conv0.weight": (32, 32, 3, 3),
    "b32.conv1.weight": (64, 32, 3, 3),
    "b32.skip.weight": (64, 32, 1, 1),
    "b32.resample_filter": (4, 4),
    "b16.conv0.weight": (64, 64, 3, 3),
    "b8.conv1.bias": (64,),
    "b4.conv.weight": (64, 65, 3, 3),
    "b4.conv.bias": (64,),
    "b4.fc.weight": (64, 64 * 16),
    "b4.out.weight": (1, 64),
    "b4.out.bias": (1,),
}


def test_state_dict_names_and_shapes_follow_nvidia_layout():
    g_state = Generator(**G_KWARGS).state_dict()
    d_state = Discriminator(**D_KWARGS).state_dict()
    for state, expected in ((g_state, GENERATOR_KEYS), (d_state, DISCRIMINATOR_KEYS)):
        for name, shape in expected.items():
            assert name in state, name
            assert tuple(state[name].shape) == shape, name
    assert "mapping.fc2.weight" not in g_state
    assert "b16.fromrgb.weight" not in d_state  # resnet D: only the first block reads the image
    assert "b32.skip.bias" not in d_state
    assert not any(k.startswith("b4.mbstd") for k in d_state)
    assert not any(k.startswith("mapping.") for k in d_state)  # unconditional D has no label mapping


def test_mapping_layers_use_lr_multiplier():
    G = Generator(**{**G_KWARGS, "mapping_lr_multiplier": 0.01})
    for idx in range(2):
        fc = getattr(G.mapping, f"fc{idx}")
        assert fc.bias_gain == pytest.approx(0.01)
        assert fc.weight_gain == pytest.approx(0.01 / math.sqrt(64))
        assert fc.weight.std().item() == pytest.approx(100, rel=0.1)  # stored as randn / lr_multiplier
        assert fc.activation == "lrelu"
    # The affine layers of the synthesis network use the plain equalised rate, bias 1.
    affine = G.synthesis.b8.conv0.affine
    assert affine.weight_gain == pytest.approx(1 / 8) and affine.bias_gain == 1
    assert torch.equal(affine.bias, torch.ones(64))
    other = MappingNetwork(8, 0, 16, num_ws=2, num_layers=3, lr_multiplier=0.5)
    assert other.fc2.bias_gain == 0.5 and other.fc2.weight_gain == pytest.approx(0.5 / 4)


def test_fc_forward_applies_gains():
    G = tiny_G()
    fc = G.mapping.fc0
    x = torch.randn([2, 64])
    expected = torch.nn.functional.leaky_relu(x @ (fc.weight * fc.weight_gain).t() + fc.bias * fc.bias_gain, 0.2)
    torch.testing.assert_close(fc(x), expected * math.sqrt(2))


def test_fp16_blocks_run_in_fp32_on_cpu():
    G = tiny_G(num_fp16_res=2, conv_clamp=256)
    assert G.synthesis.b32.use_fp16 and G.synthesis.b16.use_fp16 and not G.synthesis.b8.use_fp16
    img = G(_z(1), noise_mode="const")
    assert img.dtype == torch.float32 and torch.isfinite(img).all()


def test_conv_clamp_limits_activations():
    G = tiny_G(conv_clamp=0.05)
    img = G(_z(2), noise_mode="const")
    # The last ToRGB output is clamped to +-conv_clamp; earlier ones are upsampled and added.
    assert img.abs().max() < 0.05 * G.synthesis.num_ws


def test_resolution_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        Generator(**{**G_KWARGS, "img_resolution": 48})
    with pytest.raises(ValueError, match="power of two"):
        Discriminator(**{**D_KWARGS, "img_resolution": 2})
