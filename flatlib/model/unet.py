"""ADM UNet (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis", Sec. 3), unconditional.

Our own implementation of openai/guided-diffusion's `UNetModel` with the same constructor flags and the same
state_dict keys and shapes, so a guided-diffusion / DDPM-IP / ADM-ES checkpoint loads with `strict=True` and
gives the same outputs (tests/test_unet.py checks this against fixtures made with guided-diffusion itself).

    t   -> sinusoid(t) (dim C) -> Linear(C, 4C) -> SiLU -> Linear(4C, 4C) = emb                  time_embed
    x   -> conv3x3 to C*channel_mult[0]                                                          input_blocks.0
        -> per level: num_res_blocks x (ResBlock [+ Attention]), then a 2x downsample            input_blocks.*
        -> ResBlock -> Attention -> ResBlock                                                     middle_block
        -> per level, reversed: (num_res_blocks + 1) x (concat the next stored input-block
           output, ResBlock [+ Attention]), then a 2x upsample                                   output_blocks.*
        -> GroupNorm -> SiLU -> conv3x3 (zero-init) to out_channels                              out

Level l has width model_channels * channel_mult[l]; attention runs where the downsample rate (1, 2, 4, ...)
is in `attention_resolutions`. Every output of an input block is stored and concatenated, last in first out,
to the input of one output block (the UNet skip connections).
"""

import math
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from flatlib.schema import GROUPS, UNetConfig


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in float32 and cast back (stable under reduced precision)."""

    def __init__(self, channels):
        super().__init__(GROUPS, channels)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def zero_init(module):
    """Zero every parameter of `module` (ADM: last conv of a ResBlock, attention proj_out, output conv),
    so that each residual branch, and the whole network, starts as the identity / zero map."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def maybe_checkpoint(fn, flag, *args):
    """fn(*args); with flag (use_checkpoint) its activations are recomputed in the backward pass, not stored."""
    if flag and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def timestep_embedding(t, dim, max_period=10000):
    """Sinusoidal embedding of the integer timesteps t [N] (Vaswani et al. 2017; Ho et al. 2020):
    [cos(t w_0..w_{h-1}), sin(t w_0..w_{h-1})] with w_i = max_period^(-i/h), h = dim // 2 (cosines first,
    as in ADM); a zero column pads an odd dim. Returns [N, dim] float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return F.pad(torch.cat([torch.cos(args), torch.sin(args)], dim=-1), (0, dim % 2))


class Downsample(nn.Module):
    """Halve H and W: strided conv3x3 when use_conv (conv_resample), else 2x2 average pooling."""

    def __init__(self, channels, use_conv):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    """Double H and W by nearest-neighbour interpolation, followed by a conv3x3 when use_conv."""

    def __init__(self, channels, use_conv):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else nn.Identity()

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding (BigGAN-style, ADM Sec. 3):

        h   = conv3x3(SiLU(GN(x)))                      in_layers (h and x resampled before the conv if up/down)
        h   = GN(h) * (1 + s) + b, (s, b) = Linear(SiLU(emb))    with use_scale_shift_norm ("AdaGN")
            | GN(h + Linear(SiLU(emb)))                         otherwise
        out = skip(x) + conv3x3_zero(Dropout(SiLU(h)))  out_layers; skip = identity or 1x1 conv if widths differ

    up / down (resblock_updown) make it the resampling layer: nearest x2 / 2x2 average pooling of both paths.
    """

    def __init__(self, channels, emb_channels, dropout, out_channels=None, use_scale_shift_norm=False,
                 up=False, down=False, use_checkpoint=False):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.use_checkpoint = use_checkpoint
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(),
                                       nn.Conv2d(channels, out_channels, 3, padding=1))
        self.resample = Upsample(channels, False) if up else Downsample(channels, False) if down else nn.Identity()
        emb_out = 2 * out_channels if use_scale_shift_norm else out_channels  # (scale, shift) or an added bias
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, emb_out))
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Dropout(dropout),
                                        zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        return maybe_checkpoint(self._forward, self.use_checkpoint, x, emb)

    def _forward(self, x, emb):
        h = self.in_layers[-1](self.resample(self.in_layers[:-1](x)))
        x = self.resample(x)
        e = self.emb_layers(emb)[..., None, None]
        norm, rest = self.out_layers[0], self.out_layers[1:]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = norm(h) * (1 + scale) + shift
        else:
            h = norm(h + e)
        return self.skip_connection(x) + rest(h)


