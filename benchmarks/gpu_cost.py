"""Wall time, GPU-hours and disk of a paper profile, on one GPU and on several with flatlib.stages.parallel, computed from
the one measured training rate and the profile's params (an estimate, printed as Markdown tables for the README).

Measured: one H100, bf16, the paper's CIFAR-10 UNet at batch 128 trained at MEASURED_STEPS_PER_S Adam steps/s
(README, "Measured on one GPU"); SAM at MEASURED_SAM_STEPS_PER_S. That rate is turned into an effective
training FLOP rate (a training image = 3 forward passes, counted by torch.utils.flop_counter on one forward)
and assumed for every model and for sampling (an upper bound for the larger 64x64 models, which use a GPU
better than the 52.5M-parameter one). Work counted per training seed: the train and SWA phases of every
variant, the rho sweep's runs, the sampled images (every row, T' and sample set; quantized rows; the rho
sweep's FIDs), the flatness measures and the exposure chains. Disk: every checkpoint is kept (as in
guided-diffusion): raw weights, each EMA and the two Adam moments in fp32; samples as uint8.

The second table is a full replication (every Table 1 row, ``--seeds`` training seeds, the rho sweep at each seed)
on 1 GPU, one 8-GPU node and 64 GPUs, one GPU per job: each stage instance is one job of the hours above, and
the jobs run as flatlib.stages.parallel runs them: the waves of ``dvc dag`` (computed by DVC from dvc.yaml and the
profile's params), each wave's jobs in dvc.yaml order on the first free GPU, the next wave after the last job.
Stages without a counted GPU cost (preflight, reference, FeatureNet, FID's Inception passes, summary, notebooks)
count as zero.

    python benchmarks/gpu_cost.py                      # profiles cifar10, lsun_tower, ffhq
    python benchmarks/gpu_cost.py --profiles cifar10 --seeds 3 --gpus 1 8 64
"""
from __future__ import annotations

import heapq
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from flatlib.cli import cli_parser
from flatlib.config import apply_overrides
from flatlib.stages.parallel import DVC, stage_waves
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


