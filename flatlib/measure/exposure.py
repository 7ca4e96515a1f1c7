"""Exposure bias as the gap between predicted-noise norms on the sampling chain and on the forward process.

At each respaced step t_i (ADM-ES, Ning et al. 2024; the flatness paper's "norm of the predicted noise"):

    sampling norm  S(t) = mean_images || eps_theta(x_t^sample, t) ||_2      x_t^sample from the model's own chain
    training norm  R(t) = mean_images || eps_theta(q_sample(x0, t, eps), t) ||_2   x0 real images, eps ~ N(0, I)
    gap(t) = S(t) - R(t)

A model without exposure bias sees the same x_t distribution in both, so gap(t) ~ 0; error accumulated along
the chain shows as gap > 0, largest near t = T. The norm runs over all C*H*W values (sqrt(C*H*W) for a
unit-variance eps). How the per-step gap is reduced to one number is a reproduction choice (the paper does
not say): ``aggregate`` = "mean" over steps, "sum", "max", or "mean_before_last" (default), the mean over every
step but the last (t = 0). The last step's gap is by far the largest, but its effect on the image is tiny: x0
is formed from x_1 with a noise coefficient near zero (about 0.3 uint8 levels in the CPU profile), while a gap
at an earlier step moves the chain that every later step starts from. So the verdict uses the mean before
the last step; the per-step curve shows all steps.

    python -m flatlib.measure.exposure --run runs/sam/seed0 --weights ema --out exposure_sam_ema.json
    python -m flatlib.measure.exposure --run runs/adm/seed0 --respacing 100 --num 256 --aggregate mean --out adm.json
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from flatlib import atomic, seeding
from flatlib.training.checkpoints import load_model
from flatlib.cli import cli_parser
from flatlib.vocabulary import WEIGHT_KINDS
from flatlib.config import ConfigError
from flatlib.model.device import resolve_device
from flatlib.schema import ExposureConfig
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.training.data import dataset_from_config, evaluation_subset
from flatlib.model.diffusion import GaussianDiffusion, StackedRandomGenerator, diffusion_from_config
from flatlib.progress import add_progress_flag, progress_bar

AGGREGATES = {"mean": torch.mean, "sum": torch.sum, "max": torch.max,
              "mean_before_last": lambda gap: gap[:-1].mean()}


@torch.no_grad()
def predicted_noise_norms(model, diffusion: GaussianDiffusion, real_images: torch.Tensor, seed: int = 0,
                          batch_size: int = 256, device="cpu", eps_scale: float = 1.0, clip_denoised: bool = True,
                          aggregate: str = "mean", progress: bool = True) -> dict:
    """Per-step sampling and training norms of eps_theta for ``len(real_images)`` chains (image i's chain draws
    from stream (``seed``, exposure_chain, i) of flatlib.seeding, its forward-process noise from (``seed``,
    exposure_forward, i)). Steps are listed from t = T down."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {sorted(AGGREGATES)}, got {aggregate!r}")
    model.eval()
    steps, n = diffusion.num_timesteps, len(real_images)
    sampling, training = torch.zeros(steps, device=device), torch.zeros(steps, device=device)
    starts = range(0, n, batch_size)
    with progress_bar(len(starts) * 2 * steps, f"exposure {n} chains, T'={steps}", enabled=progress) as bar:
        for start in starts:  # per batch: the sampling chain's steps, then the forward process's
            x0 = real_images[start:start + batch_size].to(device)
            images = range(start, start + len(x0))
            chain_rng = StackedRandomGenerator(device, [seeding.derive(seed, "exposure_chain", i) for i in images])
            x_T = chain_rng.randn_like(x0)
            for out in diffusion.p_sample_loop_progressive(model, x_T, chain_rng, clip_denoised, eps_scale):
                sampling[steps - 1 - out["index"]] += out["eps"].flatten(1).norm(dim=1).sum()
                bar.update()
            forward_rng = StackedRandomGenerator(device, [seeding.derive(seed, "exposure_forward", i) for i in images])
            for index in range(steps - 1, -1, -1):
                t = torch.full((len(x0),), index, dtype=torch.long, device=device)
                x_t = diffusion.q_sample(x0, t, forward_rng.randn_like(x0))
                eps_hat, _ = diffusion.model_predictions(model, x_t, t)
                training[steps - 1 - index] += eps_hat.flatten(1).norm(dim=1).sum()
                bar.update()
    sampling, training = (sampling / n).cpu(), (training / n).cpu()
    gap = sampling - training
    return dict(t=[int(diffusion.timestep_map[i]) for i in range(steps - 1, -1, -1)],
                sampling_norm=sampling.tolist(), training_norm=training.tolist(), gap=gap.tolist(),
                aggregate=aggregate, gap_aggregate=float(AGGREGATES[aggregate](gap)),
                gap_mean=float(gap.mean()), gap_max=float(gap.max()), num_images=n,
                unit_noise_norm=float(torch.tensor(float(real_images[0].numel())).sqrt()))


def exposure_of_run(run_dir: Path, weights: str, cfg: ExposureConfig, seed: int, batch_size: int, device,
                    step: int | None = None, progress: bool = True) -> dict:
    """:func:`predicted_noise_norms` of a run's weights against ``cfg.num`` real images of its own data set
    (a seeded subset): the one exposure measurement of the CLI and the exposure stage."""
    model, run, _ = load_model(run_dir, weights, step, device)
    real = evaluation_subset(dataset_from_config(run.data), cfg.num, seeding.derive(seed, "exposure_images"))
    diffusion = diffusion_from_config(run.diffusion, run.model.learn_sigma, cfg.respacing)
    return predicted_noise_norms(model, diffusion, real, seed, batch_size, device, aggregate=cfg.aggregate,
                                 progress=progress)


def build_parser() -> argparse.ArgumentParser:
    defaults = ExposureConfig()
    parser = cli_parser("python -m flatlib.measure.exposure", __doc__)
    parser.add_argument("--run", required=True, type=Path, help="run folder written by flatlib.training.train")
    parser.add_argument("--weights", choices=WEIGHT_KINDS, default="ema", help="which weights of the run")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the run's last)")
    parser.add_argument("--respacing", type=int, default=defaults.respacing, help="T': number of sampling steps")
    parser.add_argument("--num", type=int, default=defaults.num, help="number of chains and of real images")
    parser.add_argument("--seed", type=int, default=0, help="chain i and real image subset seed")
    parser.add_argument("--batch-size", type=int, default=256, help="chains per batch")
    parser.add_argument("--aggregate", choices=sorted(AGGREGATES), default=defaults.aggregate,
                        help="how the per-step gap is reduced to one number")
    parser.add_argument("--device", default="auto", help="auto: the GPU when present, else cpu")
    parser.add_argument("--out", required=True, type=Path, help="output JSON")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    with cli_errors("measure.exposure", args.debug):
        cfg = ExposureConfig(num=args.num, respacing=args.respacing, aggregate=args.aggregate)
        result = exposure_of_run(args.run, args.weights, cfg, args.seed, args.batch_size,
                                 resolve_device(args.device), args.step, progress=args.progress)
        result = dict(run=str(args.run), weights=args.weights, **result)
        atomic.write_json(args.out, result, indent=1)
        return result


if __name__ == "__main__":
    main()
