"""Flatness measures against analytic quadratics, exact Hessians and bitwise weight restoration."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from flatlib.measure import flatness
from flatlib.model.diffusion import create_diffusion
from flatlib.model.loss_set import DiffusionLossSet
from flatlib.measure.flatness import (filter_normalized_direction, hessian_top_eigenvalue,
                              hessian_trace, loss_curve_1d, loss_surface_2d, lpf)


class Quadratic(nn.Module):
    """L = 0.5 sum_j w_j A w_j^T (+ 0.5 c ||b||^2): w of shape [n] or [filters, n]."""

    def __init__(self, w, A, b=None, c=0.0):
        super().__init__()
        self.w, self.A, self.c = nn.Parameter(w.clone()), A, c
        self.b = None if b is None else nn.Parameter(b.clone())

    def loss(self):
        w = self.w.view(-1, self.A.shape[0])
        out = 0.5 * ((w @ self.A) * w).sum()
        return out if self.b is None else out + 0.5 * self.c * (self.b ** 2).sum()


def quad_loss(model):
    return model.loss()


def spd(n, eigenvalues=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    lam = torch.linspace(0.1, 2.0, n, dtype=torch.float64) if eigenvalues is None \
        else torch.tensor(eigenvalues, dtype=torch.float64)
    return q @ torch.diag(lam) @ q.T, q


def randn(*shape, seed=1):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class SmallNet(nn.Module):
    """conv -> GroupNorm -> dropout -> linear, with a fixed regression target."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.norm = nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4)
        self.drop, self.fc = nn.Dropout(0.5), nn.Linear(4 * 5 * 5, 3)
        self.x, self.y = torch.randn(6, 1, 5, 5), torch.randn(6, 3)

    def forward(self, x):
        return self.fc(self.drop(torch.tanh(self.norm(self.conv(x)))).flatten(1))


def net_loss(model):
    return ((model(model.x) - model.y) ** 2).mean()


def test_lpf_zero_sigma_is_base_loss():
    A, _ = spd(6)
    out = lpf(Quadratic(randn(6), A), quad_loss, sigma=0.0, draws=5, seed=0)
    assert out["lpf"] == out["base_loss"] == pytest.approx(0.5 * float(randn(6) @ A @ randn(6)), rel=1e-12)
    assert out["mc_sharpness"] == 0.0 and out["std_err"] == 0.0 and len(out["losses"]) == 5


def test_lpf_matches_analytic_quadratic():
    # E L(w + delta) = L(w) + 0.5 sigma^2 tr(A), delta ~ N(0, sigma^2 I)
    n = 20
    A, _ = spd(n)
    model = Quadratic(0.2 * randn(n), A)
    previous = 0.0
    for sigma in (0.25, 0.5):
        out = lpf(model, quad_loss, sigma=sigma, draws=2000, seed=3)
        excess = 0.5 * sigma ** 2 * float(torch.trace(A))
        assert out["std_err"] < 0.05 * excess
        assert abs(out["mc_sharpness"] - excess) < 4 * out["std_err"]
        assert out["lpf"] > previous
        previous = out["lpf"]


def test_lpf_filter_relative_analytic():
    # filter j gets std sigma ||w_j||, bias i gets sigma |b_i|:
    # E L = L + 0.5 sigma^2 (tr(A) sum_j ||w_j||^2 + c sum_i b_i^2)
    A, _ = spd(5)
    w = randn(4, 5) * torch.tensor([0.1, 1.0, 3.0, 10.0], dtype=torch.float64)[:, None]
    b = randn(3, seed=2)
    model = Quadratic(w, A, b, c=2.0)
    sigma = 0.3
    out = lpf(model, quad_loss, sigma=sigma, draws=2000, seed=4, filter_relative=True)
    excess = 0.5 * sigma ** 2 * float(torch.trace(A) * (w ** 2).sum() + 2.0 * (b ** 2).sum())
    assert out["std_err"] < 0.05 * excess
    assert abs(out["mc_sharpness"] - excess) < 4 * out["std_err"]
    # the plain variant gives every coordinate the same std: a different expectation
    plain = 0.5 * sigma ** 2 * float(4 * torch.trace(A) + 2.0 * 3)
    assert abs(out["mc_sharpness"] - plain) > 20 * out["std_err"]


def snapshot(model):
    return [p.detach().clone() for p in model.parameters()]


