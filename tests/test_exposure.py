"""Exposure curves: a perfect (analytic) denoiser of Gaussian data shows no gap; a biased one does."""
import numpy as np
import pytest
import torch

from flatlib.model.diffusion import create_diffusion
from flatlib.measure.exposure import predicted_noise_norms

DATA_STD = 0.5


class GaussianOracle(torch.nn.Module):
    """The exact eps-predictor and reverse variance for data x0 ~ N(0, DATA_STD^2 I) under a (respaced)
    diffusion: with s_t^2 = abar_t DATA_STD^2 + 1 - abar_t, E[eps | x_t] = sqrt(1 - abar_t) x_t / s_t^2 and
    Var(x_{t-1} | x_t) = s_{t-1}^2 - alpha_t s_{t-1}^4 / s_t^2, encoded as the learned-range output v."""

    def __init__(self, diffusion, eps_gain=1.0):
        super().__init__()
        abar = diffusion.alphas_cumprod
        abar_prev = diffusion.alphas_cumprod_prev
        s2, s2_prev = abar * DATA_STD ** 2 + 1 - abar, abar_prev * DATA_STD ** 2 + 1 - abar_prev
        var = np.maximum(s2_prev - (abar / abar_prev) * s2_prev ** 2 / s2, 1e-20)
        log_lo, log_hi = diffusion.posterior_log_variance_clipped, np.log(diffusion.betas)
        frac = np.where(log_hi > log_lo, (np.log(var) - log_lo) / np.maximum(log_hi - log_lo, 1e-12), 0.0)
        self.v = torch.tensor(2 * np.clip(frac, 0, 1) - 1, dtype=torch.float32)
        self.eps_coef = torch.tensor(np.sqrt(1 - abar) / s2, dtype=torch.float32)
        self.index_of = {int(t): i for i, t in enumerate(diffusion.timestep_map)}
        self.eps_gain = eps_gain

    def forward(self, x, t):
        i = torch.tensor([self.index_of[int(s)] for s in t])
        eps = self.eps_gain * self.eps_coef[i].view(-1, 1, 1, 1) * x
        return torch.cat([eps, self.v[i].view(-1, 1, 1, 1).expand_as(x)], dim=1)


@pytest.fixture(scope="module")
def setup():
    diffusion = create_diffusion(steps=1000, noise_schedule="cosine", timestep_respacing="20")
    real = DATA_STD * torch.randn(1500, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    return diffusion, real


def test_perfect_denoiser_shows_no_exposure_gap(setup):
    diffusion, real = setup
    out = predicted_noise_norms(GaussianOracle(diffusion), diffusion, real, batch_size=500, clip_denoised=False,
                                progress=False)
    sampling, training = np.array(out["sampling_norm"]), np.array(out["training_norm"])
    assert out["t"][0] == 999 and out["t"][-1] == 0 and len(out["t"]) == 20
    # both sides estimate the same expectation: agreement within 2% at every step (MC error ~1%)
    assert np.all(np.abs(sampling - training) / training < 0.02), np.abs(sampling - training) / training
    assert abs(out["gap_mean"]) < 0.01 * training.mean()


def test_biased_denoiser_shows_a_positive_gap(setup):
    diffusion, real = setup
    perfect = predicted_noise_norms(GaussianOracle(diffusion), diffusion, real, batch_size=500,
                                    clip_denoised=False, progress=False)
    biased = predicted_noise_norms(GaussianOracle(diffusion, eps_gain=0.9), diffusion, real, batch_size=500,
                                   clip_denoised=False, aggregate="max", progress=False)
    # under-predicted noise leaves extra variance on the chain: larger x_t, larger predicted norms
    assert biased["gap_mean"] > 10 * abs(perfect["gap_mean"]) and biased["gap_mean"] > 0.05
    assert biased["gap_aggregate"] == biased["gap_max"]


def test_norms_are_reproducible_and_batch_independent(setup):
    diffusion, real = setup
    oracle = GaussianOracle(diffusion, eps_gain=0.95)
    a = predicted_noise_norms(oracle, diffusion, real[:40], batch_size=40, progress=False)
    b = predicted_noise_norms(oracle, diffusion, real[:40], batch_size=16, progress=False)
    assert np.allclose(a["sampling_norm"], b["sampling_norm"], rtol=1e-5)
    assert np.allclose(a["training_norm"], b["training_norm"], rtol=1e-5)


def test_unknown_aggregate_is_rejected(setup):
    diffusion, real = setup
    with pytest.raises(ValueError, match="aggregate"):
        predicted_noise_norms(GaussianOracle(diffusion), diffusion, real[:2], aggregate="median")
