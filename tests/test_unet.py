"""Tests of flatlib.model.unet against openai/guided-diffusion.

The fixtures tests/data/gd_unet_*.pt.xz were made once, outside this repository, with guided-diffusion's own
code (github.com/openai/guided-diffusion at commit 22e0df8183507e13a7813f8d38d51b072ca1e67c; none of it is
in this repo). For each configuration below, `guided_diffusion.unet.UNetModel(**config)` was built on CPU, every
entry of its state_dict (zero-initialised ones included) was set to 0.05 * k / sqrt(2) with k uniform in
{-2, ..., 2} (std 0.05; few distinct values so that xz keeps the file small), plus 1 for the GroupNorm scales,
drawn from torch.Generator().manual_seed(1000 + i) for the i-th configuration in key order; x ~ N(0, 1) of
shape [3, in_channels, 16, 16] was drawn next from the same generator, t = [0, 250, 999], and
out = model.eval()(x, t) under torch.no_grad(). {config, state_dict, x, t, out, source} was torch.save'd and
the bytes xz-compressed (lzma preset 9e).

    gd_unet_updown_neworder: image_size 16, in 3, model_channels 32, out 6, num_res_blocks 1, attention
        rates (1, 2), dropout 0.3, channel_mult (1, 1), num_head_channels 16, scale-shift norm, resblock_updown,
        use_new_attention_order.
    gd_unet_legacy_conv: image_size 16, in 1, model_channels 32, out 1, num_res_blocks 1, attention rates
        (1, 2), dropout 0.3, channel_mult (1, 2), conv_resample, num_heads 2, num_heads_upsample 4, no
        scale-shift, no resblock_updown, legacy attention order.
"""

import dataclasses
import io
import lzma
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from flatlib.model.unet import (AttentionBlock, GroupNorm32, NAMED_CONFIGS, UNetConfig, UNetModel, count_parameters, create_unet,
                          timestep_embedding)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module", params=["gd_unet_updown_neworder", "gd_unet_legacy_conv"])
def gd_fixture(request):
    raw = lzma.decompress((DATA / f"{request.param}.pt.xz").read_bytes())
    return torch.load(io.BytesIO(raw), weights_only=True)


def run(config, fx):
    model = UNetModel(**config).eval()
    model.load_state_dict(fx["state_dict"], strict=True)
    with torch.no_grad():
        return model(fx["x"], fx["t"]), model


def test_guided_diffusion_checkpoint_loads_and_matches(gd_fixture):
    out, model = run(gd_fixture["config"], gd_fixture)
    # same keys in the same order: optimizer states saved by guided-diffusion index parameters by position
    assert list(model.state_dict()) == list(gd_fixture["state_dict"])
    assert gd_fixture["out"].std() > 0.1  # the comparison below is not against a near-zero output
    torch.testing.assert_close(out, gd_fixture["out"], atol=1e-5, rtol=0)


def test_wrong_attention_order_loads_but_differs(gd_fixture):
    config = dict(gd_fixture["config"])
    config["use_new_attention_order"] = not config["use_new_attention_order"]
    out, _ = run(config, gd_fixture)
    assert (out - gd_fixture["out"]).abs().max() > 1e-2


# Parameter counts of guided-diffusion's own model for the same flags: script_util.create_model at commit
# 22e0df8 with these configs' flags (channel_mult passed explicitly, "1,2,2,2" for 32x32, since upstream has
# no 32x32 default), counted as sum(p.numel() for p in model.parameters()).
GD_PARAMETER_COUNTS = {"cifar10": 52_546_438, "lsun_tower": 295_136_454, "ffhq": 131_229_830}


@pytest.mark.parametrize("name", list(NAMED_CONFIGS))
def test_named_configs_shapes_and_counts(name):
    cfg = NAMED_CONFIGS[name]
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = create_unet(cfg)
        out = model(torch.zeros(2, cfg.in_channels, cfg.image_size, cfg.image_size), torch.tensor([0, 999]))
    assert out.shape == (2, 2 * cfg.in_channels, cfg.image_size, cfg.image_size)  # all learn_sigma
    if name in GD_PARAMETER_COUNTS:
        assert count_parameters(model) == GD_PARAMETER_COUNTS[name]
    else:
        assert 5e5 <= count_parameters(model) <= 2e6


def test_cifar10_forward_on_cpu():
    cfg = NAMED_CONFIGS["cifar10"]
    assert (cfg.channel_mult_tuple, cfg.attention_rates, cfg.num_heads) == ((1, 2, 2, 2), (2, 4), 4)
    with torch.no_grad():
        out = create_unet(cfg).eval()(torch.randn(1, 3, 32, 32), torch.tensor([10]))
    assert out.shape == (1, 6, 32, 32)


def test_zero_init():
    torch.manual_seed(0)
    model = create_unet(NAMED_CONFIGS["tiny"])
    zero_weights = {k for k, v in model.state_dict().items() if k.endswith("weight") and not v.any()}
    expected = {k for k in model.state_dict() if k.endswith("weight")
                and (k.startswith("out.2.") or ".out_layers.3." in k or ".proj_out." in k)}
    assert zero_weights == expected and len(expected) == 1 + 11 + 4  # out conv, 11 ResBlocks, 4 attentions
    out = model(torch.randn(4, 1, 16, 16), torch.tensor([0, 1, 500, 999]))
    assert torch.equal(out, torch.zeros_like(out))


def test_timestep_embedding_by_hand():
    emb = timestep_embedding(torch.tensor([0, 1]), 5)
    # half = 2: frequencies 10000^0 = 1 and 10000^(-1/2) = 0.01; cosines first; odd dim padded with a zero
    expected = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0],
                             [math.cos(1), math.cos(0.01), math.sin(1), math.sin(0.01), 0.0]])
    torch.testing.assert_close(emb, expected)