def test_weights_restored_bitwise_and_modes_kept():
    net = SmallNet().train()
    before = snapshot(net)
    results = [lpf(net, net_loss, 0.05, 3, seed=0), lpf(net, net_loss, 0.05, 3, seed=0, filter_relative=True),
               loss_curve_1d(net, net_loss, [-1.0, 0.5], seed=0, directions=2),
               loss_surface_2d(net, net_loss, [-0.5, 0.5], [0.0, 1.0], seed=0),
               hessian_trace(net, net_loss, samples=2, seed=0),
               hessian_top_eigenvalue(net, net_loss, iters=3, seed=0)]
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert all(m.training for m in net.modules())
    # eval mode during the measurement: dropout off, so L(theta) is the deterministic eval loss
    with flatness.eval_mode(net), torch.no_grad():
        eval_loss = float(net_loss(net))
    assert results[0]["base_loss"] == results[2]["base_loss"] == results[3]["base_loss"] == eval_loss


def test_same_seed_same_numbers():
    net = SmallNet()
    a, b, c = (lpf(net, net_loss, 0.1, 4, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a["losses"], b["losses"]) and not np.array_equal(a["losses"], c["losses"])
    assert np.array_equal(loss_curve_1d(net, net_loss, [0.3, 1.0], seed=2)["losses"],
                          loss_curve_1d(net, net_loss, [0.3, 1.0], seed=2)["losses"])
    t1, t2 = hessian_trace(net, net_loss, 3, seed=5), hessian_trace(net, net_loss, 3, seed=5)
    assert np.array_equal(t1["estimates"], t2["estimates"])


def test_filter_normalized_direction():
    net = SmallNet()
    d = filter_normalized_direction(net, torch.Generator().manual_seed(0))
    again = filter_normalized_direction(net, torch.Generator().manual_seed(0))
    assert len(d) == len(list(net.parameters()))
    for (name, p), x, y in zip(net.named_parameters(), d, again):
        assert torch.equal(x, y) and x.shape == p.shape
        if p.dim() == 1:  # biases and GroupNorm gains
            assert name.endswith(("bias", "norm.weight")) and (x == 0).all()
        else:
            torch.testing.assert_close(x.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1))
            assert not torch.allclose(x, p.detach())


def test_curve_and_surface_follow_the_directions():
    A, _ = spd(5)
    model = Quadratic(randn(3, 5), A)
    alphas, betas = [-1.0, 0.0, 0.5, 2.0], [-0.5, 0.0, 1.0]
    curve = loss_curve_1d(model, quad_loss, alphas, seed=11, directions=2)
    surf = loss_surface_2d(model, quad_loss, alphas, betas, seed=11)
    g = torch.Generator().manual_seed(11)
    (d1,), (d2,) = filter_normalized_direction(model, g), filter_normalized_direction(model, g)
    w = model.w.detach()

    def L(x):
        return 0.5 * float(((x @ A) * x).sum())

    np.testing.assert_allclose(curve["losses"], [[L(w + a * d) for a in alphas] for d in (d1, d2)],
                               rtol=1e-12)
    np.testing.assert_allclose(surf["losses"], [[L(w + a * d1 + b * d2) for b in betas] for a in alphas],
                               rtol=1e-12)
    assert curve["losses"][0, 1] == curve["base_loss"] == surf["losses"][1, 1] == L(w)
    np.testing.assert_array_equal(surf["losses"][:, 1], curve["losses"][0])  # first direction shared


def test_power_iteration_and_hutchinson_on_quadratic():
    n = 8
    A, q = spd(n, [6.0, 3.0, 1.0, 0.5, 0.2, 0.1, -0.4, 0.05])
    model = Quadratic(randn(n), A)
    top = hessian_top_eigenvalue(model, quad_loss, iters=500, tol=1e-12, seed=0)
    assert top["converged"] and top["eigenvalue"] == pytest.approx(6.0, rel=1e-9)
    assert abs(float(top["eigenvector"][0] @ q[:, 0])) == pytest.approx(1.0, abs=1e-6)
    # the loss split into a sequence of terms (as DiffusionLossSet.batch_terms) gives the same H
    halves = [lambda m: 0.25 * m.w @ A @ m.w] * 2
    assert hessian_top_eigenvalue(model, halves, iters=500, tol=1e-12, seed=0)["eigenvalue"] == \
        pytest.approx(6.0, rel=1e-9)

    tr = hessian_trace(model, quad_loss, samples=400, seed=1)
    assert tr["std_err"] > 0 and abs(tr["trace"] - float(torch.trace(A))) < 4 * tr["std_err"]
    assert tr["std_err"] < 0.1 * float(torch.trace(A))
    # diagonal A: v^T A v = tr(A) for every Rademacher v
    diag = hessian_trace(Quadratic(randn(n), torch.diag(torch.arange(1.0, n + 1, dtype=torch.float64))),
                         quad_loss, samples=5, seed=1)
    assert diag["trace"] == pytest.approx(36.0, rel=1e-12) and diag["std_err"] == pytest.approx(0, abs=1e-12)


