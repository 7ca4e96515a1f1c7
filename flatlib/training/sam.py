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
        self._perturbed: list[torch.Tensor] = []  # parameters moved to w + e by first_step

    def _groups_with_grads(self) -> list[tuple[dict, list[torch.Tensor]]]:
        """(group, its parameters that have a gradient) for every group that has any."""
        groups = [(group, [p for p in group["params"] if p.grad is not None]) for group in self.param_groups]
        return [(group, params) for group, params in groups if params]

    @staticmethod
    @torch.no_grad()
    def _grad_norm(groups) -> torch.Tensor:
        """||g||_2 (or ||w * g||_2 for ASAM) over ALL parameters at once, kept on the device (no host sync)."""
        norms = []
        for group, params in groups:
            grads = [p.grad for p in params]
            norms += torch._foreach_norm(torch._foreach_mul(grads, torch._foreach_abs(params))
                                         if group["adaptive"] else grads)
        return torch.stack(norms).norm(2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Store w and move to the adversarial point w + e(w): e = rho g / ||g|| (ASAM: rho w^2 g / ||w g||).
        Multi-tensor (foreach) kernels: a handful of launches for the whole model instead of a few per tensor."""
        groups = self._groups_with_grads()
        scale_denominator = self._grad_norm(groups) + 1e-12
        self._perturbed = []
        for group, params in groups:
            for p in params:
                if "w" not in self.state[p]:
                    self.state[p]["w"] = torch.empty_like(p)  # kept between steps: no allocation per step
            torch._foreach_copy_([self.state[p]["w"] for p in params], params)
            self._perturbed += params
            direction = [p.grad for p in params]
            if group["adaptive"]:
                direction = torch._foreach_mul(direction, torch._foreach_mul(params, params))
            torch._foreach_add_(params, torch._foreach_mul(direction, group["rho"] / scale_denominator))
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore w, then take the base optimizer's step with the gradient computed at w + e."""
        if self._perturbed:
            torch._foreach_copy_(self._perturbed, [self.state[p]["w"] for p in self._perturbed])
            self._perturbed = []
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
