"""Post-training weight quantization: the "quantized weights = theta + delta" experiment of the paper.

The paper reports FID of models whose weights are quantized to 4 or 8 bits after training (a flat
minimum should tolerate the perturbation delta = Q(theta) - theta) but does not publish the scheme.
Reproduction choice (not a paper fact, a parameter in params.yaml): symmetric round-to-nearest

    s = max|w| / (2^(b-1) - 1),   Q(w) = s * clamp(round(w / s), -(2^(b-1) - 1), 2^(b-1) - 1),

with one scale per tensor by default or one per output channel (dim 0) as an option, applied to the
weights of every ``nn.Conv1d``/``nn.Conv2d`` (this includes the attention ``qkv``/``proj_out`` 1-D convs
of the ADM UNet) and ``nn.Linear``; biases, GroupNorm parameters and buffers stay fp32. The weights are
fake-quantized: stored dequantized in floating point, so the model runs unchanged.
"""
from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn as nn

from flatlib.schema import QuantConfig

LAYER_TYPES = {"conv": (nn.Conv1d, nn.Conv2d), "linear": (nn.Linear,)}


def quantize_tensor(w: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """Symmetric round-to-nearest quantization of ``w`` to ``bits`` bits, returned dequantized.

    The scale is max|w| / (2^(bits-1) - 1) over the whole tensor, or over each slice ``w[i]`` (output
    channel) when ``per_channel``. An all-zero tensor (or channel) maps to zeros. Same dtype as ``w``.
    """
    if bits < 2:
        raise ValueError(f"bits must be >= 2 for a symmetric grid, got {bits}")
    qmax = 2 ** (bits - 1) - 1
    x = w.detach().to(torch.promote_types(w.dtype, torch.float32))
    if per_channel and x.dim() > 0:
        amax = x.abs().reshape(x.shape[0], -1).amax(dim=1).view(-1, *([1] * (x.dim() - 1)))
    else:
        amax = x.abs().amax()
    scale = torch.where(amax > 0, amax / qmax, torch.ones_like(amax))
    return (torch.clamp(torch.round(x / scale), -qmax, qmax) * scale).to(w.dtype)


def quantize_model(model: nn.Module, bits: int, per_channel: bool = False,
                   layer_types=("conv", "linear")) -> tuple[nn.Module, dict]:
    """Quantize the weights of the chosen layer types in a deep copy of ``model``; ``model`` is untouched.

    Returns ``(quantized_model, report)``; ``report`` holds ``bits``, ``per_channel``, ``layer_types``,
    ``num_quantized`` (weight tensors), ``num_params`` (their elements), ``per_layer`` (parameter name ->
    relative L2 error ||Q(w) - w|| / ||w||) and ``rel_error`` (the same over all quantized weights).
    """
    unknown = set(layer_types) - set(LAYER_TYPES)
    if unknown:
        raise ValueError(f"unknown layer_types {sorted(unknown)}; choose from {sorted(LAYER_TYPES)}")
    classes = tuple(c for name in layer_types for c in LAYER_TYPES[name])
    qmodel = copy.deepcopy(model)
    per_layer, err_sq, norm_sq, num_params = {}, 0.0, 0.0, 0
    with torch.no_grad():
        for name, module in qmodel.named_modules():
            if not isinstance(module, classes):
                continue
            w = module.weight
            q = quantize_tensor(w, bits, per_channel)
            err, norm = (q - w).double().norm().item(), w.double().norm().item()
            per_layer[f"{name}.weight"] = err / norm if norm > 0 else 0.0
            err_sq, norm_sq, num_params = err_sq + err ** 2, norm_sq + norm ** 2, num_params + w.numel()
            w.copy_(q)
    report = dict(bits=bits, per_channel=per_channel, layer_types=tuple(layer_types),
                  num_quantized=len(per_layer), num_params=num_params, per_layer=per_layer,
                  rel_error=(err_sq / norm_sq) ** 0.5 if norm_sq > 0 else 0.0)
    return qmodel, report