def attention_layout(q, k, v):
    """q, k, v [b, heads, d, L] as scaled_dot_product_attention's [b, heads, L, d]. Off the CPU they are made
    contiguous: the fused GPU kernels (flash, memory-efficient) need stride(-1) == 1 and otherwise fall back to
    the slow math path. The CPU keeps the transposed views, which its math kernel computes exactly as before
    (contiguous inputs would take the CPU's flash kernel, or other BLAS calls, and change the last bits of every
    CPU result)."""
    q, k, v = (t.transpose(-1, -2) for t in (q, k, v))
    if q.device.type == "cpu":
        return q, k, v
    return q.contiguous(), k.contiguous(), v.contiguous()


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the H*W positions: x + proj_out(attention(qkv(GN(x)))), where qkv and
    proj_out are 1x1 Conv1d (proj_out zero-init) and attention = softmax(q^T k / sqrt(d)) v per head (ADM
    scales q and k by d^-1/4 each: the same value). Heads = channels // num_head_channels when
    num_head_channels > 0, else num_heads. The 3C qkv channels are laid out (head, q|k|v, d) in the legacy
    order (guided-diffusion's QKVAttentionLegacy, its default) and (q|k|v, head, d) with
    use_new_attention_order (QKVAttention): a checkpoint loads with either flag, only its own one is right.
    """

    def __init__(self, channels, num_heads=1, num_head_channels=-1, use_new_attention_order=False,
                 use_checkpoint=False):
        super().__init__()
        if num_head_channels > 0:
            num_heads = channels // num_head_channels
        if num_heads < 1 or channels % num_heads:
            raise ValueError(f"{channels} attention channels cannot be split into heads "
                             f"(num_heads={num_heads}, num_head_channels={num_head_channels})")
        self.num_heads = num_heads
        self.use_new_attention_order = use_new_attention_order
        self.use_checkpoint = use_checkpoint
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_init(nn.Conv1d(channels, channels, 1))

    def forward(self, x):
        return maybe_checkpoint(self._forward, self.use_checkpoint, x)

    def _forward(self, x):
        b, c, height, width = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        d = c // self.num_heads
        if self.use_new_attention_order:
            q, k, v = qkv.reshape(b, 3, self.num_heads, d, -1).unbind(1)
        else:
            q, k, v = qkv.reshape(b, self.num_heads, 3, d, -1).unbind(2)
        a = F.scaled_dot_product_attention(*attention_layout(q, k, v))
        h = self.proj_out(a.transpose(-1, -2).reshape(b, c, -1))
        return (x + h).reshape(b, c, height, width)


class EmbedSequential(nn.Sequential):
    """nn.Sequential that also hands the timestep embedding to the ResBlocks among its layers."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNetModel(nn.Module):
    """guided-diffusion's UNetModel (2-D, unconditional); see the module docstring for the layout.

    attention_resolutions holds downsample RATES (e.g. (2, 4) for resolutions 16 and 8 at 32x32);
    conv_resample: learned convs in Downsample/Upsample; resblock_updown: ResBlocks resample instead;
    num_heads_upsample (-1 = num_heads) applies to the attention of the output blocks; num_head_channels > 0
    overrides both head counts. forward(x [N, in_channels, H, W], timesteps [N] or scalar) -> [N, out_channels,
    H, W]; with learned variances out_channels = 2 * in_channels (eps, v), split by the diffusion object.
    """

    def __init__(self, image_size, in_channels, model_channels, out_channels, num_res_blocks, attention_resolutions,
                 dropout=0.0, channel_mult=(1, 2, 4, 8), conv_resample=True, num_heads=1, num_head_channels=-1,
                 num_heads_upsample=-1, use_scale_shift_norm=False, resblock_updown=False,
                 use_new_attention_order=False, use_checkpoint=False):
        super().__init__()
        self.image_size, self.in_channels, self.out_channels = image_size, in_channels, out_channels
        self.model_channels = model_channels
        emb_channels = 4 * model_channels
        res = partial(ResBlock, emb_channels=emb_channels, dropout=dropout,
                      use_scale_shift_norm=use_scale_shift_norm, use_checkpoint=use_checkpoint)
        attn = partial(AttentionBlock, num_head_channels=num_head_channels,
                       use_new_attention_order=use_new_attention_order, use_checkpoint=use_checkpoint)
        up_heads = num_heads if num_heads_upsample == -1 else num_heads_upsample
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_channels), nn.SiLU(),
                                        nn.Linear(emb_channels, emb_channels))

        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([EmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_channels, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, out_channels=int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads=num_heads))
                self.input_blocks.append(EmbedSequential(*layers))
                skip_channels.append(ch)
            if level < len(channel_mult) - 1:
                self.input_blocks.append(EmbedSequential(
                    res(ch, down=True) if resblock_updown else Downsample(ch, conv_resample)))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = EmbedSequential(res(ch), attn(ch, num_heads=num_heads), res(ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), out_channels=int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads=up_heads))
                if level and i == num_res_blocks:
                    layers.append(res(ch, up=True) if resblock_updown else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(EmbedSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), zero_init(nn.Conv2d(ch, out_channels, 3, padding=1)))

    def forward(self, x, timesteps):
        emb = self.time_embed(timestep_embedding(timesteps.expand(x.shape[0]), self.model_channels))
        stored, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            stored.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, stored.pop()], dim=1), emb)
        return self.out(h)


