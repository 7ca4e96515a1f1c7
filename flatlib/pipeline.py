"""The evaluation stages of ``dvc.yaml``: each subcommand reads its own params.yaml sections and writes
artifacts that the notebooks read.

    python -m flatlib.pipeline reference            data/reference.npz   (FID reference images)
    python -m flatlib.pipeline featurenet           data/featurenet.pt   (CPU-profile FID feature extractor)
    python -m flatlib.pipeline sample  --variant V  samples/V/{weights}_T{T'}.npz (+ .png grid)
    python -m flatlib.pipeline fid                  metrics/fid.json
    python -m flatlib.pipeline quant   --variant V  metrics/quant/V.json, samples/quant/V/*.png
    python -m flatlib.pipeline flatness --variant V metrics/flatness/V.json
    python -m flatlib.pipeline exposure --variant V metrics/exposure/V.json
    python -m flatlib.pipeline rho-train            runs/rho_sweep/rho_{rho}  (short SAM runs)
    python -m flatlib.pipeline rho-sweep            metrics/rho_sweep.json

A Table 1 row is a (variant, weights) pair: ``adm/raw`` is "ADM", ``adm/ema`` "+EMA", ``adm/swa`` "+SWA"
(SWA weights of the SWA phase ``runs/adm_swa``), ``ip/raw`` "+IP", and so on.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from flatlib import flatness
from flatlib.checkpoints import build_diffusion, image_shape, load_model
from flatlib.config import ConfigError, StrictConfig, load_yaml, resolve_device
from flatlib.data import ArrayImageDataset, dataset_from_config, evaluation_subset
from flatlib.exposure import predicted_noise_norms
from flatlib.metrics import compute_metrics, save_feature_net, train_feature_net
from flatlib.quant import quantize_model
from flatlib.sample import generate, save_grid

PAPER_LABELS = {("adm", "raw"): "ADM", ("adm", "ema"): "+EMA", ("adm", "swa"): "+SWA",
                ("ip", "raw"): "+IP", ("ip", "ema"): "+IP+EMA", ("ip", "swa"): "+IP+SWA",
                ("sam", "raw"): "+SAM", ("sam", "ema"): "+SAM+EMA", ("sam", "swa"): "+SAM+SWA"}
REFERENCE = Path("data/reference.npz")
FEATURENET = Path("data/featurenet.pt")
RHO_RUNS = Path("runs/rho_sweep")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FeatureNetConfig(StrictConfig):
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3


@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleConfig(StrictConfig):
    num: int                              # samples per row and T' (paper: 50,000)
    respacings: list = dataclasses.field(default_factory=lambda: [20, 100])
    weights: list = dataclasses.field(default_factory=lambda: ["raw", "ema", "swa"])
    batch_size: int = 256
    eps_scale: float = 1.0                # ADM-ES lambda; the paper samples with 1 (off)
    device: str = "auto"


@dataclasses.dataclass(frozen=True, kw_only=True)
class FIDConfig(StrictConfig):
    extractor: str = "featurenet"         # "inception" for the paper profiles
    inception_weights: str | None = None  # path of torch-fidelity's Inception weights file (placed by hand)
    reference_size: int = 5000            # training images in the reference set (paper: all of CIFAR-10)
    kid: bool = True
    prc: bool = True
    batch_size: int = 256


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuantConfig(StrictConfig):
    bits: list = dataclasses.field(default_factory=lambda: [8, 4])
    per_channel: bool = False             # reproduction choice: per-tensor scales
    layer_types: list = dataclasses.field(default_factory=lambda: ["conv", "linear"])
    respacing: int = 20                   # the paper's quantization result is at T' = 20


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlatnessConfig(StrictConfig):
    num_triples: int = 256                # fixed (x0, t, eps) set shared by every measure and model
    t_min: int = 0
    t_max: int = 1000                     # official README: t_range 1000
    hybrid_loss: bool = False             # reproduction choice: L_simple (eps MSE)
    sigmas: list = dataclasses.field(default_factory=lambda: [0.005, 0.01])
    draws: int = 20                       # LPF Monte Carlo draws (Bisla et al.: 100)
    filter_relative: bool = False
    curve_span: float = 1.0               # 1-D curves over alpha in [-span, span], filter-normalised d
    curve_points: int = 21
    curve_directions: int = 1
    surface_weights: list = dataclasses.field(default_factory=lambda: ["raw"])  # 2-D surfaces: ADM vs SAM
    surface_variants: list = dataclasses.field(default_factory=lambda: ["adm", "sam"])
    surface_points: int = 11
    hessian_iters: int = 20
    hessian_samples: int = 10
    batch_size: int = 256


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExposureConfig(StrictConfig):
    num: int = 64
    respacing: int = 20
    aggregate: str = "mean"               # reproduction choice: mean gap over sampling steps


@dataclasses.dataclass(frozen=True, kw_only=True)
class RhoSweepConfig(StrictConfig):
    rhos: list = dataclasses.field(default_factory=lambda: [0.02, 0.5])  # extra SAM runs; 0 and optim.rho reuse adm/sam
    steps: int = 300
    sigma: float = 0.01
    num_samples: int = 256
    respacing: int = 20


def _section(params: dict, name: str, cls):
    return cls.from_dict(params.get(name, {}), name)


def _write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")


def _to_builtin(value):
    if isinstance(value, dict):
        return {k: _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return np.asarray(value).tolist()
    return value


def run_dir(variant: str, weights: str) -> Path:
    """Raw and EMA weights live in the training run, SWA weights in its SWA phase."""
    return Path("runs") / (f"{variant}_swa" if weights == "swa" else variant)


# ---------------------------------------------------------------------------------------------- stages
def stage_reference(params: dict, args) -> None:
    cfg = _section(params, "fid", FIDConfig)
    dataset = dataset_from_config(params["data"])
    if isinstance(dataset, ArrayImageDataset) and cfg.reference_size >= len(dataset):
        images = dataset.images
    else:
        floats = evaluation_subset(dataset, cfg.reference_size, params["seed"])
        images = ((floats + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, samples=images.numpy())
    print(f"reference: {len(images)} images {tuple(images.shape[1:])} -> {REFERENCE}")


def stage_featurenet(params: dict, args) -> None:
    cfg = _section(params, "featurenet", FeatureNetConfig)
    model, scores = train_feature_net(dataset_from_config(params["data"]), epochs=cfg.epochs, batch_size=cfg.batch_size,
                                      lr=cfg.lr, seed=params["seed"], device=resolve_device("auto"))
    save_feature_net(FEATURENET, model, meta=dict(scores, data=params["data"]))
    _write_json(Path("metrics/featurenet.json"), scores)
    print(f"featurenet: {scores}")


def stage_sample(params: dict, args) -> None:
    cfg = _section(params, "sample", SampleConfig)
    device = resolve_device(cfg.device)
    for weights in cfg.weights:
        model, config = load_model(run_dir(args.variant, weights), weights, device=device)
        for respacing in cfg.respacings:
            samples = generate(model, build_diffusion(config, respacing), list(range(cfg.num)),
                               image_shape(config), cfg.batch_size, device, cfg.eps_scale, progress=args.progress)
            out = Path("samples") / args.variant / f"{weights}_T{respacing}.npz"
            out.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(out, samples=samples.numpy())
            save_grid(samples, out.with_suffix(".png"))
            print(f"{args.variant}/{weights} T'={respacing}: {len(samples)} samples -> {out}")


def fid_of(samples, cfg: FIDConfig, device: str) -> dict:
    weights = cfg.inception_weights if cfg.extractor == "inception" else FEATURENET
    return compute_metrics(samples, REFERENCE, extractor=cfg.extractor, weights_path=weights,
                           cache_root=".fidelity_cache", reference_cache_name=f"reference-{cfg.extractor}",
                           kid=cfg.kid, prc=cfg.prc, batch_size=cfg.batch_size, device=device)


def stage_fid(params: dict, args) -> None:
    cfg, sample = _section(params, "fid", FIDConfig), _section(params, "sample", SampleConfig)
    device, results = resolve_device(sample.device), {}
    for variant in params["variants"]:
        for weights in sample.weights:
            for respacing in sample.respacings:
                path = Path("samples") / variant / f"{weights}_T{respacing}.npz"
                scores = fid_of(path, cfg, device)
                results.setdefault(f"{variant}/{weights}", {})[f"T{respacing}"] = scores
                print(f"{PAPER_LABELS.get((variant, weights), variant + '/' + weights):>10} T'={respacing}: "
                      f"FID {scores['fid']:.3f}")
    _write_json(Path("metrics/fid.json"), dict(extractor=cfg.extractor, num_samples=sample.num, rows=results))


def stage_quant(params: dict, args) -> None:
    cfg, sample, fid = (_section(params, "quant", QuantConfig), _section(params, "sample", SampleConfig),
                        _section(params, "fid", FIDConfig))
    if cfg.respacing not in sample.respacings:
        raise ConfigError(f"quant.respacing {cfg.respacing} must be one of sample.respacings {sample.respacings}: "
                          "the full-precision FID is taken from those samples")
    device, results = resolve_device(sample.device), {}
    for weights in sample.weights:
        model, config = load_model(run_dir(args.variant, weights), weights, device=device)
        full = Path("samples") / args.variant / f"{weights}_T{cfg.respacing}.npz"
        row = {"32": dict(fid_of(full, fid, device), weight_rel_error=0.0)}
        for bits in cfg.bits:
            quantized, report = quantize_model(model, bits, per_channel=cfg.per_channel,
                                               layer_types=tuple(cfg.layer_types))
            samples = generate(quantized, build_diffusion(config, cfg.respacing), list(range(sample.num)),
                               image_shape(config), sample.batch_size, device, sample.eps_scale, progress=args.progress)
            grid = Path("samples/quant") / args.variant / f"{weights}_T{cfg.respacing}_{bits}bit.png"
            grid.parent.mkdir(parents=True, exist_ok=True)
            save_grid(samples, grid)
            row[str(bits)] = dict(fid_of(samples, fid, device), weight_rel_error=report["rel_error"])
            print(f"{args.variant}/{weights} {bits}-bit: FID {row[str(bits)]['fid']:.3f} "
                  f"(32-bit {row['32']['fid']:.3f}), weight error {report['rel_error']:.4f}")
        results[weights] = row
    _write_json(Path("metrics/quant") / f"{args.variant}.json", dict(respacing=cfg.respacing, rows=results))


def loss_set(params: dict, cfg: FlatnessConfig, device: str) -> flatness.DiffusionLossSet:
    """The fixed (x0, t, eps) set: same images, timesteps and noise for every model and measure."""
    diffusion = build_diffusion(params)
    images = evaluation_subset(dataset_from_config(params["data"]), cfg.num_triples, params["seed"])
    return flatness.DiffusionLossSet(diffusion, images, (cfg.t_min, cfg.t_max), seed=params["seed"],
                                     batch_size=cfg.batch_size, hybrid=cfg.hybrid_loss, device=device)


def flatness_report(model, losses, cfg: FlatnessConfig, seed: int, progress: bool) -> dict:
    """LPF / MC sharpness per sigma, the 1-D loss curve and the Hessian's top eigenvalue and trace."""
    report = {"lpf": {}}
    for sigma in cfg.sigmas:
        out = flatness.lpf(model, losses, sigma, cfg.draws, seed, cfg.filter_relative, progress=progress)
        report["lpf"][str(sigma)] = {k: out[k] for k in ("lpf", "std_err", "base_loss", "mc_sharpness")}
    alphas = np.linspace(-cfg.curve_span, cfg.curve_span, cfg.curve_points)
    report["curve"] = flatness.loss_curve_1d(model, losses, alphas, seed, cfg.curve_directions, progress=progress)
    if cfg.hessian_iters:
        top = flatness.hessian_top_eigenvalue(model, losses.batch_terms(), cfg.hessian_iters, seed=seed,
                                              progress=progress)
        report["hessian_top_eigenvalue"] = {k: top[k] for k in ("eigenvalue", "iterations", "converged")}
    if cfg.hessian_samples:
        trace = flatness.hessian_trace(model, losses.batch_terms(), cfg.hessian_samples, seed=seed,
                                       progress=progress)
        report["hessian_trace"] = {k: trace[k] for k in ("trace", "std_err")}
    return _to_builtin(report)


