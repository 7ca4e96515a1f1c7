"""Gaussian diffusion with the semantics of openai/improved-diffusion and guided-diffusion (ADM).

Schedules, forward process, learned-range variance, hybrid loss, respacing, ancestral / DDIM samplers
and timestep samplers. Equation numbers: Ho et al. 2020 ("DDPM") and Nichol & Dhariwal 2021
("IDDPM"). Two additions from the flatness paper's lineage (arXiv 2503.11078):
Input Perturbation (DDPM-IP, Ning et al. 2023) at training time and epsilon scaling (ADM-ES,
Ning et al. 2024) at sampling time; they are separate arguments (ADM-ES shares one flag for both).

Schedules and all per-step coefficients live in float64 numpy arrays; `extract` turns them into
float32 tensors. `t` is always an index into this diffusion's (possibly respaced) steps; the model
receives `timestep_map[t]`, the original timestep (guided-diffusion, rescale_timesteps=False).
"""
import dataclasses
import math
import weakref

import numpy as np
import torch
import torch.distributed as dist

from flatlib.progress import track
from flatlib.schema import DiffusionConfig


# ---------------------------------------------------------------------------------------- schedules

def get_named_beta_schedule(name, num_diffusion_timesteps):
    """float64 betas. "linear": DDPM sec. 4 (1e-4 .. 0.02 at T=1000, scaled by 1000/T).
    "cosine": IDDPM eq. 17, abar(t) = cos^2(((t/T)+s)/(1+s) * pi/2), s=0.008,
    beta_i = min(1 - abar((i+1)/T)/abar(i/T), 0.999)."""
    T = num_diffusion_timesteps
    if name == "linear":
        scale = 1000 / T
        return np.linspace(scale * 1e-4, scale * 0.02, T, dtype=np.float64)
    if name == "cosine":
        abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)],
                        dtype=np.float64)
    raise ValueError(f"unknown beta schedule: {name!r}")


def space_timesteps(num_timesteps, section_counts):
    """Sorted original timesteps kept by respacing (guided-diffusion respace.py semantics).

    section_counts: "ddimN" (the first constant stride giving exactly N steps), or "N" / "N1,N2,..." /
    an int: the T steps are split into equal sections and section i keeps N_i steps at a fractional
    stride (size-1)/(N_i-1), positions rounded (Python round; the stride is accumulated in floats as
    in the lineage). "20" over 1000 gives 0, 53, 105, ..., 946, 999.
    """
    if isinstance(section_counts, str) and section_counts.startswith("ddim"):
        n = int(section_counts[len("ddim"):])
        for stride in range(1, num_timesteps):
            if len(range(0, num_timesteps, stride)) == n:
                return list(range(0, num_timesteps, stride))
        raise ValueError(f"cannot take exactly {n} steps with a constant stride from {num_timesteps}")
    if isinstance(section_counts, int):
        section_counts = [section_counts]
    else:
        section_counts = [int(c) for c in section_counts.split(",")]
    size_per, extra = divmod(num_timesteps, len(section_counts))
    kept, start = [], 0
    for i, count in enumerate(section_counts):
        size = size_per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"cannot divide a section of {size} steps into {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        pos = 0.0
        for _ in range(count):
            kept.append(start + round(pos))
            pos += stride
        start += size
    return sorted(set(kept))


_DEVICE_TABLES: dict = {}  # (id(arr), device) -> (weakref to arr, its float64 copy on that device)