def create_unet(cfg: UNetConfig):
    """UNetModel for a UNetConfig (guided-diffusion's create_model, unconditional)."""
    return UNetModel(
        image_size=cfg.image_size, in_channels=cfg.in_channels, model_channels=cfg.num_channels,
        out_channels=cfg.out_channels, num_res_blocks=cfg.num_res_blocks, attention_resolutions=cfg.attention_rates,
        dropout=cfg.dropout, channel_mult=cfg.channel_mult_tuple, num_heads=cfg.num_heads,
        num_head_channels=cfg.num_head_channels, num_heads_upsample=cfg.num_heads_upsample,
        use_scale_shift_norm=cfg.use_scale_shift_norm, resblock_updown=cfg.resblock_updown,
        use_new_attention_order=cfg.use_new_attention_order, use_checkpoint=cfg.use_checkpoint)


def count_parameters(model):
    """Number of scalar parameters of `model`."""
    return sum(p.numel() for p in model.parameters())


# Paper settings: the official README's flags (DESIGN.md), the rest guided-diffusion's defaults. (DDPM-IP's own
# CIFAR-10 command adds num_head_channels 32, resblock_updown and use_new_attention_order; not the README's.)
# "tiny": a 16x16 single-channel UNet for tests and examples (params.yaml's CPU default is its own, smaller one).
_GD = dict(in_channels=3, channel_mult="", num_head_channels=-1, learn_sigma=True)  # guided-diffusion's, learn_sigma
NAMED_CONFIGS = {
    "cifar10": UNetConfig(image_size=32, num_channels=128, num_res_blocks=3, attention_resolutions="16,8",
                          dropout=0.3, **_GD),
    "lsun_tower": UNetConfig(**{**_GD, "num_head_channels": 64}, image_size=64, num_channels=192, num_res_blocks=3,
                             attention_resolutions="32,16,8", resblock_updown=True, use_new_attention_order=True,
                             dropout=0.1, use_scale_shift_norm=True),
    "ffhq": UNetConfig(image_size=64, num_channels=128, num_res_blocks=3, attention_resolutions="32,16,8",
                       resblock_updown=True, use_new_attention_order=True, dropout=0.1, **_GD),
    "tiny": UNetConfig(image_size=16, in_channels=1, num_channels=32, num_res_blocks=1, channel_mult="1,2,2",
                       attention_resolutions="8", num_head_channels=32, learn_sigma=True, dropout=0.1),
}
