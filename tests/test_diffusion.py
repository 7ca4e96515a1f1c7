"""Tests for flatlib.model.diffusion: golden numbers, hand-derived formulas and invariants."""
import math

import numpy as np
import pytest
import torch
import torch.distributed as dist

from flatlib.model.diffusion import (
    LossSecondMomentResampler, StackedRandomGenerator, UniformSampler,
    create_diffusion, create_timestep_sampler, discretized_gaussian_log_likelihood, extract,
    get_named_beta_schedule, normal_kl, samples_to_uint8, space_timesteps)

SPACED_20 = [0, 53, 105, 158, 210, 263, 315, 368, 421, 473, 526, 578, 631, 684, 736, 789, 841, 894,
             946, 999]  # REFERENCE.md, guided-diffusion's "20" over 1000


def analytic_model(x, t):
    """Deterministic stand-in for a learn_sigma UNet: (eps, v) as smooth functions of x and t."""
    s = t.to(x.dtype).view(-1, 1, 1, 1) / 1000
    eps = torch.tanh(x) * (0.6 + 0.3 * s) + 0.1 * x.mean(dim=(1, 2, 3), keepdim=True)
    return torch.cat([eps, torch.cos(2 * x + 3 * s)], dim=1)


class SineNoise:
    """Fixed pseudo-noise (no RNG implementation involved) so that golden sums only test our math."""

    def __init__(self, calls=0):
        self.calls = calls

    def randn_like(self, x):
        self.calls += 1
        k = torch.arange(x.numel(), dtype=torch.float64)
        return (1.4 * torch.sin(0.7 * k + 1.3 * self.calls)).view(x.shape).to(x.dtype)


# --------------------------------------------------------------------------------------- schedules

def test_linear_schedule_golden():
    b = get_named_beta_schedule("linear", 1000)
    assert b.dtype == np.float64 and b.shape == (1000,)
    assert b[0] == pytest.approx(1e-4, rel=1e-14) and b[999] == pytest.approx(0.02, rel=1e-14)
    assert b[500] == pytest.approx(1e-4 + 500 * 0.0199 / 999, rel=1e-13)
    abar = np.cumprod(1 - b)
    # reference values computed with mpmath at 30 digits
    assert abar[499] == pytest.approx(0.0785872428817782373, rel=1e-11)
    assert abar[999] == pytest.approx(4.03582976537568331e-05, rel=1e-10)
    assert get_named_beta_schedule("linear", 4000)[0] == pytest.approx(2.5e-5, rel=1e-14)


def test_cosine_schedule_golden():
    b = get_named_beta_schedule("cosine", 1000)
    assert b.dtype == np.float64
    f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2  # IDDPM eq. 17
    for i in (0, 1, 500, 998):
        assert b[i] == pytest.approx(1 - f((i + 1) / 1000) / f(i / 1000), rel=1e-12)
    # mpmath (30 digits) values; the last beta is clipped to 0.999
    assert b[0] == pytest.approx(4.12842248217778024e-05, rel=1e-10)
    assert b[500] == pytest.approx(3.15569144158500291e-03, rel=1e-10)
    assert b[998] == pytest.approx(0.749999392901162028, rel=1e-10)
    assert b[999] == 0.999
    abar = np.cumprod(1 - b)
    assert abar[499] == pytest.approx(0.493843590440637713, rel=1e-10)
    assert abar[999] == pytest.approx(2.42876690703446836e-09, rel=1e-8)
    with pytest.raises(ValueError):
        get_named_beta_schedule("quadratic", 10)


# --------------------------------------------------------------------------------------- respacing

def test_space_timesteps_index_sets():
    assert space_timesteps(1000, "20") == SPACED_20
    assert space_timesteps(1000, 20) == SPACED_20
    s100 = space_timesteps(1000, "100")
    assert len(s100) == 100 and s100[:4] == [0, 10, 20, 30] and s100[-4:] == [969, 979, 989, 999]
    assert s100 == [round(k * 999 / 99) for k in range(100)]
    assert space_timesteps(1000, "ddim20") == list(range(0, 1000, 50))
    # two sections of 5 steps: strides 4 and 2 (hand computed)
    assert space_timesteps(10, "2,3") == [0, 4, 5, 7, 9]
    assert space_timesteps(1000, "1000") == list(range(1000))
    with pytest.raises(ValueError):
        space_timesteps(10, "11")


