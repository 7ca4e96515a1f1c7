"""Draw samples from a trained run with T' respaced ancestral steps (the paper's T' = 20 and 100).

    python -m flatlib.measure.sample --run runs/sam/seed0 --weights ema --respacing 20 --num 1000 --out sam_ema_T20.npz
    python -m flatlib.measure.sample --run runs/sam/seed0 --respacing 20 --num 1000 --quant-bits 8 --out sam_ema_T20_8bit.npz

Image ``i`` draws x_T and every step's noise from its own generator, stream (image seed ``seed + i``, sampling)
of flatlib.seeding (EDM's per-image seeds), so the samples do not depend on the batch size. Output: an ``.npz``
with ``samples`` (uint8 NxCxHxW, truncated as in the lineage: ``((x+1)*127.5).clamp(0,255)`` then a uint8 cast) and a PNG grid
of the first 64 images next to it; a JSON sidecar records what was sampled.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from flatlib import atomic, seeding
from flatlib.training.checkpoints import load_model
from flatlib.cli import cli_parser
from flatlib.vocabulary import WEIGHT_KINDS
from flatlib.model.device import compiled, resolve_device
from flatlib.schema import SAMPLE_COMPILE_MODES, SampleConfig
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.model.diffusion import GaussianDiffusion, StackedRandomGenerator, diffusion_from_config, samples_to_uint8
from flatlib.progress import add_progress_flag, progress_bar
from flatlib.measure.quant import quantize_model


@torch.no_grad()
def generate(model: torch.nn.Module, diffusion: GaussianDiffusion, seeds: list[int], shape: tuple,
             batch_size: int, device: str | torch.device = "cpu", eps_scale: float = 1.0,
             progress: bool = True, compile: str = "off") -> torch.Tensor:
    """uint8 samples ``len(seeds) x C x H x W``; image i depends only on seeds[i] (never on batch_size): its
    noise is the stream (seeds[i], sampling) of flatlib.seeding.
    ``compile``: a :func:`flatlib.model.device.compiled` mode for the model's forward."""
    model.eval()
    forward = compiled(model, compile)
    out, starts, steps = [], range(0, len(seeds), batch_size), diffusion.num_timesteps
    with progress_bar(len(starts) * steps, f"sampling {len(seeds)} images, T'={steps}", enabled=progress) as bar:
        for start in starts:
            batch = seeds[start:start + batch_size]
            rng = StackedRandomGenerator(device, [seeding.derive(s, "sampling") for s in batch])
            x_T = rng.randn((len(rng.generators), *shape), device=device)
            for step in diffusion.p_sample_loop_progressive(forward, x_T, rng, clip_denoised=True, eps_scale=eps_scale):
                bar.update()
            out.append(samples_to_uint8(step["sample"]).cpu())
    return torch.cat(out)


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 8) -> None:
    """A PNG grid of the first ``columns`` x ``columns`` uint8 NxCxHxW images, tiles separated by white padding
    (torchvision's make_grid; no timestamps in the file: deterministic bytes)."""
    from PIL import Image
    from torchvision.utils import make_grid

    c, h = images.shape[1], images.shape[2]
    grid = make_grid(images[: columns * columns], nrow=columns, padding=max(1, h // 16), pad_value=255)
    array = grid.permute(1, 2, 0).numpy()
    with atomic.atomic_open(path) as f:
        Image.fromarray(array[..., 0] if c == 1 else array).save(f, format="PNG")


def sample_run(model: torch.nn.Module, run, respacing: str | int, seeds: list[int], cfg: SampleConfig,
               device: str | torch.device, progress: bool = True) -> torch.Tensor:
    """uint8 samples of a run's model at T' = ``respacing`` (the diffusion and image shape of its
    :class:`~flatlib.schema.RunConfig`): the one sampling path of the CLI, the sample, quant and rho-sweep stages."""
    diffusion = diffusion_from_config(run.diffusion, run.model.learn_sigma, respacing)
    return generate(model, diffusion, seeds, run.model.image_shape,
                    cfg.batch_size, device, cfg.eps_scale, progress=progress, compile=cfg.compile)


def save_samples(samples: torch.Tensor, out: Path) -> None:
    """``out`` (.npz with key ``samples``) and its PNG grid next to it."""
    atomic.savez_compressed(out, samples=samples.numpy())
    save_grid(samples, out.with_suffix(".png"))


def build_parser() -> argparse.ArgumentParser:
    defaults = SampleConfig(num=1, sets=1, respacings=[])  # the defaults of the other fields
    parser = cli_parser("python -m flatlib.measure.sample", __doc__)
    parser.add_argument("--run", required=True, type=Path, help="run folder written by flatlib.training.train")
    parser.add_argument("--weights", choices=WEIGHT_KINDS, default="ema", help="which weights of the run")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the run's last)")
    parser.add_argument("--respacing", default="100", help="T': number of sampling steps (or a section string)")
    parser.add_argument("--num", type=int, required=True, help="number of samples")
    parser.add_argument("--seed", type=int, default=0, help="image i uses seed + i")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per sampling batch")
    parser.add_argument("--eps-scale", type=float, default=defaults.eps_scale,
                        help="ADM-ES lambda (1 = off, as in the paper)")
    parser.add_argument("--compile", choices=SAMPLE_COMPILE_MODES, default=defaults.compile,
                        help="torch.compile mode of the model's forward (off: eager)")
    parser.add_argument("--quant-bits", type=int, default=0, help="quantize weights first (0 = full precision)")
    parser.add_argument("--quant-per-channel", action="store_true", help="one quantization scale per channel")
    parser.add_argument("--device", default=defaults.device, help="auto: the GPU when present, else cpu")
    parser.add_argument("--out", required=True, type=Path, help="output .npz (a .png grid and .json go beside it)")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    with cli_errors("measure.sample", args.debug):
        return _sample_command(args)


def _sample_command(args) -> dict:
    cfg = SampleConfig(num=args.num, sets=1, respacings=[], batch_size=args.batch_size,  # T': --respacing
                       eps_scale=args.eps_scale, device=args.device, compile=args.compile)
    device = resolve_device(cfg.device)
    model, run, step = load_model(args.run, args.weights, args.step, device)
    info = dict(run=str(args.run), weights=args.weights, step=step, respacing=str(args.respacing),
                num=args.num, seed=args.seed, eps_scale=args.eps_scale, quant_bits=args.quant_bits,
                quant_per_channel=args.quant_per_channel)
    if args.quant_bits:
        model, report = quantize_model(model, args.quant_bits, per_channel=args.quant_per_channel)
        info["quant_relative_error"] = report["rel_error"]
    samples = sample_run(model, run, args.respacing, list(range(args.seed, args.seed + args.num)), cfg, device,
                         progress=args.progress)
    save_samples(samples, args.out)
    atomic.write_json(args.out.with_suffix(".json"), info, indent=2)
    return info


if __name__ == "__main__":
    main()
