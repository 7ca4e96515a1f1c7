"""Strict loading of a guided-diffusion UNet state_dict into flatlib's UNet, and what a mismatch means.

guided-diffusion, DDPM-IP and ADM-ES save ``model.state_dict()`` (fp32 weights) as ``model*.pt`` and
``ema_*.pt``; flatlib's UNet has the same keys and shapes for the same flags (tests/test_unet.py). A file that
does not fit the flags raises :class:`WeightsMismatchError`: it lists every missing, unexpected and mis-shaped
key and names the flags the file's shapes call for (:func:`architecture`: num_channels, channel_mult,
num_res_blocks, attention_resolutions, use_scale_shift_norm, resblock_updown, learn_sigma).

What the weights cannot tell: the flags of :data:`SHAPELESS_FLAGS` (the attention order and the split into
heads) change the outputs but no shape, so a wrong one loads and computes something else. :func:`check_reference`
catches them with an output of the original code (``{x, t, out}`` saved by ``torch.save``) and names the
setting that reproduces it. Dropout and the diffusion flags (schedule, steps, loss) leave no trace at all.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from flatlib.training.checkpoints import read_checkpoint
from flatlib.errors import CorruptFileError
from flatlib.model.unet import AttentionBlock, UNetModel, create_unet
from flatlib.schema import DEFAULT_CHANNEL_MULT, UNetConfig

SHAPELESS_FLAGS = ("use_new_attention_order", "num_heads", "num_head_channels", "num_heads_upsample")
#: head splits tried by :func:`check_reference`: channels per head, or a number of heads
HEAD_CHANNELS, HEAD_COUNTS = (8, 16, 32, 64, 128, 256), (1, 2, 4, 8, 16)
#: relative error (max |ours - reference| / max |reference|) under which an output reproduces a reference
REFERENCE_TOLERANCE = 1e-3


class WeightsMismatchError(CorruptFileError):
    """A weights file that does not fit the flags it is imported with."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state_dict (name -> tensor) a guided-diffusion checkpoint file holds."""
    state = read_checkpoint(path, remedy="place an intact copy of the file there")
    if not (isinstance(state, dict) and state
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())):
        raise CorruptFileError(f"{Path(path).resolve()} holds a {type(state).__name__} that is not a state_dict "
                               "(names -> tensors), which is what guided-diffusion saves as model*.pt and ema_*.pt")
    return state


def expected_shapes(cfg: UNetConfig) -> dict[str, tuple]:
    """Key -> shape of flatlib's (= guided-diffusion's) UNet for ``cfg``; built on the meta device (no memory)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in create_unet(cfg).state_dict().items()}


def _layer(shapes: dict, prefix: str) -> str | None:
    """The kind of the layer at ``prefix``: "res" (ResBlock), "attention", "resample" (conv) or None."""
    if f"{prefix}.in_layers.2.weight" in shapes:
        return "res"
    if f"{prefix}.qkv.weight" in shapes:
        return "attention"
    if f"{prefix}.op.weight" in shapes or f"{prefix}.conv.weight" in shapes:
        return "resample"
    return None


def architecture(shapes: dict[str, tuple]) -> dict | None:
    """The flags that a UNet state_dict's shapes fix, read off its output blocks (deepest level first; the last
    block of every level but the top one ends with an upsampler, a ResBlock under resblock_updown); None when
    the keys are not laid out as guided-diffusion's UNet."""
    try:
        width = shapes["time_embed.0.weight"][1]
        num_blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("output_blocks."))
        blocks = [[_layer(shapes, f"output_blocks.{j}.{i}") for i in range(3)] for j in range(num_blocks)]
        up_blocks = [j for j, layers in enumerate(blocks) if {"res", "resample"} & set(layers[1:])]
        levels = len(up_blocks) + 1
        per_level, rest = divmod(num_blocks, levels)
        if rest or up_blocks != [per_level * (level + 1) - 1 for level in range(levels - 1)]:
            return None
        mults, rates = [], []
        for level in range(levels):
            first = level * per_level
            mult = shapes[f"output_blocks.{first}.0.out_layers.3.weight"][0] / width
            mults.insert(0, int(mult) if mult.is_integer() else mult)
            if any(blocks[j][1] == "attention" for j in range(first, first + per_level)):
                rates.insert(0, 2 ** (levels - 1 - level))
        top_width = shapes["output_blocks.0.0.out_layers.3.weight"][0]
        return dict(in_channels=shapes["input_blocks.0.0.weight"][1], num_channels=width,
                    channel_mult=tuple(mults), num_res_blocks=per_level - 1, attention_rates=tuple(rates),
                    use_scale_shift_norm=shapes["output_blocks.0.0.emb_layers.1.weight"][0] == 2 * top_width,
                    resblock_updown="res" in blocks[up_blocks[0]][1:] if up_blocks else None,
                    out_channels=shapes["out.2.weight"][0])
    except (KeyError, ValueError, IndexError):
        return None