def stage_flatness(params: dict, args) -> None:
    cfg, sample = _section(params, "flatness", FlatnessConfig), _section(params, "sample", SampleConfig)
    device = resolve_device(sample.device)
    losses, results = loss_set(params, cfg, device), {}
    for weights in sample.weights:
        model, _ = load_model(run_dir(args.variant, weights), weights, device=device)
        results[weights] = flatness_report(model, losses, cfg, params["seed"], args.progress)
        if args.variant in cfg.surface_variants and weights in cfg.surface_weights:
            axis = np.linspace(-cfg.curve_span, cfg.curve_span, cfg.surface_points)
            results[weights]["surface"] = _to_builtin(
                flatness.loss_surface_2d(model, losses, axis, axis, params["seed"], progress=args.progress))
        lpf = results[weights]["lpf"]
        print(f"{args.variant}/{weights}: base loss {next(iter(lpf.values()))['base_loss']:.4f}, "
              + ", ".join(f"MC sharpness(sigma={s}) {v['mc_sharpness']:.4f}" for s, v in lpf.items()))
    _write_json(Path("metrics/flatness") / f"{args.variant}.json", results)


def stage_exposure(params: dict, args) -> None:
    cfg, sample = _section(params, "exposure", ExposureConfig), _section(params, "sample", SampleConfig)
    device = resolve_device(sample.device)
    real = evaluation_subset(dataset_from_config(params["data"]), cfg.num, params["seed"])
    results = {}
    for weights in sample.weights:
        model, config = load_model(run_dir(args.variant, weights), weights, device=device)
        results[weights] = predicted_noise_norms(model, build_diffusion(config, cfg.respacing), real,
                                                 params["seed"], sample.batch_size, device,
                                                 aggregate=cfg.aggregate, progress=args.progress)
        print(f"{args.variant}/{weights}: exposure gap ({cfg.aggregate}) {results[weights]['gap_aggregate']:+.4f}")
    _write_json(Path("metrics/exposure") / f"{args.variant}.json", results)