def test_hessian_of_a_network_matches_autograd():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])

    def loss_of(vec):
        chunks = torch.split(vec, [s.numel() for s in shapes])
        params = {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}
        return ((torch.func.functional_call(net, params, (x,)) - y) ** 2).mean()

    H = torch.autograd.functional.hessian(loss_of, flat)
    lam = torch.linalg.eigvalsh(H)
    dominant = float(lam[lam.abs().argmax()])

    def loss(m):
        return ((m(x) - y) ** 2).mean()

    top = hessian_top_eigenvalue(net, loss, iters=2000, tol=1e-13, seed=0)
    assert top["eigenvalue"] == pytest.approx(dominant, rel=1e-6)
    tr = hessian_trace(net, loss, samples=300, seed=0)
    assert abs(tr["trace"] - float(torch.trace(H))) < 4 * tr["std_err"]


# ------------------------------------------------------------------ diffusion loss set

class TinyEps(nn.Module):
    """model(x, t) -> [B, 2C, H, W] (eps, v), with dropout to show that measurements run in eval mode."""

    def __init__(self, zero=False):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.drop = nn.Conv2d(1, 2, 3, padding=1), nn.Dropout(0.3)
        self.temb = nn.Embedding(100, 2)
        if zero:
            for p in self.parameters():
                nn.init.zeros_(p)

    def forward(self, x, t):
        return self.drop(self.conv(x)) + self.temb(t)[:, :, None, None]


@pytest.fixture
def diffusion():
    return create_diffusion(steps=100, noise_schedule="linear", learn_sigma=True)


def images(n=10):
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_loss_set_draws(diffusion):
    ls = DiffusionLossSet(diffusion, images(10), t_range=(20, 70), seed=0)
    assert torch.equal(torch.sort(ls.t).values // 5, torch.arange(4, 14))  # one t per stratum of width 5
    assert not torch.equal(ls.t, torch.sort(ls.t).values)  # shuffled over the images
    again, other = DiffusionLossSet(diffusion, images(10), (20, 70), seed=0), \
        DiffusionLossSet(diffusion, images(10), (20, 70), seed=1)
    assert torch.equal(again.t, ls.t) and torch.equal(again.noise, ls.noise)
    assert not torch.equal(other.noise, ls.noise)
    rnd = DiffusionLossSet(diffusion, images(10), (20, 70), seed=0, stratified=False)
    assert ((rnd.t >= 20) & (rnd.t < 70)).all()
    assert (DiffusionLossSet(diffusion, images(200), seed=0).t.max() >= 95)  # default: the whole range
    with pytest.raises(ValueError):
        DiffusionLossSet(diffusion, images(10), t_range=(0, 101))


def test_loss_set_values(diffusion):
    ls = DiffusionLossSet(diffusion, images(10), seed=0, batch_size=3)
    # a zero network predicts eps_hat = 0: L_simple = mean(eps^2)
    assert float(ls(TinyEps(zero=True)).detach()) == pytest.approx(float((ls.noise ** 2).mean()), rel=1e-6)
    model = TinyEps().eval()
    with torch.no_grad():
        ref = diffusion.training_losses(model, ls.x0, ls.t, ls.noise)
        value, hybrid = ls(model), DiffusionLossSet(diffusion, images(10), seed=0, hybrid=True)(model)
        whole = DiffusionLossSet(diffusion, images(10), seed=0, batch_size=100)(model)
    assert float(value) == pytest.approx(float(ref["mse"].mean()), rel=1e-6)
    assert float(whole) == pytest.approx(float(value), rel=1e-6)
    assert float(hybrid) == pytest.approx(float(ref["loss"].mean()), rel=1e-6)
    assert float(hybrid) > float(value)  # + L_vlb (a KL, >= 0)
    with torch.no_grad():
        terms = sum(float(f(model)) for f in ls.batch_terms())
    assert len(ls.batch_terms()) == 4 and terms == pytest.approx(float(value), rel=1e-6)


def test_measures_on_diffusion_loss(diffusion):
    model = TinyEps().train()
    ls = DiffusionLossSet(diffusion, images(8), seed=0, batch_size=4)
    with flatness.eval_mode(model), torch.no_grad():
        base = float(ls(model))
    out = lpf(model, ls, sigma=0.0, draws=2, seed=0)
    assert out["base_loss"] == base and out["lpf"] == base
    a, b = lpf(model, ls, sigma=0.05, draws=3, seed=0), lpf(model, ls, sigma=0.05, draws=3, seed=0)
    assert np.array_equal(a["losses"], b["losses"]) and model.training
    whole, batched = hessian_trace(model, ls, 3, seed=2), hessian_trace(model, ls.batch_terms(), 3, seed=2)
    np.testing.assert_allclose(batched["estimates"], whole["estimates"], rtol=1e-4)
