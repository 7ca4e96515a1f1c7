"""Wall time and disk of a paper profile on one GPU, computed from the one measured training rate and the
profile's params (an estimate, printed as a Markdown table for the README).

Measured: one H100, bf16, the paper's CIFAR-10 UNet at batch 128 trained at MEASURED_STEPS_PER_S Adam steps/s
(README, "Measured on one GPU"); SAM at MEASURED_SAM_STEPS_PER_S. That rate is turned into an effective
training FLOP rate (a training image = 3 forward passes, counted by torch.utils.flop_counter on one forward)
and assumed for every model and for sampling (an upper bound for the larger 64x64 models, which use a GPU
better than the 52.5M-parameter one). Work counted per training seed: the train and SWA phases of every
variant, the rho sweep's runs, the sampled images (every row, T' and sample set; quantized rows; the rho
sweep's FIDs), the flatness measures and the exposure chains. Disk: every checkpoint is kept (as in
guided-diffusion): raw weights, each EMA and the two Adam moments in fp32; samples as uint8.

    python benchmarks/gpu_cost.py                      # profiles cifar10, lsun_tower, ffhq
    python benchmarks/gpu_cost.py --profiles cifar10
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from flatlib.cli import cli_parser
from flatlib.schema import load_params
from flatlib.profiles import apply_profile
from flatlib.model.unet import create_unet

ROOT = Path(__file__).resolve().parent.parent
MEASURED_STEPS_PER_S = 10.04      # Adam, H100, bf16, NCHW, CIFAR-10 UNet, batch 128 (README)
MEASURED_SAM_STEPS_PER_S = 5.37   # SAM, same setting: a SAM step costs 1.87 Adam steps
MEASURED_BATCH = 128
MEASURED_PROFILE = "cifar10"
ROWS_PER_VARIANT = 3              # raw, EMA, SWA weights


def forward_flops(model_cfg) -> float:
    """FLOP of one forward pass of one image (torch.utils.flop_counter, on the CPU)."""
    model = create_unet(model_cfg)
    x = torch.randn(1, model_cfg.in_channels, model_cfg.image_size, model_cfg.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, torch.tensor([1]))
    return float(counter.get_total_flops())


def profile_params(name: str):
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(ROOT / "params.yaml", Path(tmp) / "params.yaml")
        apply_profile(name, Path(tmp) / "params.yaml")
        return load_params(Path(tmp) / "params.yaml")


def cost(params, flop_rate: float, sam_factor: float) -> dict:
    """Hours of training and of evaluation, and GB on disk, per training seed of the profile."""
    fwd = forward_flops(params.model)
    n_params = sum(p.numel() for p in create_unet(params.model).parameters())
    t, variants = params.train, params.variants
    run_steps = t.steps + params.swa.steps
    sam_variants = sum(params.run_config(v).optim.optimizer.endswith("sam") for v in variants)
    sam_runs, adam_runs = sam_variants + len(params.rho_sweep.rhos), len(variants) - sam_variants
    train_images = run_steps * t.batch_size * (adam_runs + sam_factor * sam_runs)
    rows = ROWS_PER_VARIANT * len(variants)
    s, f = params.sample, params.flatness
    sampled = rows * s.num * s.sets * (sum(s.respacings) + len(params.quant.bits) * params.quant.respacing)
    sampled += (len(params.rho_sweep.rhos) + 2) * s.num * s.sets * params.rho_sweep.respacing
    flatness = rows * f.num_triples * (1 + f.draws * len(f.sigmas) + f.curve_points * f.curve_directions
                                       + 4 * (f.hessian_iters + f.hessian_samples))
    flatness += 2 * f.num_triples * f.surface_points ** 2
    exposure = rows * params.exposure.num * params.exposure.respacing * 2
    forwards = sampled + flatness + exposure
    checkpoint_bytes = n_params * 4 * (1 + 1 + 2)   # raw, one EMA, Adam's two moments
    runs = len(variants) + len(params.rho_sweep.rhos)
    checkpoints = runs * (t.steps // t.save_every + max(1, params.swa.steps // t.save_every))
    c, h = params.model.in_channels, params.model.image_size
    samples_bytes = (rows * s.num * s.sets * (len(s.respacings) + len(params.quant.bits))) * c * h * h
    return {"params (M)": n_params / 1e6, "GFLOP/forward": fwd / 1e9,
            "train h": train_images * 3 * fwd / flop_rate / 3600, "eval h": forwards * fwd / flop_rate / 3600,
            "checkpoints GB": checkpoints * checkpoint_bytes / 1e9, "samples GB": samples_bytes / 1e9}


def build_parser():
    parser = cli_parser("python benchmarks/gpu_cost.py", __doc__)
    parser.add_argument("--profiles", nargs="+", default=["cifar10", "lsun_tower", "ffhq"],
                        help="names of profiles/*.yaml to estimate")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    measured = profile_params(MEASURED_PROFILE)
    flop_rate = MEASURED_STEPS_PER_S * MEASURED_BATCH * 3 * forward_flops(measured.model)
    sam_factor = MEASURED_STEPS_PER_S / MEASURED_SAM_STEPS_PER_S
    print(f"effective training rate from the measured {MEASURED_PROFILE} row: {flop_rate / 1e12:.1f} TFLOP/s; "
          f"SAM step = {sam_factor:.2f} Adam steps")
    print("| profile | params (M) | GFLOP/forward | training (h) | evaluation (h) | total (h) | checkpoints (GB) "
          "| samples (GB) |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.profiles:
        r = cost(profile_params(name), flop_rate, sam_factor)
        rows.append({"profile": name, **r})
        print(f"| {name} | {r['params (M)']:.1f} | {r['GFLOP/forward']:.1f} | {r['train h']:.0f} | {r['eval h']:.0f} "
              f"| {r['train h'] + r['eval h']:.0f} | {r['checkpoints GB']:.0f} | {r['samples GB']:.1f} |")
    return rows


if __name__ == "__main__":
    main()