def stage_rho_train(params: dict, args) -> None:
    """Short SAM runs, one per extra rho, identical to the SAM variant but for rho and the number of steps."""
    from flatlib import train

    cfg = _section(params, "rho_sweep", RhoSweepConfig)
    for rho in cfg.rhos:
        train.main(["--params", args.params, "--variant", "sam", "--out", str(RHO_RUNS / f"rho_{rho}"),
                    "--set", f"optim.rho={rho}", "--set", f"train.steps={cfg.steps}", "--no-progress",
                    "--restart-if-changed"])


def stage_rho_sweep(params: dict, args) -> None:
    """FID (raw weights, T'), base loss and MC sharpness at ``rho_sweep.steps`` for rho = 0 (the ADM run),
    the SAM run's rho and every extra rho of ``rho_sweep.rhos``."""
    cfg, fid = _section(params, "rho_sweep", RhoSweepConfig), _section(params, "fid", FIDConfig)
    flat = _section(params, "flatness", FlatnessConfig)
    sample = _section(params, "sample", SampleConfig)
    device = resolve_device(sample.device)
    sam_rho = params["variants"]["sam"].get("rho", params["optim"]["rho"])
    runs = {0.0: Path("runs/adm"), float(sam_rho): Path("runs/sam")}
    runs.update({float(rho): RHO_RUNS / f"rho_{rho}" for rho in cfg.rhos})
    losses, results = loss_set(params, flat, device), {}
    for rho, folder in tqdm(sorted(runs.items()), desc="rho sweep", disable=not args.progress):
        model, config = load_model(folder, "raw", step=cfg.steps, device=device)
        samples = generate(model, build_diffusion(config, cfg.respacing), list(range(cfg.num_samples)),
                           image_shape(config), sample.batch_size, device, progress=False)
        sharp = flatness.lpf(model, losses, cfg.sigma, flat.draws, params["seed"], flat.filter_relative)
        results[str(rho)] = dict(fid=fid_of(samples, fid, device)["fid"], mc_sharpness=sharp["mc_sharpness"],
                                 base_loss=sharp["base_loss"], lpf=sharp["lpf"], run=str(folder))
        print(f"rho={rho}: {results[str(rho)]}")
    _write_json(Path("metrics/rho_sweep.json"), dict(steps=cfg.steps, sigma=cfg.sigma, respacing=cfg.respacing,
                                                     rows=results))


STAGES = {"reference": stage_reference, "featurenet": stage_featurenet, "sample": stage_sample, "fid": stage_fid,
          "quant": stage_quant, "flatness": stage_flatness, "exposure": stage_exposure,
          "rho-train": stage_rho_train, "rho-sweep": stage_rho_sweep}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--variant", help="training variant (a key of params.yaml 'variants')")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    params = load_yaml(args.params)
    if args.stage in ("sample", "quant", "flatness", "exposure") and args.variant not in params.get("variants", {}):
        parser.error(f"stage {args.stage} needs --variant, one of {sorted(params.get('variants', {}))}")
    torch.manual_seed(params["seed"])
    try:
        STAGES[args.stage](params, args)
    except ConfigError as err:
        parser.exit(2, f"flatlib.pipeline: configuration error: {err}\n")


if __name__ == "__main__":
    main()
