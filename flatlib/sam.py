"""Sharpness-Aware Minimization (Foret et al., ICLR 2021) around any base optimizer.

SAM minimises ``max_{||e||_2 <= rho} L(w + e)`` with the first-order solution of the inner problem

    e(w) = rho * g / ||g||_2                       (plain SAM, one global norm over all parameters)
    e(w) = rho * w^2 * g / ||w * g||_2             (adaptive SAM, ASAM; Kwon et al. 2021)

and then steps the base optimizer with the gradient taken at ``w + e``. The flatness paper trains ADM with
``--optimizer adam-sam --rho 0.1``: plain SAM around Adam.

Usage (both passes must see the SAME batch, timesteps, noise, IP noise and dropout masks)::

    loss(model).backward();  opt.first_step(zero_grad=True)    # w -> w + e
    loss(model).backward();  opt.second_step(zero_grad=True)   # w <- w, base step with grad at w + e

Tips: ``param_groups`` are shared with the base optimizer, so an LR scheduler built on either acts on the
base step; ``state_dict`` holds the base optimizer's state (Adam moments) for exact resume; under DDP run the
first backward inside ``model.no_sync()`` for the per-replica ascent of the SAM paper; clip gradients (if at
all) after the second backward; EMA/SWA must read the weights after ``second_step`` only.
"""
from __future__ import annotations

import torch


class SAM(torch.optim.Optimizer):
    def __init__(self, params, base_optimizer: type[torch.optim.Optimizer], rho: float = 0.05,
                 adaptive: bool = False, **base_kwargs):
        if rho < 0:
            raise ValueError(f"SAM needs rho >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **base_kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups

    def _ascent_direction(self, p: torch.Tensor, group: dict) -> torch.Tensor:
        """The un-normalised ascent direction: g, or w^2 * g for ASAM (its norm uses |w| * g)."""
        return p.grad * p.square() if group["adaptive"] else p.grad

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        """||g||_2 (or ||w * g||_2 for ASAM) over ALL parameters at once, kept on the device (no host sync)."""
        norms = [(p.grad * p.abs() if group["adaptive"] else p.grad).norm(2)
                 for group in self.param_groups for p in group["params"] if p.grad is not None]
        return torch.stack(norms).norm(2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Store w and move to the adversarial point w + e(w)."""
        scale_denominator = self._grad_norm() + 1e-12
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                self.state[p]["w"] = p.detach().clone()
                p.add_(self._ascent_direction(p, group) * (group["rho"] / scale_denominator))
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w, then take the base optimizer's step with the gradient computed at w + e."""
        for group in self.param_groups:
            for p in group["params"]:
                if "w" in self.state[p]:
                    p.copy_(self.state[p].pop("w"))
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure=None):
        """Full SAM step after a first backward; ``closure`` recomputes the SAME loss and calls backward."""
        if closure is None:
            raise ValueError("SAM.step needs a closure; or call first_step / second_step yourself")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()

    def state_dict(self) -> dict:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups  # load replaces the list: share it again