def randomised_tiny(**changes):
    """The tiny model with every parameter ~ N(0, 0.05^2): away from the zero-init map, whose gradients vanish."""
    torch.manual_seed(0)
    model = create_unet(dataclasses.replace(NAMED_CONFIGS["tiny"], **changes))
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model


def test_scalar_timestep_broadcasts():
    model = randomised_tiny().eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.tensor(7)), model(x, torch.full((3,), 7)))


def test_use_checkpoint_gives_same_gradients():
    plain, ckpt = randomised_tiny(), randomised_tiny(use_checkpoint=True)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 900])
    grads, calls = [], []
    for model in (plain, ckpt):
        calls.append([])  # forward calls of a ResBlock conv and of an attention qkv: the recomputation repeats them
        for layer in (model.input_blocks[1][0].in_layers[2], model.middle_block[1].qkv):
            layer.register_forward_hook(lambda *_, n=calls[-1]: n.append(1))
        torch.manual_seed(1)  # same dropout masks; checkpoint replays the RNG state in the recomputation
        model(x, t).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert [len(c) for c in calls] == [2, 4]
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1])


def test_groupnorm_computes_in_float32():
    norm = GroupNorm32(64)
    torch.manual_seed(0)
    x = torch.randn(2, 64, 8, 8).add(1000).bfloat16()  # mean 1000, std 1: bf16 statistics round differently
    y = norm(x)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, torch.nn.functional.group_norm(x.float(), 32, norm.weight, norm.bias).bfloat16())


def test_default_channel_mult_per_size():
    make = lambda size, **kw: UNetConfig(**{**dict(image_size=size, num_channels=32, num_res_blocks=1, in_channels=3,
                                                   channel_mult="", attention_resolutions="8", num_head_channels=-1,
                                                   dropout=0.0), **kw})
    assert make(64).channel_mult_tuple == (1, 2, 3, 4)
    assert make(32).channel_mult_tuple == (1, 2, 2, 2)
    assert make(16).channel_mult_tuple == (1, 2, 2)
    assert make(128).channel_mult_tuple == (1, 1, 2, 3, 4)  # guided-diffusion's
    with pytest.raises(ValueError, match="no default channel_mult"):
        make(8, attention_resolutions="4")
    assert make(64).attention_rates == (8,)
    with pytest.raises(ValueError, match="among the UNet's resolutions"):
        make(64, channel_mult="1,2")  # 8x8 is never reached with two levels


def test_config_from_dict():
    cfg = NAMED_CONFIGS["lsun_tower"]
    assert UNetConfig.from_dict(dataclasses.asdict(cfg)) == cfg
    assert cfg.attention_rates == (2, 4, 8) and cfg.out_channels == 6
    base = dict(image_size=32, num_channels=64, num_res_blocks=2, in_channels=3, channel_mult="",
                attention_resolutions="16,8", num_head_channels=-1, dropout=0.0)
    assert type(UNetConfig.from_dict({**base, "dropout": 0}).dropout) is float  # an int is a valid float
    with pytest.raises(ValueError, match=r"unknown keys in UNetConfig: 'bogus', 'class_cond'"):
        UNetConfig.from_dict({**base, "bogus": 1, "class_cond": False})
    with pytest.raises(ValueError, match=r"missing required keys \['num_res_blocks'\]"):
        UNetConfig.from_dict({k: v for k, v in base.items() if k != "num_res_blocks"})
    for key, bad in [("num_channels", "64"), ("learn_sigma", 1), ("num_res_blocks", True), ("dropout", "0.1"),
                     ("attention_resolutions", 16)]:
        with pytest.raises(ValueError, match=f"UNetConfig.{key} must be"):
            UNetConfig.from_dict({**base, key: bad})
    with pytest.raises(ValueError, match="comma-separated integers"):
        UNetConfig.from_dict({**base, "channel_mult": "1,2,x"})


@pytest.mark.parametrize("new_order", [False, True])
def test_attention_is_bitwise_the_former_on_cpu_and_contiguous_off_it(monkeypatch, new_order):
    """SDPA's fused GPU kernels need contiguous q/k/v (stride(-1) == 1, else the slow math path); the CPU keeps its
    former transposed views, so every CPU result stays bitwise what it was (forward and gradients)."""
    torch.manual_seed(0)
    block = AttentionBlock(64, num_head_channels=32, use_new_attention_order=new_order)
    torch.nn.init.normal_(block.proj_out.weight)  # zero-initialised: the attention would not reach the output
    x = torch.randn(3, 64, 4, 4, requires_grad=True)

    def former(x):  # the forward before issue 24
        b, c = x.shape[:2]
        qkv = block.qkv(block.norm(x.reshape(b, c, -1)))
        shape, dim = ((b, 3, block.num_heads, c // block.num_heads, -1), 1) if new_order else (
            (b, block.num_heads, 3, c // block.num_heads, -1), 2)
        q, k, v = qkv.reshape(shape).unbind(dim)
        a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return (x.reshape(b, c, -1) + block.proj_out(a.transpose(-1, -2).reshape(b, c, -1))).reshape(x.shape)

    now, before = block(x), former(x)
    assert torch.equal(now, before)
    assert torch.equal(torch.autograd.grad(now.sum(), x)[0], torch.autograd.grad(before.sum(), x)[0])

    layouts = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda *qkv: layouts.append([t.is_contiguous() for t in qkv]) or sdpa(*qkv))
    block(x)
    block.to("meta")(x.detach().to("meta"))  # the device-independent layout off the CPU (meta tensors keep strides)
    assert layouts == [[False] * 3, [True] * 3]