def _image_size_of_attention(cfg: UNetConfig, rates: tuple) -> int | None:
    """The image size, other than ``cfg``'s, at which ``cfg``'s attention resolutions are the downsample
    ``rates`` (ascending), or None."""
    resolutions = [cfg.image_size // rate for rate in cfg.attention_rates]  # descending
    sizes = {resolution * rate for resolution, rate in zip(resolutions, rates)}
    if len(resolutions) != len(rates) or len(sizes) != 1 or cfg.image_size in sizes:
        return None
    return sizes.pop()


def likely_flags(cfg: UNetConfig, found: dict | None, expected: dict) -> list[str]:
    """The flags (with the value the file calls for) that explain how ``found`` differs from ``expected``,
    both :func:`architecture` results, the latter of ``cfg``."""
    if found is None:
        return ["none: the file's keys are not those of guided-diffusion's UNet (time_embed.*, input_blocks.*, "
                "middle_block.*, output_blocks.*, out.*)"]
    differs = {key for key in expected if found[key] != expected[key]}
    hints = []
    size = _image_size_of_attention(cfg, found["attention_rates"])
    if size and "attention_rates" in differs:
        default_mult = ",".join(map(str, found["channel_mult"])) == DEFAULT_CHANNEL_MULT.get(size)
        hints.append(f"--image_size {size} (given {cfg.image_size}; at {size} the given --attention_resolutions are "
                     "the file's attention levels" + (" and its channel_mult is the default" if default_mult else "")
                     + ")")
        differs -= {"attention_rates", "channel_mult"} if default_mult else {"attention_rates"}
    if "num_channels" in differs:
        hints.append(f"--num_channels {found['num_channels']} (given {cfg.num_channels}; the time embedding's "
                     "input width)")
    if "channel_mult" in differs:
        hints.append(f"--channel_mult {','.join(map(str, found['channel_mult']))} (given "
                     f"{','.join(map(str, cfg.channel_mult_tuple))}; without the flag, --image_size picks it)")
    if "num_res_blocks" in differs:
        hints.append(f"--num_res_blocks {found['num_res_blocks']} (given {cfg.num_res_blocks})")
    if "attention_rates" in differs:
        resolutions = ",".join(str(cfg.image_size // rate) for rate in found["attention_rates"])
        hints.append(f"--attention_resolutions {resolutions or 'none'} (given {cfg.attention_resolutions}, image "
                     f"sizes at --image_size {cfg.image_size})")
    if "use_scale_shift_norm" in differs:
        per_channel = "a scale and a shift" if found["use_scale_shift_norm"] else "one bias"
        hints.append(f"--use_scale_shift_norm {found['use_scale_shift_norm']} (given {cfg.use_scale_shift_norm}; "
                     f"the file's emb_layers give {per_channel} per channel)")
    if "resblock_updown" in differs and found["resblock_updown"] is not None:
        hints.append(f"--resblock_updown {found['resblock_updown']} (given {cfg.resblock_updown}; the file resamples "
                     f"with {'ResBlocks' if found['resblock_updown'] else 'convolutions (op, conv)'})")
    if "out_channels" in differs:
        learn_sigma = found["out_channels"] == 2 * found["in_channels"]
        hints.append(f"--learn_sigma {learn_sigma} (given {cfg.learn_sigma}; the file outputs "
                     f"{found['out_channels']} channels for {found['in_channels']} input channels)")
    if "in_channels" in differs:
        hints.append(f"in_channels {found['in_channels']} (given {cfg.in_channels}; guided-diffusion's scripts "
                     "build 3)")
    return hints


def check_state_dict(state_dict: dict[str, torch.Tensor], cfg: UNetConfig, source: str | Path) -> None:
    """Raise :class:`WeightsMismatchError` unless ``state_dict`` has exactly the keys and shapes of the UNet of
    ``cfg``; the message names the likely flags, then every missing, unexpected and mis-shaped key."""
    expected = expected_shapes(cfg)
    found = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mis_shaped = [k for k in expected if k in found and found[k] != expected[k]]
    if not (missing or unexpected or mis_shaped):
        return
    hints = likely_flags(cfg, architecture(found), architecture(expected))
    lines = [f"{source} does not fit the UNet of the given flags; most likely "
             + (f"flag{'s' if len(hints) > 1 else ''}: {'; '.join(hints)}" if hints
                else "flags: none found (no flag value explains all of it)")]
    if missing:
        lines.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
    if mis_shaped:
        lines.append(f"shape mismatches ({len(mis_shaped)}): "
                     + "; ".join(f"{k} {list(found[k])} in the file, {list(expected[k])} for the flags"
                                 for k in mis_shaped))
    raise WeightsMismatchError("\n  ".join(lines))


def model_from_state_dict(cfg: UNetConfig, state_dict: dict[str, torch.Tensor]) -> UNetModel:
    """The UNet of ``cfg`` in eval mode on the CPU, using ``state_dict``'s tensors (as float32) as its
    parameters: nothing is initialised first. Call :func:`check_state_dict` before."""
    with torch.device("meta"):
        model = create_unet(cfg)
    model.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True, assign=True)
    return model.eval()


def read_reference(path: str | Path) -> dict[str, torch.Tensor]:
    """``{x, t, out}``: inputs and output of the original code's model (other keys are ignored)."""
    reference = read_checkpoint(path, remedy="save it again: torch.save(dict(x=x, t=t, out=model(x, t)), path)")
    names = ("x", "t", "out")
    if not (isinstance(reference, dict) and all(isinstance(reference.get(k), torch.Tensor) for k in names)):
        raise CorruptFileError(f"{Path(path).resolve()} is no reference output: it must hold tensors x, t and out "
                               "(torch.save(dict(x=x, t=t, out=model(x, t)), path) with the original code)")
    return {k: reference[k] for k in names}


@torch.no_grad()
def relative_error(cfg: UNetConfig, state_dict: dict[str, torch.Tensor], reference: dict) -> float:
    """max |model(x, t) - out| / max |out| for the UNet of ``cfg`` with ``state_dict``."""
    out, expected = model_from_state_dict(cfg, state_dict)(reference["x"].float(), reference["t"]), reference["out"]
    return float((out - expected.float()).abs().max() / expected.float().abs().max().clamp_min(1e-12))


def attention_signature(cfg: UNetConfig) -> tuple:
    """What the shapeless flags change: (heads, order) per attention block; with one head both orders agree."""
    with torch.device("meta"):
        blocks = [m for m in create_unet(cfg).modules() if isinstance(m, AttentionBlock)]
    return tuple((b.num_heads, b.use_new_attention_order if b.num_heads > 1 else None) for b in blocks)


def shapeless_alternatives(cfg: UNetConfig) -> list[dict]:
    """Changes of :data:`SHAPELESS_FLAGS` that make another function of the same weights, fewest flags first."""
    heads = [{}] + [dict(num_head_channels=c) for c in HEAD_CHANNELS] + [
        dict(num_head_channels=-1, num_heads=h, num_heads_upsample=-1) for h in HEAD_COUNTS]
    orders = [{}, dict(use_new_attention_order=not cfg.use_new_attention_order)]
    seen, changes = {attention_signature(cfg)}, []
    for split in heads:
        for order in orders:
            change = {k: v for k, v in {**split, **order}.items() if getattr(cfg, k) != v}
            try:
                signature = attention_signature(dataclasses.replace(cfg, **change))
            except ValueError:  # the heads do not divide some attention width
                continue
            if signature not in seen:
                seen.add(signature)
                changes.append(change)
    return sorted(changes, key=len)


def _as_flags(values: dict) -> str:
    return " ".join(f"--{k} {v}" for k, v in values.items())


def check_reference(cfg: UNetConfig, state_dict: dict[str, torch.Tensor], reference: dict, source: str | Path,
                    tolerance: float = REFERENCE_TOLERANCE) -> float:
    """The relative error with which the weights reproduce ``reference`` (:func:`read_reference`); above
    ``tolerance``, raise :class:`WeightsMismatchError` naming the :data:`SHAPELESS_FLAGS` setting that does
    reproduce it (the weights loaded with :func:`check_state_dict`, so the shapes are right)."""
    x, out = reference["x"], reference["out"]
    if x.dim() != 4 or x.shape[1] != cfg.in_channels or out.shape != (x.shape[0], cfg.out_channels, *x.shape[2:]):
        raise WeightsMismatchError(f"the reference output does not fit the flags: x {list(x.shape)} and out "
                                   f"{list(out.shape)}, where the UNet maps [N, {cfg.in_channels}, H, W] to "
                                   f"[N, {cfg.out_channels}, H, W]")
    error = relative_error(cfg, state_dict, reference)
    if error <= tolerance:
        return error
    message = (f"{source} loads but does not reproduce the reference output (relative error {error:.3g} > "
               f"{tolerance:g}): ")
    for change in shapeless_alternatives(cfg):
        alternative = dataclasses.replace(cfg, **change)
        alternative_error = relative_error(alternative, state_dict, reference)
        if alternative_error <= tolerance:
            raise WeightsMismatchError(
                message + f"most likely flag{'s' if len(change) > 1 else ''}: {_as_flags(change)} (given "
                f"{_as_flags({k: getattr(cfg, k) for k in change})}), which reproduces it (relative error "
                f"{alternative_error:.2g}); these flags change outputs, not shapes")
    raise WeightsMismatchError(message + "no setting of the attention order or the heads reproduces it either: the "
                               "reference comes from other weights or other flags")
