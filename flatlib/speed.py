"""Compiled hot paths (issue 13): one switch per section, ``train.compile`` and ``sample.compile``.

``"off"`` runs eagerly. Any other value is a ``torch.compile`` (inductor) mode applied to the UNet's forward
with static shapes (``dynamic=False``): training compiles forward and backward (AOTAutograd) once per
Trainer, and SAM's two passes call the same compiled module; sampling compiles once per model and batch
shape, and the timestep reaches the model as a tensor, so the steps of a chain never recompile. The
diffusion arithmetic, the optimizer and EMA stay eager. ``"max-autotune"`` (and, for sampling,
``"reduce-overhead"``) use CUDA graphs on a GPU.
"""
from __future__ import annotations

import torch

from flatlib.config import ConfigError

TRAIN_COMPILE_MODES = ("off", "default", "max-autotune")
SAMPLE_COMPILE_MODES = TRAIN_COMPILE_MODES + ("reduce-overhead",)


def check_compile_mode(key: str, mode: str, modes: tuple[str, ...]) -> None:
    """Raise a ConfigError naming ``key`` unless ``mode`` is one of ``modes``."""
    if mode not in modes:
        raise ConfigError(f"{key} must be one of {modes}, got {mode!r}")


def compiled(module: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``module`` itself when ``mode`` is "off", else its static-shape ``torch.compile`` in that mode (the
    wrapper shares the parameters; save and load through ``module``, whose state_dict keys are unprefixed)."""
    if mode == "off":
        return module
    return torch.compile(module, mode=None if mode == "default" else mode, dynamic=False)