@pytest.mark.parametrize("respacing", ["20", "100"])
def test_respaced_betas_keep_alphas_cumprod(respacing):
    base = create_diffusion(noise_schedule="cosine")
    d = create_diffusion(noise_schedule="cosine", timestep_respacing=respacing)
    kept = space_timesteps(1000, respacing)
    assert d.num_timesteps == len(kept) and d.timestep_map.tolist() == kept
    np.testing.assert_allclose(d.alphas_cumprod, base.alphas_cumprod[kept], rtol=1e-12, atol=1e-15)
    assert base.timestep_map.tolist() == list(range(1000))


def test_extract_broadcasts_float32():
    arr = np.arange(5, dtype=np.float64) / 3
    out = extract(arr, torch.tensor([4, 1]), (2, 3, 2, 2))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 2, 2)
    assert out[0, 2, 1, 0].item() == pytest.approx(4 / 3) and out[1, 0, 0, 1].item() == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------ posterior and KL

@pytest.mark.parametrize("respacing", ["", "20"])
def test_posterior_matches_gaussian_conditioning(respacing):
    """q(x_{t-1}|x_t,x0) by Gaussian conditioning: prior N(sqrt(abar_prev) x0, 1-abar_prev),
    likelihood x_t = sqrt(1-beta) x_{t-1} + sqrt(beta) z."""
    d = create_diffusion(timestep_respacing=respacing)
    x0, xt = torch.tensor([[0.3, -0.9]]), torch.tensor([[1.2, 0.4]])
    for i in (1, 2, d.num_timesteps // 2, d.num_timesteps - 1):
        mean, var, logvar = d.q_posterior_mean_variance(x0, xt, torch.tensor([i]))
        ab_prev = float(np.prod(1 - d.betas[:i]))
        beta = d.betas[i]
        prec = 1 / (1 - ab_prev) + (1 - beta) / beta
        want_mean = (math.sqrt(ab_prev) * x0.double() / (1 - ab_prev)
                     + math.sqrt(1 - beta) * xt.double() / beta) / prec
        np.testing.assert_allclose(mean.double(), want_mean, rtol=2e-5, atol=1e-6)
        assert var[0, 0].item() == pytest.approx(1 / prec, rel=1e-5)
        assert logvar[0, 0].item() == pytest.approx(math.log(1 / prec), rel=1e-5)
    _, var0, logvar0 = d.q_posterior_mean_variance(x0, xt, torch.tensor([0]))
    assert var0[0, 0].item() == 0  # log-clipped: index 0 takes the value of index 1
    assert logvar0[0, 0].item() == pytest.approx(math.log(d.posterior_variance[1]), rel=1e-6)


def test_normal_kl_known_values():
    z = torch.zeros(3)
    assert torch.allclose(normal_kl(z, z, z, z), z)
    one, zero = torch.tensor(1.0), torch.tensor(0.0)
    assert normal_kl(one, zero, zero, zero).item() == pytest.approx(0.5)
    m1, lv1 = torch.tensor([0.3, -1.0]), torch.tensor([-1.0, 0.5])
    m2, lv2 = torch.tensor([0.1, 2.0]), torch.tensor([0.2, -0.7])
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                            torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(normal_kl(m1, lv1, m2, lv2), ref, rtol=1e-5)


def test_discretized_gaussian_log_likelihood():
    zero = torch.zeros(1, dtype=torch.float64)
    # log(Phi(1/255) - Phi(-1/255)) = -5.76705746... (mpmath); the tanh CDF is exact to ~1e-4 here
    ll0 = discretized_gaussian_log_likelihood(zero, zero, zero).item()
    assert ll0 == pytest.approx(-5.76705746, abs=1e-4)
    # the 256 bins partition the real line: probabilities sum to one for any mean / scale
    x = (torch.arange(256, dtype=torch.float64) * 2 / 255 - 1)
    for mu, log_s in ((0.0, -2.0), (0.7, -4.0), (-0.95, 0.3)):
        ll = discretized_gaussian_log_likelihood(x, torch.full_like(x, mu), torch.full_like(x, log_s))
        assert ll.exp().sum().item() == pytest.approx(1.0, abs=1e-9)
        # edge bins extend to +-inf; compare with the exact normal CDF
        s = math.exp(log_s)
        Phi = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))
        assert ll[0].exp().item() == pytest.approx(Phi((-1 + 1 / 255 - mu) / s), abs=5e-4)
        assert ll[-1].exp().item() == pytest.approx(1 - Phi((1 - 1 / 255 - mu) / s), abs=5e-4)


