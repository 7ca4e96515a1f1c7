"""Where the model runs and how: the ``device`` and ``compile`` params of training and sampling.

``compile`` (issue 13): "off" runs eagerly; any other value is a torch.compile (inductor) mode for the UNet's
forward with static shapes, so training compiles forward and backward once per Trainer (SAM's two passes call
the same compiled module) and sampling once per model and batch shape (the timestep reaches the model as a
tensor: the steps of a chain never recompile). The diffusion arithmetic, optimizer and EMA stay eager.
"max-autotune" and "reduce-overhead" use CUDA graphs on a GPU. flatlib.schema lists the modes.
"""
from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """A ``device`` param: "auto" is cuda:LOCAL_RANK (0 outside torchrun) when a GPU is present, else cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def compiled(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``module`` itself when ``mode`` is "off", else its static-shape ``torch.compile`` in that mode (the
    wrapper shares the parameters; save and load through ``module``, whose state_dict keys are unprefixed)."""
    if mode == "off":
        return module
    return torch.compile(module, mode=None if mode == "default" else mode, dynamic=False)
