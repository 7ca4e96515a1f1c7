"""The optimizers params.yaml's ``optim.optimizer`` names: one entry each in :data:`OPTIMIZERS` (name ->
builder), the way NVlabs/edm names its optimizer and loss classes. A builder takes the model's parameters and
the typed ``optim`` section and returns a torch optimizer. An optimizer with SAM's ``first_step`` /
``second_step`` is trained with two forward/backward passes per step on the same batch and noise
(flatlib.training.trainer); any other with one pass and ``step()``.

To add one (say GAM): write its class (like flatlib.training.sam.SAM), a builder here and one entry in
:data:`OPTIMIZERS`; params.yaml's ``optim.optimizer`` (or a variant's) then names it.
"""
from __future__ import annotations

import torch

from flatlib.schema import OptimConfig, check_choice
from flatlib.training.sam import SAM


def _adamw_kwargs(parameters: list, cfg: OptimConfig) -> dict:
    """AdamW's settings; on CUDA one fused kernel for the update (the CPU keeps its step, bitwise)."""
    fused = bool(parameters) and parameters[0].device.type == "cuda"
    return dict(lr=cfg.lr, weight_decay=cfg.weight_decay, **({"fused": True} if fused else {}))


def adam(parameters, cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW with the lineage's weight decay (0 = Adam): ADM's optimizer."""
    parameters = list(parameters)
    return torch.optim.AdamW(parameters, **_adamw_kwargs(parameters, cfg))


def adam_sam(parameters, cfg: OptimConfig) -> torch.optim.Optimizer:
    """SAM (or ASAM when ``adaptive``) of radius ``rho`` around AdamW (official ``--optimizer adam-sam``)."""
    parameters = list(parameters)
    return SAM(parameters, torch.optim.AdamW, rho=cfg.rho, adaptive=cfg.adaptive, **_adamw_kwargs(parameters, cfg))


OPTIMIZERS = {"adam": adam, "adam-sam": adam_sam}


def build_optimizer(parameters, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, over ``parameters``."""
    check_choice("optim.optimizer", cfg.optimizer, OPTIMIZERS)
    return OPTIMIZERS[cfg.optimizer](parameters, cfg)


def is_two_pass(optimizer) -> bool:
    """Whether ``optimizer`` takes SAM's two passes (``first_step`` at w, ``second_step`` at the perturbed w)."""
    return hasattr(optimizer, "first_step") and hasattr(optimizer, "second_step")
