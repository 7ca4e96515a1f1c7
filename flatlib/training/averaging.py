"""Weight averaging: EMA (indirect flatness through averaging, as in ADM) and SWA (Izmailov et al. 2018).

EMA: ``w_ema <- rate * w_ema + (1 - rate) * w`` after every completed optimizer step (after SAM's
``second_step``, so never on perturbed weights). ADM uses rate 0.9999. For short runs an optional warm-up
uses ``min(rate, (1 + n) / (10 + n))`` after ``n`` updates (TensorFlow's ``num_updates`` rule) so that the
average forgets the initialisation; this warm-up is a reproduction choice for the CPU profile.

SWA: the flatness paper's separate phase: resume from a late checkpoint and keep training with a cyclical
learning rate; the official README gives ``swa_window 100`` and ``swa_lr_min 1e-6`` but not the schedule.
Our reproduction choice: within each window of ``window`` steps the LR decays linearly from the run's LR
to ``lr_min``, and the weights at the end of each window (the LR minimum) enter an equal-weight running
average (``torch.optim.swa_utils.AveragedModel``). The UNet has no BatchNorm, so no ``update_bn`` pass.
"""
from __future__ import annotations

import copy

import torch
from torch.optim.swa_utils import AveragedModel


class EMA:
    """An exponential moving average of a model's parameters, kept as a ready-to-use model copy."""

    def __init__(self, model: torch.nn.Module, rate: float, warmup: bool = False):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"EMA rate must be in [0, 1), got {rate}")
        self.rate, self.warmup, self.num_updates = rate, warmup, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def current_rate(self) -> float:
        if self.warmup:
            return min(self.rate, (1 + self.num_updates) / (10 + self.num_updates))
        return self.rate

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One EMA step on every parameter and floating buffer: lerp(w_ema, w, 1 - rate)."""
        weight = 1.0 - self.current_rate()
        ema = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        live = [t for t in model.state_dict().values() if t.is_floating_point()]
        torch._foreach_lerp_(ema, live, weight)
        self.num_updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = state["num_updates"]


def swa_learning_rate(step_in_phase: int, window: int, lr_max: float, lr_min: float) -> float:
    """Cyclical LR of the SWA phase: linear decay from lr_max (first step of a window) to lr_min (last)."""
    position = step_in_phase % window
    return lr_max - (lr_max - lr_min) * position / max(window - 1, 1)


class SWA:
    """Equal-weight average of the weights at the end of every LR cycle of the SWA phase."""

    def __init__(self, model: torch.nn.Module, window: int, lr_max: float, lr_min: float):
        if window < 1 or lr_min > lr_max:
            raise ValueError(f"SWA needs window >= 1 and lr_min <= lr_max, got {window}, {lr_min}, {lr_max}")
        self.window, self.lr_max, self.lr_min = window, lr_max, lr_min
        self.averaged = AveragedModel(model, use_buffers=True)
        self.averaged.requires_grad_(False)

    @property
    def model(self) -> torch.nn.Module:
        return self.averaged.module

    @property
    def num_averaged(self) -> int:
        return int(self.averaged.n_averaged)

    def learning_rate(self, step_in_phase: int) -> float:
        return swa_learning_rate(step_in_phase, self.window, self.lr_max, self.lr_min)

    def after_step(self, model: torch.nn.Module, step_in_phase: int) -> bool:
        """Call after optimizer step ``step_in_phase`` (0-based); averages at a window's end. True if it did."""
        if (step_in_phase + 1) % self.window:
            return False
        self.averaged.update_parameters(model)
        return True

    def state_dict(self) -> dict:
        return self.averaged.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.averaged.load_state_dict(state)