# ------------------------------------------------------------------------------------ training loss

def _batch(d, ts, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(len(ts), 2, 4, 4, generator=g) * 2 - 1
    noise = torch.randn(x0.shape, generator=g)
    return x0, torch.tensor(ts), noise


def test_vb_zero_when_model_is_the_true_posterior():
    d = create_diffusion(steps=1000)
    x0, t, noise = _batch(d, [1, 7, 400, 999])
    true_model = lambda x, tt: torch.cat([noise, -torch.ones_like(noise)], 1)  # f = 0: beta_tilde
    out = d.training_losses(true_model, x0, t, noise)
    assert out["mse"].abs().max() < 1e-12
    assert out["vb"].abs().max() < 2e-5 and out["loss"].abs().max() < 2e-5
    # v = +1 selects beta_t: KL of equal means = 0.5 (r - 1 - log r) nats/dim with r = beta_tilde / beta
    big = d.training_losses(lambda x, tt: torch.cat([noise, torch.ones_like(noise)], 1), x0, t, noise)
    log_r = d.posterior_log_variance_clipped[t.numpy()] - np.log(d.betas[t.numpy()])
    want = 0.5 * (np.exp(log_r) - 1 - log_r) / math.log(2)
    np.testing.assert_allclose(big["vb"].numpy(), want, rtol=1e-3, atol=1e-6)
    assert big["vb"][0] > 1e-3  # beta_tilde_1 << beta_1; the two coincide as t -> T
    # eps off by 0.1 shifts x0_hat by -0.1 sqrt(1/abar - 1) and the mean by coef1 times that:
    # KL = 0.5 dmu^2 / beta_tilde per dim
    wrong_model = lambda x, tt: torch.cat([noise + 0.1, -torch.ones_like(noise)], 1)
    wrong = d.training_losses(wrong_model, x0, t, noise)
    i = t.numpy()
    dmu = d.posterior_mean_coef1[i] * d.sqrt_recipm1_alphas_cumprod[i] * 0.1
    want = 0.5 * dmu ** 2 / np.exp(d.posterior_log_variance_clipped[i]) / math.log(2)
    np.testing.assert_allclose(wrong["vb"].numpy(), want, rtol=1e-3)
    assert (wrong["vb"] > 0).all() and (wrong["mse"] - 0.01).abs().max() < 1e-6
    # t = 0: decoder NLL. With the true model the mean is x0 itself (coef1 = 1, coef2 = 0) and the std is
    # sqrt(beta_tilde_1): an interior bin has mass 2 Phi(1/(255 s)) - 1, the edge bins Phi(1/(255 s)).
    x0 = torch.tensor([-1.0, -0.5, 0.2, 1.0]).view(1, 1, 2, 2)
    noise = torch.zeros_like(x0)
    true_model = lambda x, tt: torch.cat([noise, -torch.ones_like(x0)], 1)
    nll = d.training_losses(true_model, x0, torch.tensor([0]), noise)["vb"]
    Phi = 0.5 * (1 + math.erf(1 / (255 * math.sqrt(d.posterior_variance[1])) / math.sqrt(2)))
    want = -(2 * math.log(Phi) + 2 * math.log(2 * Phi - 1)) / 4 / math.log(2)
    assert nll.item() == pytest.approx(want, rel=2e-3)


def test_vb_rescaled_by_T_over_1000():
    kw = dict(steps=500, noise_schedule="linear")
    d1, d2 = create_diffusion(**kw), create_diffusion(**kw, rescale_learned_sigmas=False)
    x0, t, noise = _batch(d1, [3, 250])
    m = lambda x, tt: torch.cat([0.5 * x, torch.zeros_like(x)], 1)
    vb1, vb2 = d1.training_losses(m, x0, t, noise)["vb"], d2.training_losses(m, x0, t, noise)["vb"]
    torch.testing.assert_close(vb1, 0.5 * vb2)


class LinearModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Parameter(torch.tensor(0.7)), torch.nn.Parameter(torch.tensor(0.3))

    def forward(self, x, t):
        return torch.cat([self.a * x, torch.tanh(self.b * x)], 1)


def test_vb_gradient_does_not_reach_eps_and_mse_does_not_reach_v():
    d = create_diffusion()
    x0, t, noise = _batch(d, [0, 5, 500, 900])
    m = LinearModel()
    d.training_losses(m, x0, t, noise)["vb"].sum().backward()
    assert m.a.grad == 0 and m.b.grad.abs() > 0  # zero (not None): the output is one concatenated tensor
    m.zero_grad(set_to_none=True)
    d.training_losses(m, x0, t, noise)["mse"].sum().backward()
    assert m.b.grad == 0 and m.a.grad.abs() > 0


def test_input_perturbation_changes_x_t_not_target():
    d = create_diffusion()
    x0, t, noise = _batch(d, [10, 600])
    xi = torch.randn(noise.shape, generator=torch.Generator().manual_seed(5))
    seen = []

    def model(x, tt):  # predicts the clean noise exactly
        seen.append(x)
        return torch.cat([noise, torch.zeros_like(noise)], 1)

    plain = d.training_losses(model, x0, t, noise)
    ip = d.training_losses(model, x0, t, noise, ip_gamma=0.15, ip_noise=xi)
    torch.testing.assert_close(seen[1], d.q_sample(x0, t, noise + 0.15 * xi))
    assert (seen[1] - seen[0]).abs().max() > 1e-2
    assert plain["mse"].abs().max() == 0 and ip["mse"].abs().max() == 0  # target stays `noise`
    off = d.training_losses(model, x0, t, noise, ip_gamma=0.0, ip_noise=xi)
    torch.testing.assert_close(seen[2], seen[0], rtol=0, atol=0)
    torch.testing.assert_close(off["loss"], plain["loss"])
    with pytest.raises(ValueError):
        d.training_losses(model, x0, t, noise, ip_gamma=0.1)


def test_fixed_variance_without_learn_sigma():
    d = create_diffusion(learn_sigma=False, noise_schedule="linear")
    x0, t, noise = _batch(d, [0, 1, 999])
    m = lambda x, tt: 0.5 * x
    out = d.training_losses(m, x0, t, noise)
    assert (out["vb"] == 0).all() and torch.equal(out["loss"], out["mse"])
    lv = d.p_mean_variance(m, x0, t)["log_variance"][:, 0, 0, 0]
    want = np.log([d.posterior_variance[1], d.betas[1], d.betas[999]])
    np.testing.assert_allclose(lv.numpy(), want, rtol=1e-6)


# ------------------------------------------------------------------------------- p(x_{t-1}|x_t)

def test_p_mean_variance_eps_scaling_and_learned_range():
    d = create_diffusion()
    x = torch.tensor([[[[0.4, -1.3], [2.0, 0.1]]]])
    t = torch.tensor([300])
    eps, v = torch.tanh(x) * 0.8, torch.full_like(x, 0.2)
    model = lambda xx, tt: torch.cat([eps, v], 1)
    ab, i = d.alphas_cumprod[300], 300
    for lam in (1.0, 1.017):
        out = d.p_mean_variance(model, x, t, clip_denoised=False, eps_scale=lam)
        x0 = np.sqrt(1 / ab) * x.double().numpy() - np.sqrt(1 / ab - 1) * eps.double().numpy() / lam  # ADM-ES
        np.testing.assert_allclose(out["pred_xstart"].numpy(), x0, rtol=1e-5)
        assert torch.equal(out["eps"], eps)  # unscaled model output
        want_lv = 0.6 * np.log(d.betas[i]) + 0.4 * d.posterior_log_variance_clipped[i]  # f = (0.2+1)/2
        np.testing.assert_allclose(out["log_variance"].numpy(), want_lv, rtol=1e-6)
    default = d.p_mean_variance(model, x, t)
    one = d.p_mean_variance(model, x, t, eps_scale=1.0)
    scaled = d.p_mean_variance(model, x, t, eps_scale=1.017)
    torch.testing.assert_close(default["mean"], one["mean"], rtol=0, atol=0)
    assert (scaled["pred_xstart"] - one["pred_xstart"]).abs().max() > 1e-3
    assert scaled["pred_xstart"].abs().max() <= 1 and one["pred_xstart"].abs().max() <= 1  # clipped
    # lambda is equivalent to a model predicting eps / lambda
    div = d.p_mean_variance(lambda xx, tt: torch.cat([eps / 1.017, v], 1), x, t)
    torch.testing.assert_close(scaled["mean"], div["mean"])


# -------------------------------------------------------------------------------------- sampling

def test_ancestral_loop_golden_20_steps():
    d = create_diffusion(noise_schedule="cosine", timestep_respacing="20")
    seen_t = []

    def model(x, t):
        seen_t.append(int(t[0]))
        return analytic_model(x, t)

    noise = SineNoise()
    x_T = noise.randn_like(torch.zeros(2, 1, 4, 4))
    steps = list(d.p_sample_loop_progressive(model, x_T, noise, progress=True))
    assert [s["index"] for s in steps] == list(range(19, -1, -1))
    assert [s["t"] for s in steps] == SPACED_20[::-1] == seen_t
    assert noise.calls == 1 + 20  # x_T and one draw per step; the last step's is masked out (no host sync)
    final = steps[-1]["sample"]
    assert final.dtype == torch.float32 and final.shape == (2, 1, 4, 4)
    # golden numbers measured once with this implementation (torch 2.x, CPU float32)
    assert final.sum().item() == pytest.approx(GOLDEN["final_sum"], abs=1e-4)
    assert final.abs().sum().item() == pytest.approx(GOLDEN["final_abs"], abs=1e-4)
    assert steps[0]["pred_xstart"].sum().item() == -2.0  # clipped to [-1, 1] at t = 999
    assert steps[5]["pred_xstart"].sum().item() == pytest.approx(GOLDEN["x0_sum_step5"], abs=1e-4)
    assert steps[10]["eps"].sum().item() == pytest.approx(GOLDEN["mid_eps_sum"], abs=1e-4)
    assert torch.equal(d.p_sample_loop(analytic_model, x_T, SineNoise(calls=1)), final)


# Measured once (torch 2.11 CPU): float32 run; a float64 run of the same chain agrees to < 1e-6.
GOLDEN = dict(final_sum=1.3252127, final_abs=3.5872731, x0_sum_step5=0.5882421, mid_eps_sum=1.1973703)


def test_p_sample_step_noise_and_ddim_eta1_identity():
    d = create_diffusion(timestep_respacing="20")
    x = SineNoise(calls=7).randn_like(torch.zeros(2, 1, 4, 4))
    t = torch.tensor([0, 9])
    out = d.p_sample(analytic_model, x, t, SineNoise())
    z = SineNoise().randn_like(x)
    torch.testing.assert_close(out["sample"][0], out["mean"][0], rtol=0, atol=0)  # no noise at t = 0
    torch.testing.assert_close(out["sample"][1], out["mean"][1] + (0.5 * out["log_variance"][1]).exp() * z[1])
    # DDIM with eta = 1 is the DDPM posterior q(x_{t-1} | x_t, x0_hat) (Song et al. 2021, sec. 4.1)
    t = torch.tensor([9, 9])
    ddim = d.p_sample(analytic_model, x, t, SineNoise(), eta=1.0)
    mean, var, _ = d.q_posterior_mean_variance(ddim["pred_xstart"], x, t)
    torch.testing.assert_close(ddim["sample"], mean + var.sqrt() * z, rtol=1e-5, atol=1e-5)


def test_sampling_does_not_depend_on_batching():
    d = create_diffusion(noise_schedule="linear", timestep_respacing="10")
    seeds = [11, 12, 13, 14]
    rng = StackedRandomGenerator("cpu", seeds)
    full = d.p_sample_loop(analytic_model, rng.randn((4, 1, 4, 4)), rng)
    parts = []
    for chunk in (seeds[:2], seeds[2:]):
        r = StackedRandomGenerator("cpu", chunk)
        parts.append(d.p_sample_loop(analytic_model, r.randn((2, 1, 4, 4)), r))
    torch.testing.assert_close(torch.cat(parts), full, rtol=1e-6, atol=1e-6)
    other = StackedRandomGenerator("cpu", [11, 12, 13, 15])
    assert not torch.allclose(d.p_sample_loop(analytic_model, other.randn((4, 1, 4, 4)), other)[3], full[3])


def test_ddim_eta0_is_deterministic():
    d = create_diffusion(timestep_respacing="ddim10")
    x_T = StackedRandomGenerator("cpu", [0, 1]).randn((2, 1, 4, 4))
    a = d.ddim_sample_loop(analytic_model, x_T, StackedRandomGenerator("cpu", [5, 6]))
    b = d.ddim_sample_loop(analytic_model, x_T, StackedRandomGenerator("cpu", [7, 8]))
    assert torch.equal(a, b)
    c = d.ddim_sample_loop(analytic_model, x_T, StackedRandomGenerator("cpu", [7, 8]), eta=1.0)
    assert not torch.allclose(a, c)
    ancestral = d.p_sample_loop(analytic_model, x_T, StackedRandomGenerator("cpu", [5, 6]))
    assert (a - ancestral).abs().max() > 1e-3


def test_samples_to_uint8_truncates():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0])
    assert samples_to_uint8(x).tolist() == [0, 0, 127, 254, 255, 255]
    assert samples_to_uint8(x).dtype == torch.uint8