def _device_table(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """A schedule array (float64 numpy or a tensor) copied to ``device`` once; lookups index it there
    (no host sync per call)."""
    key = (id(arr), device)
    cached = _DEVICE_TABLES.get(key)
    if cached is None or cached[0]() is not arr:
        for dead in [k for k, (ref, _) in _DEVICE_TABLES.items() if ref() is None]:
            del _DEVICE_TABLES[dead]
        cached = _DEVICE_TABLES[key] = (weakref.ref(arr), torch.as_tensor(arr).to(device))
    return cached[1]


def extract(arr, t, broadcast_shape):
    """arr[t] for a float64 numpy array and a LongTensor of indices, as float32 on t.device,
    with trailing singleton dims appended and expanded to broadcast_shape."""
    out = _device_table(arr, t.device)[t].float()
    return out.view(-1, *([1] * (len(broadcast_shape) - 1))).expand(broadcast_shape)


def mean_flat(x):
    return x.mean(dim=tuple(range(1, x.dim())))


# ---------------------------------------------------------------------------- likelihood helpers

def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x):
    """Tanh approximation of Phi(x) used by the lineage (PixelCNN++ / DDPM)."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """log p(x) of data in [-1, 1] quantised to 256 bins under N(means, e^(2 log_scales)) (DDPM eq. 13):
    bins have half-width 1/255, the edge bins extend to -inf / +inf."""
    centered = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


# ------------------------------------------------------------------------------------ randomness

class StackedRandomGenerator:
    """One torch.Generator per image (EDM style): image i always draws from seeds[i] (64-bit, as
    flatlib.seeding derives them), so samples do not depend on how images are batched."""

    def __init__(self, device, seeds):
        self.generators = [torch.Generator(device).manual_seed(int(s) % (1 << 64)) for s in seeds]

    def randn(self, shape, **kwargs):
        assert shape[0] == len(self.generators), (shape, len(self.generators))
        return torch.stack([torch.randn(shape[1:], generator=g, **kwargs) for g in self.generators])

    def randn_like(self, x):
        return self.randn(x.shape, dtype=x.dtype, layout=x.layout, device=x.device)


def samples_to_uint8(x):
    """[-1, 1] -> uint8 as in the lineage's sampling scripts: ((x+1)*127.5).clamp(0, 255) and then
    TRUNCATION (not rounding) by the uint8 cast. Layout is kept (N, C, H, W)."""
    return ((x + 1) * 127.5).clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------- diffusion

class GaussianDiffusion:
    """Epsilon-predicting diffusion; learned-range variance (IDDPM eq. 15) when learn_sigma, else the
    fixed "large" variance beta_t (DDPM sec. 3.2, with beta_tilde_1 at t=0 as in the lineage)."""

    def __init__(self, betas, *, learn_sigma=True, rescale_learned_sigmas=True, timestep_map=None):
        betas = np.asarray(betas, dtype=np.float64)
        assert betas.ndim == 1 and (betas > 0).all() and (betas <= 1).all()
        self.betas, self.num_timesteps = betas, len(betas)
        self.learn_sigma, self.rescale_learned_sigmas = learn_sigma, rescale_learned_sigmas
        self.timestep_map = torch.arange(self.num_timesteps) if timestep_map is None \
            else torch.as_tensor(timestep_map, dtype=torch.long)
        assert self.timestep_map.shape == (self.num_timesteps,)

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        # q(x_{t-1} | x_t, x_0), DDPM eq. 6-7; the variance is 0 at t=0, so its log is clipped.
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1], self.posterior_variance[1:]))
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = ((1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas)
                                     / (1.0 - self.alphas_cumprod))
        self.log_betas = np.log(betas)
        self.fixed_log_variance = np.log(np.append(self.posterior_variance[1], betas[1:]))

    def q_sample(self, x0, t, noise):
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (DDPM eq. 4)."""
        return (extract(self.sqrt_alphas_cumprod, t, x0.shape) * x0
                + extract(self.sqrt_one_minus_alphas_cumprod, t, x0.shape) * noise)

    def q_posterior_mean_variance(self, x0, x_t, t):
        """Mean, variance and clipped log variance of q(x_{t-1} | x_t, x0) (DDPM eq. 6-7)."""
        mean = (extract(self.posterior_mean_coef1, t, x_t.shape) * x0
                + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t)
        return (mean, extract(self.posterior_variance, t, x_t.shape),
                extract(self.posterior_log_variance_clipped, t, x_t.shape))

    def model_predictions(self, model, x_t, t):
        """(eps, v) from model(x_t, original t); v is None when learn_sigma is False."""
        out = model(x_t, _device_table(self.timestep_map, t.device)[t])
        C = x_t.shape[1]
        assert out.shape == (x_t.shape[0], 2 * C if self.learn_sigma else C, *x_t.shape[2:]), out.shape
        return (out[:, :C], out[:, C:]) if self.learn_sigma else (out, None)

    def p_mean_variance(self, model, x_t, t, clip_denoised=True, eps_scale=1.0):
        """Apply the model; see `p_from_predictions`."""
        eps, v = self.model_predictions(model, x_t, t)
        return self.p_from_predictions(eps, v, x_t, t, clip_denoised, eps_scale)

    def p_from_predictions(self, eps, v, x_t, t, clip_denoised=True, eps_scale=1.0):
        """p(x_{t-1} | x_t) from the predictions: dict(mean, variance, log_variance, pred_xstart, eps).

        Variance, learned range (IDDPM eq. 15): log var = f log beta_t + (1-f) log beta_tilde_t,
        f = (v+1)/2. Mean: x0_hat = sqrt(1/abar) x_t - sqrt(1/abar - 1) eps/lambda (DDPM eq. 15 with
        ADM-ES epsilon scaling, lambda = eps_scale, 1 = off), clipped to [-1, 1] when clip_denoised,
        then plugged into the posterior mean (DDPM eq. 7). 'eps' is the model's unscaled output.
        """
        if v is None:
            log_var = extract(self.fixed_log_variance, t, x_t.shape)
        else:
            frac = (v + 1) / 2
            log_var = (frac * extract(self.log_betas, t, x_t.shape)
                       + (1 - frac) * extract(self.posterior_log_variance_clipped, t, x_t.shape))
        pred_xstart = (extract(self.sqrt_recip_alphas_cumprod, t, x_t.shape) * x_t
                       - extract(self.sqrt_recipm1_alphas_cumprod, t, x_t.shape) * (eps / eps_scale))
        if clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        mean, _, _ = self.q_posterior_mean_variance(pred_xstart, x_t, t)
        return dict(mean=mean, variance=torch.exp(log_var), log_variance=log_var,
                    pred_xstart=pred_xstart, eps=eps)

    def vb_terms_bpd(self, eps, v, x0, x_t, t):
        """Per-image L_{t-1} = KL(q(x_{t-1}|x_t,x0) || p(x_{t-1}|x_t)) for t > 0 and the decoder NLL
        -log p(x0|x1) for t = 0 (DDPM eq. 5 / IDDPM eq. 4-6), in bits per dimension, no x0 clipping."""
        true_mean, _, true_log_var = self.q_posterior_mean_variance(x0, x_t, t)
        out = self.p_from_predictions(eps, v, x_t, t, clip_denoised=False)
        kl = mean_flat(normal_kl(true_mean, true_log_var, out["mean"], out["log_variance"])) / math.log(2.0)
        nll = -mean_flat(discretized_gaussian_log_likelihood(
            x0, out["mean"], 0.5 * out["log_variance"])) / math.log(2.0)
        return torch.where(t == 0, nll, kl)

    def training_losses(self, model, x0, t, noise, ip_gamma=0.0, ip_noise=None):
        """dict(loss, mse, vb), each of shape [B].

        mse = ||eps - eps_hat||^2 averaged over dims (L_simple, DDPM eq. 14). With learn_sigma, the
        hybrid objective L_simple + L_vlb (IDDPM eq. 16): vb is computed with eps_hat DETACHED so it
        only trains v; scaled by T/1000 when rescale_learned_sigmas (lineage's RESCALED_MSE).
        Input Perturbation (DDPM-IP): x_t = q_sample(x0, t, noise + ip_gamma * ip_noise), the target
        stays `noise`. noise / ip_noise are arguments so that SAM's second pass can reuse them.
        """
        if ip_gamma:
            if ip_noise is None:
                raise ValueError("ip_gamma > 0 needs ip_noise")
            x_t = self.q_sample(x0, t, noise + ip_gamma * ip_noise)
        else:
            x_t = self.q_sample(x0, t, noise)
        eps, v = self.model_predictions(model, x_t, t)
        mse = mean_flat((noise - eps) ** 2)
        if v is None:
            vb = torch.zeros_like(mse)
        else:
            vb = self.vb_terms_bpd(eps.detach(), v, x0, x_t, t)
            if self.rescale_learned_sigmas:
                vb = vb * (self.num_timesteps / 1000.0)
        return dict(loss=mse + vb, mse=mse, vb=vb)

    def p_sample(self, model, x, t, rng, clip_denoised=True, eps_scale=1.0, eta=None):
        """One reverse step. eta None: ancestral x_{t-1} = mean + sigma z (DDPM Algorithm 2) with the
        model's variance. eta float: DDIM (Song et al. 2021, eq. 12 and 16), sigma = eta * sqrt(beta_tilde_t).
        No noise at t = 0. Returns the p_mean_variance dict plus 'sample'."""
        out = self.p_mean_variance(model, x, t, clip_denoised, eps_scale)
        if eta is None:
            mean, std = out["mean"], torch.exp(0.5 * out["log_variance"])
        else:
            abar = extract(self.alphas_cumprod, t, x.shape)
            abar_prev = extract(self.alphas_cumprod_prev, t, x.shape)
            eps = (extract(self.sqrt_recip_alphas_cumprod, t, x.shape) * x - out["pred_xstart"]) \
                / extract(self.sqrt_recipm1_alphas_cumprod, t, x.shape)
            std = eta * torch.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
            mean = out["pred_xstart"] * torch.sqrt(abar_prev) + torch.sqrt(1 - abar_prev - std ** 2) * eps
        sample = mean
        if eta is None or eta > 0:  # noise is drawn at t = 0 too and masked: no host sync on t's values
            nonzero = (t > 0).to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
            sample = mean + nonzero * std * rng.randn_like(x)
        return dict(out, sample=sample)

    @torch.no_grad()
    def p_sample_loop_progressive(self, model, x_T, rng, clip_denoised=True, eps_scale=1.0,
                                  progress=False, eta=None):
        """Run the reverse chain from x_T over all (respaced) steps; yield per step
        dict(index, t=original timestep, sample, pred_xstart, eps). rng: a StackedRandomGenerator
        (or anything with randn_like) for the per-step noise. eta: see p_sample (None = ancestral)."""
        x = x_T
        indices = range(self.num_timesteps - 1, -1, -1)
        for i in track(indices, f"sampling T'={self.num_timesteps}", enabled=progress):
            t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
            out = self.p_sample(model, x, t, rng, clip_denoised, eps_scale, eta)
            x = out["sample"]
            yield dict(index=i, t=int(self.timestep_map[i]), sample=x,
                       pred_xstart=out["pred_xstart"], eps=out["eps"])

    def p_sample_loop(self, model, x_T, rng, clip_denoised=True, eps_scale=1.0, progress=False,
                      eta=None):
        """Final sample of p_sample_loop_progressive."""
        for out in self.p_sample_loop_progressive(model, x_T, rng, clip_denoised, eps_scale,
                                                  progress, eta):
            pass
        return out["sample"]

    def ddim_sample_loop(self, model, x_T, rng, clip_denoised=True, eps_scale=1.0, progress=False,
                         eta=0.0):
        """DDIM sampling (deterministic when eta = 0)."""
        return self.p_sample_loop(model, x_T, rng, clip_denoised, eps_scale, progress, eta=float(eta))


