"""Flatness of a loss minimum: LPF, MC sharpness, 1-D/2-D loss landscapes and Hessian spectrum.

Every measure takes a loss closure ``loss_fn(model) -> scalar Tensor`` that evaluates the model on FIXED
data, so the same code serves any model; the model is put in eval mode (dropout off) for the measurement
and its train/eval flags are restored afterwards. For diffusion models :class:`flatlib.model.loss_set.DiffusionLossSet` is that
closure: a fixed set of (x0, t, eps) triples shared across draws, methods and checkpoints (common random
numbers), as the paper's "loss under weight perturbation" comparisons require.

Measures (theta = the parameters with ``requires_grad``; every perturbation is applied tensor by tensor
in place and undone by copying back one saved state, so theta is restored bitwise; the landscapes also
hold their one or two directions):

* LPF (Bisla et al., AISTATS 2022): LPF_sigma(theta) = E_{delta ~ N(0, sigma^2 I)} L(theta + delta),
  Monte Carlo over M draws; ``filter_relative`` gives output filter j of each tensor the standard
  deviation sigma * ||theta_j|| (their function-preserving filter normalisation; 0-/1-D tensors use
  sigma * |theta_i|).
* MC sharpness (average case, Jiang et al. 2020): LPF_sigma(theta) - L(theta).
* Loss along filter-normalised random directions (Li et al. 2018): L(theta + a d), L(theta + a d1 + b d2).
* Hessian (PyHessian's algorithms): dominant eigenvalue by power iteration and trace by Hutchinson's
  estimator tr(H) = E_v[v^T H v] with Rademacher v, on Hessian-vector products by double backward.

Random numbers come from ``torch.Generator(device of the parameters).manual_seed(seed)``: two calls with
the same seed on the same device type draw identical perturbations, and the k-th direction of
``loss_curve_1d`` is the k-th of ``loss_surface_2d`` with the same seed.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn

from flatlib.progress import progress_bar, track


@contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode and restore every submodule's ``training`` flag on exit."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _params(model):
    return [p for p in model.parameters() if p.requires_grad]


def _generator(seed, params):
    return torch.Generator(device=params[0].device).manual_seed(seed)


def _randn(p, generator):
    return torch.randn(p.shape, generator=generator, device=generator.device, dtype=p.dtype).to(p.device)


def _dot(xs, ys):
    return sum(float((x * y).sum()) for x, y in zip(xs, ys))


def _filter_norms(t):
    """Norm of each output filter t[j] broadcastable to ``t``; |t| for 0-/1-D tensors."""
    if t.dim() <= 1:
        return t.abs()
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _loss_at(model, loss_fn, params, saved, deltas):
    """L(theta + delta) for per-tensor ``deltas`` (consumed lazily), then theta <- saved bitwise."""
    try:
        for p, d in zip(params, deltas):
            p.add_(d)
        return float(loss_fn(model))
    finally:
        for p, p0 in zip(params, saved):
            p.copy_(p0)


@contextmanager
def _probe(model):
    """Eval mode, no grad; yields (params, saved copy of params)."""
    with eval_mode(model), torch.no_grad():
        params = _params(model)
        yield params, [p.detach().clone() for p in params]


def lpf(model, loss_fn, sigma: float, draws: int, seed: int, filter_relative: bool = False,
        progress: bool = False) -> dict:
    """Monte Carlo LPF and MC sharpness at noise level ``sigma`` over ``draws`` Gaussian perturbations.

    Returns dict(lpf, std_err (of the mean over draws), base_loss = L(theta), mc_sharpness = lpf -
    base_loss, losses = np.ndarray of the per-draw L(theta + delta)).
    """
    with _probe(model) as (params, saved):
        base = float(loss_fn(model))
        scales = [sigma * _filter_norms(p0) if filter_relative else sigma for p0 in saved]
        g = _generator(seed, params)
        losses = np.array([
            _loss_at(model, loss_fn, params, saved, (s * _randn(p, g) for p, s in zip(params, scales)))
            for _ in track(range(draws), f"LPF sigma={sigma:g}", "draw", enabled=progress)])
    mean = float(losses.mean())
    std_err = float(losses.std(ddof=1) / np.sqrt(draws)) if draws > 1 else 0.0
    return dict(lpf=mean, std_err=std_err, base_loss=base, mc_sharpness=mean - base, losses=losses)


def filter_normalized_direction(model, generator: torch.Generator) -> list[torch.Tensor]:
    """Random direction d with ||d_j|| = ||theta_j|| for every output filter j (Li et al. 2018, Sec. 4).

    One tensor per parameter with ``requires_grad`` (in ``model.parameters()`` order); tensors with
    ndim <= 1 (biases, norm gains) get zeros and draw no random numbers. Drawn on ``generator.device``.
    """
    out = []
    for p in _params(model):
        if p.dim() <= 1:
            out.append(torch.zeros_like(p))
            continue
        d = _randn(p, generator)
        out.append(d * (_filter_norms(p.detach()) / _filter_norms(d)))
    return out


def loss_curve_1d(model, loss_fn, alphas, seed: int, directions: int = 1, progress: bool = False) -> dict:
    """L(theta + a d_k) for a in ``alphas`` along ``directions`` filter-normalised random directions.

    Returns dict(alphas, losses = np.ndarray [directions, len(alphas)], base_loss).
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    losses = np.empty((directions, len(alphas)))
    with _probe(model) as (params, saved):
        base = float(loss_fn(model))
        g = _generator(seed, params)
        with progress_bar(losses.size, "1-D loss curve", "point", enabled=progress) as bar:
            for k in range(directions):
                d = filter_normalized_direction(model, g)
                for i, a in enumerate(alphas):
                    losses[k, i] = _loss_at(model, loss_fn, params, saved, (float(a) * x for x in d))
                    bar.update()
    return dict(alphas=alphas, losses=losses, base_loss=base)