# ----------------------------------------------------------------------------- timestep samplers

def test_uniform_sampler():
    s = create_timestep_sampler("uniform", create_diffusion(steps=50))
    assert isinstance(s, UniformSampler)
    t, w = s.sample(1000, "cpu", generator=torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and 0 <= t.min() and t.max() < 50 and torch.equal(w, torch.ones(1000))


def test_loss_second_moment_warmup_and_weights():
    s = LossSecondMomentResampler(4, history_per_term=10, uniform_prob=0.001)
    for _ in range(10):
        s.update_with_local_losses(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0, 3.0]))
    for _ in range(9):
        s.update_with_local_losses(torch.tensor([3]), torch.tensor([4.0]))
    assert not s.warmed_up() and np.array_equal(s.weights(), np.ones(4))
    s.update_with_local_losses(torch.tensor([3]), torch.tensor([4.0]))
    assert s.warmed_up()
    p = np.array([1.0, 2.0, 3.0, 4.0]) / 10 * 0.999 + 0.001 / 4
    np.testing.assert_allclose(s.weights(), p, rtol=1e-12)
    t, w = s.sample(64, "cpu", generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(w.numpy(), 1 / (4 * p[t.numpy()]), rtol=1e-6)
    # the oldest loss is shifted out: ten new losses of 8 for t=0 -> sqrt(mean sq) = 8
    for k in range(10):
        s.update_with_local_losses(torch.tensor([0]), torch.tensor([8.0]))
        rms0 = math.sqrt((k + 1) / 10 * 64 + (9 - k) / 10 * 1)
        assert s.weights()[0] == pytest.approx(rms0 / (rms0 + 9) * 0.999 + 0.00025)


def test_loss_second_moment_state_dict_resume(tmp_path):
    s = create_timestep_sampler("loss-second-moment", create_diffusion(steps=6))
    g = torch.Generator().manual_seed(1)
    for _ in range(12):
        t = torch.arange(6)
        s.update_with_local_losses(t, torch.rand(6, generator=g) + t)
    torch.save(s.state_dict(), tmp_path / "s.pt")
    r = LossSecondMomentResampler(6)
    r.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    np.testing.assert_array_equal(r.weights(), s.weights())
    a = s.sample(32, "cpu", generator=torch.Generator().manual_seed(3))
    b = r.sample(32, "cpu", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_loss_second_moment_all_gather_single_rank(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        s = LossSecondMomentResampler(3, history_per_term=2)
        s.update_with_local_losses(torch.tensor([0, 2, 2]), torch.tensor([1.5, 2.5, 3.5]))
    finally:
        dist.destroy_process_group()
    assert s.loss_counts.tolist() == [1, 0, 2] and s.loss_history[2].tolist() == [2.5, 3.5]


def test_schedule_tables_are_copied_to_the_device_once():
    from flatlib.model.diffusion import _device_table
    a, b = create_diffusion(), create_diffusion(timestep_respacing="20")
    cpu = torch.device("cpu")
    assert _device_table(a.betas, cpu) is _device_table(a.betas, cpu)
    assert not torch.equal(_device_table(b.betas, cpu), _device_table(a.betas, cpu)[:20])
    t = torch.tensor([0, 5, 19])
    assert torch.equal(extract(b.betas, t, (3, 1)).view(-1), torch.from_numpy(b.betas[[0, 5, 19]]).float())