def profile_params(name: str, seeds: int | None = None, dest: Path | None = None):
    """The typed params of profile ``name`` (with training seeds 0..seeds-1 if given), written to
    ``dest``/params.yaml when given, else to a temporary copy."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(dest or tmp) / "params.yaml"
        shutil.copy2(ROOT / "params.yaml", path)
        apply_profile(name, path)
        if seeds is not None:
            text = apply_overrides(yaml.safe_load(path.read_text()), [f"seeds={list(range(seeds))}"])
            path.write_text(yaml.safe_dump(text, sort_keys=False))
        return load_params(path)


def job_hours(params, stage: str, fwd: float, flop_rate: float, sam_factor: float) -> float:
    """GPU-hours of one dvc.yaml stage instance (``train@sam-0``, ``rho_train@1-0.05``); 0 for the uncounted
    ones."""
    group, _, key = stage.partition("@")
    variant = key.rpartition("-")[0] if group not in ("rho_train", "rho_sweep") else ""
    t, s, f = params.train, params.sample, params.flatness
    is_sam = variant and params.run_config(variant).optim.optimizer.endswith("sam")
    step_images = t.batch_size * 3 * (sam_factor if is_sam else 1.0)   # a training image = 3 forward passes
    forwards = {
        "train": t.steps * step_images,
        "swa": params.swa.steps * step_images,
        "rho_train": t.steps * t.batch_size * 3 * sam_factor,
        "sample": ROWS_PER_VARIANT * s.num * s.sets * sum(s.respacings),
        "quant": ROWS_PER_VARIANT * s.num * s.sets * len(params.quant.bits) * params.quant.respacing,
        "flatness": ROWS_PER_VARIANT * f.num_triples * (1 + f.draws * len(f.sigmas) + f.curve_points * f.curve_directions
                                                        + 4 * (f.hessian_iters + f.hessian_samples))
        + (variant in f.surface_variants) * len(f.surface_weights) * f.num_triples * f.surface_points ** 2,
        "exposure": ROWS_PER_VARIANT * params.exposure.num * params.exposure.respacing * 2,
        "rho_sweep": s.num * s.sets * params.rho_sweep.respacing,  # the adm and sam rows reuse Table 1's
    }.get(group, 0)
    return forwards * fwd / flop_rate / 3600


TRAINING = ("train", "swa", "rho_train")


def cost(params, flop_rate: float, sam_factor: float) -> dict:
    """Hours of training and of evaluation, and GB on disk, per training seed of the profile."""
    fwd = forward_flops(params.model)
    n_params = sum(p.numel() for p in create_unet(params.model).parameters())
    t, variants, s = params.train, params.variants, params.sample
    seed = params.seeds[0]
    stages = ([f"{group}@{v}-{seed}" for group in ("train", "swa", "sample", "quant", "flatness", "exposure")
               for v in variants] + [f"{group}@{seed}-{rho}" for group in ("rho_train", "rho_sweep")
                                     for rho in params.rho_sweep.rhos])
    hours = {stage: job_hours(params, stage, fwd, flop_rate, sam_factor) for stage in stages}
    checkpoint_bytes = n_params * 4 * (1 + 1 + 2)   # raw, one EMA, Adam's two moments
    runs = len(variants) + len(params.rho_sweep.rhos)
    checkpoints = runs * (t.steps // t.save_every + max(1, params.swa.steps // t.save_every))
    c, h = params.model.in_channels, params.model.image_size
    samples_bytes = (ROWS_PER_VARIANT * len(variants) * s.num * s.sets * (len(s.respacings) + len(params.quant.bits))
                     * c * h * h)
    return {"params (M)": n_params / 1e6, "GFLOP/forward": fwd / 1e9,
            "train h": sum(v for k, v in hours.items() if k.split("@")[0] in TRAINING),
            "eval h": sum(v for k, v in hours.items() if k.split("@")[0] not in TRAINING),
            "checkpoints GB": checkpoints * checkpoint_bytes / 1e9, "samples GB": samples_bytes / 1e9}


def profile_waves(name: str, seeds: int) -> tuple[object, list[list[str]]]:
    """The params of a replication of profile ``name`` at ``seeds`` seeds and the waves DVC's graph gives it."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy2(ROOT / "dvc.yaml", tmp)
        params = profile_params(name, seeds, Path(tmp))
        subprocess.run([*DVC, "init", "--no-scm", "--quiet"], cwd=tmp, check=True)
        return params, stage_waves(Path(tmp))


def wall_hours(waves: list[list[float]], gpus: int) -> float:
    """Wall time of jobs run as flatlib.stages.parallel runs them: wave after wave, each job (in order) on the first
    free of ``gpus`` GPUs."""
    total = 0.0
    for wave in waves:
        free = [0.0] * gpus
        for hours in wave:
            heapq.heappush(free, heapq.heappop(free) + hours)
        total += max(free)
    return total


def replication(name: str, seeds: int, gpu_counts: list[int], flop_rate: float, sam_factor: float) -> list[dict]:
    params, waves = profile_waves(name, seeds)
    fwd = forward_flops(params.model)
    hours = [[job_hours(params, stage, fwd, flop_rate, sam_factor) for stage in wave] for wave in waves]
    gpu_hours = sum(map(sum, hours))
    longest = max(max(wave) for wave in hours)
    return [{"profile": name, "gpus": n, "wall h": wall_hours(hours, n), "GPU h": gpu_hours, "longest job h": longest}
            for n in gpu_counts]


def build_parser():
    parser = cli_parser("python benchmarks/gpu_cost.py", __doc__)
    parser.add_argument("--profiles", nargs="+", default=["cifar10", "lsun_tower", "ffhq"],
                        help="names of profiles/*.yaml to estimate")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of the full replication")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 8, 64], help="GPU counts of the replication table")
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
    print(f"\nfull replication, {args.seeds} training seeds, one GPU per job (flatlib.stages.parallel):\n"
          "| profile | GPUs | wall time (h) | wall time (days) | GPU-hours | longest job (h) |\n|---|---|---|---|---|---|")
    for name in args.profiles:
        for r in replication(name, args.seeds, args.gpus, flop_rate, sam_factor):
            rows.append(r)
            print(f"| {name} | {r['gpus']} | {r['wall h']:.0f} | {r['wall h'] / 24:.1f} | {r['GPU h']:.0f} "
                  f"| {r['longest job h']:.0f} |")
    return rows


if __name__ == "__main__":
    main()
