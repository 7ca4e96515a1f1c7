"""The diffusion loss on a fixed set of (x0, t, eps) triples: L(theta) of the flatness measures and the held-out
L_simple (``eval_mse``) of training's plateau criterion. Common random numbers: the same images, timesteps and
noise for every model, seed and measure; evaluating it consumes no random numbers of the caller.
"""
from __future__ import annotations

from functools import partial

import torch


class DiffusionLossSet:
    """Fixed (x0, t, eps) triples: the diffusion loss L(theta) of the flatness measures.

    One triple per image of ``images`` (N x C x H x W in [-1, 1]), drawn once from
    ``torch.Generator().manual_seed(seed)`` on the CPU (so the set does not depend on the device):
    t in [t_min, t_max) of ``diffusion``'s timestep indices (default: all of them, the official README's
    ``t_range 1000``), eps ~ N(0, I). Reproduction choice: t is STRATIFIED by default, t_i = t_min +
    floor((i + u_i)(t_max - t_min)/N) with u_i ~ U[0, 1), then shuffled over the images (images may be
    sorted by class), so every stretch of the range is represented and the Monte Carlo error over t is
    small; ``stratified=False`` draws t uniformly at random.

    ``__call__(model)`` returns the mean over triples of L_simple = mean_pixels (eps - eps_theta(x_t, t))^2
    (Ho et al. 2020, Eq. 14), or of the hybrid L_simple + L_vlb of ``diffusion.training_losses`` when
    ``hybrid``, evaluated in batches of ``batch_size`` on the model's device. It follows the ambient grad
    mode (the perturbation measures run under ``torch.no_grad``); ``batch_terms()`` splits the loss into
    one closure per batch for the Hessian measures.
    """

    def __init__(self, diffusion, images: torch.Tensor, t_range=None, seed: int = 0, stratified: bool = True,
                 batch_size: int = 256, hybrid: bool = False, device="cpu"):
        T = diffusion.num_timesteps
        t_min, t_max = t_range if t_range is not None else (0, T)
        if not 0 <= t_min < t_max <= T:
            raise ValueError(f"t_range {(t_min, t_max)}: need 0 <= t_min < t_max <= {T}")
        n = images.shape[0]
        g = torch.Generator().manual_seed(seed)
        if stratified:
            u = torch.rand(n, generator=g, dtype=torch.float64)
            t = t_min + ((torch.arange(n, dtype=torch.float64) + u) * (t_max - t_min) / n).floor().long()
            t = t[torch.randperm(n, generator=g)]
        else:
            t = torch.randint(t_min, t_max, (n,), generator=g)
        noise = torch.randn(images.shape, generator=g, dtype=torch.float32)
        self.diffusion, self.batch_size, self.hybrid = diffusion, batch_size, hybrid
        self.x0, self.t, self.noise = images.to(device, torch.float32), t.to(device), noise.to(device)

    def __len__(self):
        return self.x0.shape[0]

    def _batch_loss(self, model, start):
        """Sum of the per-triple losses of batch [start, start + batch_size) divided by N."""
        device = next(model.parameters()).device
        x0, t, noise = (a[start:start + self.batch_size].to(device) for a in (self.x0, self.t, self.noise))
        losses = self.diffusion.training_losses(model, x0, t, noise)["loss" if self.hybrid else "mse"]
        return losses.sum() / len(self)

    def batch_terms(self):
        """One closure per batch; their sum is ``self(model)``."""
        return [partial(self._batch_loss, start=s) for s in range(0, len(self), self.batch_size)]

    def __call__(self, model):
        return sum(term(model) for term in self.batch_terms())