def create_diffusion(steps=1000, noise_schedule="cosine", learn_sigma=True, rescale_learned_sigmas=True,
                     timestep_respacing=""):
    """guided-diffusion's create_gaussian_diffusion + SpacedDiffusion. Respacing keeps the timesteps
    k_0 < k_1 < ... of space_timesteps and sets beta_i = 1 - abar_{k_i} / abar_{k_{i-1}} (abar_{k_{-1}}
    = 1), so the kept alphas_cumprod are unchanged; the model still receives k_i."""
    betas = get_named_beta_schedule(noise_schedule, steps)
    timestep_map = None
    if timestep_respacing not in ("", None):
        timestep_map = space_timesteps(steps, timestep_respacing)
        abar = np.cumprod(1.0 - betas)[timestep_map]
        betas = 1.0 - abar / np.append(1.0, abar[:-1])
    return GaussianDiffusion(betas, learn_sigma=learn_sigma, rescale_learned_sigmas=rescale_learned_sigmas,
                             timestep_map=timestep_map)


# ------------------------------------------------------------------------------ timestep samplers

class ScheduleSampler:
    """Draws training timesteps t ~ p(t) and importance weights 1 / (T p(t)) (IDDPM sec. 3.3)."""

    def __init__(self, num_timesteps):
        self.num_timesteps = num_timesteps

    def weights(self):
        raise NotImplementedError

    def sample(self, batch_size, device, generator=None):
        """(t, weights) on device; generator: an optional CPU torch.Generator."""
        p = torch.from_numpy(self.weights())
        p = p / p.sum()
        t = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        w = 1.0 / (len(p) * p[t])
        return t.to(device, non_blocking=True), w.float().to(device, non_blocking=True)

    def update_with_local_losses(self, t, losses):
        """Record this rank's per-image losses (all ranks' when torch.distributed is initialized)."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class UniformSampler(ScheduleSampler):
    def weights(self):
        return np.ones(self.num_timesteps, dtype=np.float64)


def _all_gather_1d(x):
    """Concatenate a 1-D tensor over ranks (ranks may hold different lengths)."""
    size = torch.tensor([x.numel()], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    padded = torch.zeros(int(max(sizes)), dtype=x.dtype, device=x.device)
    padded[:x.numel()] = x
    bufs = [torch.zeros_like(padded) for _ in sizes]
    dist.all_gather(bufs, padded)
    return torch.cat([b[:int(n)] for b, n in zip(bufs, sizes)])


class LossSecondMomentResampler(ScheduleSampler):
    """IDDPM sec. 3.3 eq. 18: p_t ∝ sqrt(E[L_t^2]) over the last history_per_term losses of each t,
    mixed with uniform_prob of the uniform distribution; uniform until every t has a full history."""

    def __init__(self, num_timesteps, history_per_term=10, uniform_prob=0.001):
        super().__init__(num_timesteps)
        self.history_per_term, self.uniform_prob = history_per_term, uniform_prob
        self.loss_history = np.zeros((num_timesteps, history_per_term), dtype=np.float64)
        self.loss_counts = np.zeros(num_timesteps, dtype=np.int64)

    def warmed_up(self):
        return bool((self.loss_counts == self.history_per_term).all())

    def weights(self):
        if not self.warmed_up():
            return np.ones(self.num_timesteps, dtype=np.float64)
        w = np.sqrt(np.mean(self.loss_history ** 2, axis=-1))
        w = w / w.sum() * (1 - self.uniform_prob)
        return w + self.uniform_prob / self.num_timesteps

    def update_with_local_losses(self, t, losses):
        t, losses = t.detach(), losses.detach().to(torch.float64)
        if dist.is_available() and dist.is_initialized():
            t, losses = _all_gather_1d(t), _all_gather_1d(losses)
        self.update_with_all_losses(t.tolist(), losses.tolist())

    def update_with_all_losses(self, ts, losses):
        """Append each loss to its timestep's history; once full, drop the oldest."""
        for t, loss in zip(ts, losses):
            n = self.loss_counts[t]
            if n == self.history_per_term:
                self.loss_history[t, :-1] = self.loss_history[t, 1:]
                self.loss_history[t, -1] = loss
            else:
                self.loss_history[t, n] = loss
                self.loss_counts[t] = n + 1

    def state_dict(self):
        """Tensors, so that torch.load(weights_only=True) accepts checkpoints holding it."""
        return dict(loss_history=torch.tensor(self.loss_history), loss_counts=torch.tensor(self.loss_counts))

    def load_state_dict(self, state):
        self.loss_history = torch.as_tensor(state["loss_history"]).numpy().astype(np.float64)
        self.loss_counts = torch.as_tensor(state["loss_counts"]).numpy().astype(np.int64)


def create_timestep_sampler(name, diffusion):
    """name: "uniform" or "loss-second-moment" (the lineage's --schedule_sampler names)."""
    if name == "uniform":
        return UniformSampler(diffusion.num_timesteps)
    if name == "loss-second-moment":
        return LossSecondMomentResampler(diffusion.num_timesteps)
    raise ValueError(f"unknown schedule sampler: {name!r}")


def diffusion_from_config(cfg: DiffusionConfig, learn_sigma: bool, respacing: str | int = "") -> GaussianDiffusion:
    """params.yaml's ``diffusion`` section as a GaussianDiffusion, respaced to T' steps when ``respacing`` is set
    (guided-diffusion index sets); ``learn_sigma`` comes from ``model.learn_sigma``."""
    return create_diffusion(steps=cfg.steps, noise_schedule=cfg.noise_schedule, learn_sigma=learn_sigma,
                            rescale_learned_sigmas=cfg.rescale_learned_sigmas, timestep_respacing=str(respacing))