def loss_surface_2d(model, loss_fn, alphas, betas, seed: int, progress: bool = False) -> dict:
    """L(theta + a d1 + b d2) on the grid ``alphas`` x ``betas`` (two filter-normalised directions).

    Returns dict(alphas, betas, losses = np.ndarray [len(alphas), len(betas)], base_loss).
    """
    alphas, betas = np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)
    losses = np.empty((len(alphas), len(betas)))
    with _probe(model) as (params, saved):
        base = float(loss_fn(model))
        g = _generator(seed, params)
        d1, d2 = filter_normalized_direction(model, g), filter_normalized_direction(model, g)
        grid = [(i, j) for i in range(len(alphas)) for j in range(len(betas))]
        for i, j in track(grid, "2-D loss surface", "point", enabled=progress):
            a, b = float(alphas[i]), float(betas[j])
            losses[i, j] = _loss_at(model, loss_fn, params, saved, (a * x + b * y for x, y in zip(d1, d2)))
    return dict(alphas=alphas, betas=betas, losses=losses, base_loss=base)


def _hvp(model, loss_terms, params, v):
    """H v = d<grad L, v>/d theta with L = sum of ``loss_terms``; one term's graph alive at a time."""
    out = [torch.zeros_like(p) for p in params]
    for term in loss_terms:
        with torch.enable_grad():
            grads = torch.autograd.grad(term(model), params, create_graph=True, allow_unused=True)
            gv = [(g * u).sum() for g, u in zip(grads, v) if g is not None and g.requires_grad]
            if not gv:
                continue  # the loss is linear (or constant) in theta: H = 0
            hv = torch.autograd.grad(torch.stack(gv).sum(), params, allow_unused=True)
        for o, h in zip(out, hv):
            if h is not None:
                o.add_(h)
    return out


def _terms(loss_fn):
    return [loss_fn] if callable(loss_fn) else list(loss_fn)


def hessian_top_eigenvalue(model, loss_fn, iters: int = 100, tol: float = 1e-3, seed: int = 0,
                           progress: bool = False) -> dict:
    """Dominant (largest |lambda|) Hessian eigenvalue by power iteration on Hessian-vector products.

    ``loss_fn`` is a closure or a sequence of closures whose sum is the loss (e.g.
    ``DiffusionLossSet.batch_terms()``, to bound memory: the double-backward graph of one term at a
    time). Stops when the Rayleigh quotient changes by less than ``tol`` relative. Returns
    dict(eigenvalue, iterations, converged, eigenvector = list of tensors like the parameters).
    """
    terms = _terms(loss_fn)
    with eval_mode(model):
        params = _params(model)
        g = _generator(seed, params)
        v = [_randn(p, g) for p in params]
        eig, converged, it = None, False, 0
        for it in track(range(1, iters + 1), "Hessian power iteration", "iteration", enabled=progress):
            norm = _dot(v, v) ** 0.5
            v = [x / (norm + 1e-12) for x in v]
            hv = _hvp(model, terms, params, v)
            new = _dot(v, hv)
            converged = eig is not None and abs(new - eig) <= tol * abs(eig)
            eig, v = new, hv
            if converged:
                break
    norm = _dot(v, v) ** 0.5
    return dict(eigenvalue=eig, iterations=it, converged=converged,
                eigenvector=[x / (norm + 1e-12) for x in v])


def hessian_trace(model, loss_fn, samples: int = 100, seed: int = 0, progress: bool = False) -> dict:
    """Hutchinson estimate of tr(H) = E[v^T H v] over ``samples`` Rademacher vectors v.

    ``loss_fn`` as in :func:`hessian_top_eigenvalue`. Returns dict(trace, std_err, estimates).
    """
    terms = _terms(loss_fn)
    with eval_mode(model):
        params = _params(model)
        g = _generator(seed, params)
        estimates = []
        for _ in track(range(samples), "Hessian trace (Hutchinson)", "vector", enabled=progress):
            v = [(torch.randint(0, 2, p.shape, generator=g, device=g.device) * 2 - 1).to(p) for p in params]
            estimates.append(_dot(v, _hvp(model, terms, params, v)))
    estimates = np.array(estimates)
    std_err = float(estimates.std(ddof=1) / np.sqrt(samples)) if samples > 1 else 0.0
    return dict(trace=float(estimates.mean()), std_err=std_err, estimates=estimates)


