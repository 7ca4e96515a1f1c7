"""The evaluation stages of ``dvc.yaml``: each subcommand reads the typed params (flatlib.schema) and writes
the artifacts of flatlib.layout that the notebooks read.

    python -m flatlib.stages.pipeline reference                   # data/reference.npz (FID reference images)
    python -m flatlib.stages.pipeline featurenet                  # data/featurenet.pt (CPU-profile FID feature extractor)
    python -m flatlib.stages.pipeline sample --variant sam --seed 0    # samples/V/seedS/{weights}_T{T'}.npz (+ .png grid)
    python -m flatlib.stages.pipeline fid --variant sam --seed 0       # metrics/fid/V/seedS.json
    python -m flatlib.stages.pipeline fid-floor                        # metrics/fid_floor.json (real-vs-real floor)
    python -m flatlib.stages.pipeline quant --variant sam --seed 0     # metrics/quant/V/seedS.json, samples/quant/V/seedS/
    python -m flatlib.stages.pipeline flatness --variant sam --seed 0  # metrics/flatness/V/seedS.json
    python -m flatlib.stages.pipeline exposure --variant sam --seed 0  # metrics/exposure/V/seedS.json
    python -m flatlib.stages.pipeline rho-sweep --seed 0 --rho 0.05    # metrics/rho_sweep/seed0/rho_0.05.json

(V: the variant, S: the training seed.) A Table 1 row is a (variant, weights) pair: ``adm/raw`` is "ADM",
``adm/ema`` "+EMA", ``adm/swa`` "+SWA" (SWA weights of the SWA phase ``runs/adm_swa/seedS``), ``ip/raw`` "+IP",
and so on (flatlib.vocabulary.PAPER_ROWS).
The stages measure the weights of ``Params.weights_of``: ``sample.weights``, less those an imported variant
lacks; a run folder reads the same, trained or imported (flatlib.stages.runs).
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from flatlib import atomic, layout, seeding, vocabulary
from flatlib.measure import flatness, records
from flatlib.training.checkpoints import load_model
from flatlib.cli import cli_parser
from flatlib.config import ConfigError
from flatlib.model.device import resolve_device
from flatlib.model.diffusion import diffusion_from_config
from flatlib.model.loss_set import DiffusionLossSet
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.training.data import ArrayImageDataset, dataset_from_config, evaluation_subset
from flatlib.measure.exposure import exposure_of_run
from flatlib.measure.metrics import EXTRACTORS, compute_metrics, load_images, save_feature_net, train_feature_net
from flatlib.schema import FIDConfig, FlatnessConfig, Params, load_params
from flatlib.progress import add_progress_flag, line_buffered_stdout
from flatlib.measure.quant import quantize_model
from flatlib.measure.sample import sample_run, save_grid, save_samples


def _to_builtin(value):
    if isinstance(value, dict):
        return {k: _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return np.asarray(value).tolist()
    return value


def _device(params: Params) -> torch.device:
    return resolve_device(params.sample.device)


# ---------------------------------------------------------------------------------------------- stages
def stage_reference(params: Params, args) -> None:
    dataset = dataset_from_config(params.data)
    if isinstance(dataset, ArrayImageDataset) and params.fid.reference_size >= len(dataset):
        images = dataset.images
    else:
        floats = evaluation_subset(dataset, params.fid.reference_size, seeding.derive(params.seed, "fid_reference"))
        images = ((floats + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    atomic.savez_compressed(layout.REFERENCE, samples=images.numpy())
    print(f"reference: {len(images)} images {tuple(images.shape[1:])} -> {layout.REFERENCE}")


def stage_featurenet(params: Params, args) -> None:
    cfg = params.featurenet
    model, scores = train_feature_net(dataset_from_config(params.data), epochs=cfg.epochs,
                                      batch_size=cfg.batch_size, lr=cfg.lr, seed=params.seed,
                                      device=resolve_device("auto"), progress=args.progress)
    save_feature_net(layout.FEATURENET, model, meta=dict(scores, data=dataclasses.asdict(params.data)))
    records.write("featurenet", layout.FEATURENET_METRICS, scores)
    print(f"featurenet: {scores}")


def stage_sample(params: Params, args) -> None:
    """Every sample set of every (weights, T') row of one run: image seeds ``sample.seeds``, shared by every
    model and training seed (paired)."""
    cfg, device = params.sample, _device(params)
    for weights in params.weights_of(args.variant):
        model, run, _ = load_model(layout.weights_run_dir(args.variant, args.seed, weights), weights, device=device)
        for respacing in cfg.respacings:
            samples = sample_run(model, run, respacing, cfg.seeds, cfg, device, args.progress)
            out = layout.samples_file(args.variant, args.seed, weights, respacing)
            save_samples(samples, out)
            print(f"{args.variant}/{weights} seed {args.seed} T'={respacing}: {len(samples)} samples -> {out}")


def fid_of(samples, cfg: FIDConfig, device) -> dict:
    """FID (KID, precision/recall) of samples (an .npz path or uint8 tensor) against the reference set."""
    weights = EXTRACTORS[cfg.extractor].weights(cfg)
    return compute_metrics(samples, layout.REFERENCE, extractor=cfg.extractor, weights_path=weights,
                           cache_root=layout.FIDELITY_CACHE, reference_cache_name=f"reference-{cfg.extractor}",
                           kid=cfg.kid, prc=cfg.prc, batch_size=cfg.batch_size, device=device)


def fid_of_sets(samples: torch.Tensor, params: Params, device) -> dict:
    """Each metric of :func:`fid_of` as a list, one value per sample set of ``samples`` (sample.sets: the
    within-seed noise of the verdicts' variance model), and as ``METRIC_all`` on all samples of the seed (the
    seed's value: FID's small-sample bias shrinks with the count, Chong & Forsyth 2020)."""
    per_set = [fid_of(images, params.fid, device) for images in params.sample.split(samples)]
    whole = per_set[0] if len(per_set) == 1 else fid_of(samples, params.fid, device)
    return {**{key: [scores[key] for scores in per_set] for key in per_set[0]},
            **{f"{key}_all": value for key, value in whole.items()}}


def stage_fid(params: Params, args) -> None:
    device, rows = _device(params), {}
    for weights in params.weights_of(args.variant):
        for respacing in params.sample.respacings:
            samples = load_images(layout.samples_file(args.variant, args.seed, weights, respacing))
            scores = fid_of_sets(samples, params, device)
            rows.setdefault(weights, {})[f"T{respacing}"] = scores
            print(f"{vocabulary.label(args.variant, weights):>10} seed {args.seed} T'={respacing}: FID per sample set "
                  + ", ".join(f"{x:.3f}" for x in scores["fid"]))
    records.write("fid", layout.variant_metrics("fid", args.variant, args.seed),
                  dict(extractor=params.fid.extractor, num_samples=params.sample.num, sets=params.sample.sets,
                       rows=rows))


def stage_fid_floor(params: Params, args) -> None:
    """The real-vs-real floor: FID/KID of ``fid.floor_draws`` seeded draws of real images against the reference, at
    the count of one sample set (sample.num) and of all sets of a seed (sample.num * sample.sets): what a model
    that reproduced the data exactly would score at that count. Drawn from the held-out images when they suffice,
    else from the training images the reference is made of (then a lower bound: the draw overlaps the reference)."""
    device, cfg = _device(params), params.sample
    counts = {"set": cfg.num, "all": cfg.num * cfg.sets}
    held = dataset_from_config(params.data, "holdout") if params.data.holdout >= counts["all"] else None
    source = held if held is not None else dataset_from_config(params.data)
    out = dict(extractor=params.fid.extractor, source="held-out images" if held is not None else
               "training images (the reference's own: a lower bound)", counts=counts)
    for name, count in counts.items():
        draws = []
        for draw in range(params.fid.floor_draws):
            floats = evaluation_subset(source, count, seeding.derive(params.seed, "fid_floor", draw))
            draws.append(fid_of(((floats + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), params.fid, device))
        out[name] = {key: [d[key] for d in draws] for key in draws[0]}
        print(f"real-vs-real floor, {count} images ({out['source']}): FID " + ", ".join(
            f"{x:.3f}" for x in out[name]["fid"]))
    records.write("fid_floor", layout.FID_FLOOR, out)


def stage_quant(params: Params, args) -> None:
    cfg, device, results = params.quant, _device(params), {}
    for weights in params.weights_of(args.variant):
        model, run, _ = load_model(layout.weights_run_dir(args.variant, args.seed, weights), weights, device=device)
        full = load_images(layout.samples_file(args.variant, args.seed, weights, cfg.respacing))
        row = {"32": dict(fid_of_sets(full, params, device), weight_rel_error=0.0)}
        for bits in cfg.bits:
            quantized, report = quantize_model(model, bits, per_channel=cfg.per_channel,
                                               layer_types=tuple(cfg.layer_types))
            samples = sample_run(quantized, run, cfg.respacing, params.sample.seeds, params.sample, device,
                                 args.progress)
            grid = layout.quant_grid_file(args.variant, args.seed, weights, cfg.respacing, bits)
            grid.parent.mkdir(parents=True, exist_ok=True)
            save_grid(samples, grid)
            row[str(bits)] = dict(fid_of_sets(samples, params, device), weight_rel_error=report["rel_error"])
            print(f"{args.variant}/{weights} seed {args.seed} {bits}-bit: FID {np.mean(row[str(bits)]['fid']):.3f} "
                  f"(32-bit {np.mean(row['32']['fid']):.3f}), weight error {report['rel_error']:.4f}")
        results[weights] = row
    records.write("quant", layout.variant_metrics("quant", args.variant, args.seed),
                  dict(respacing=cfg.respacing, rows=results))


def loss_set(params: Params, device) -> DiffusionLossSet:
    """The fixed (x0, t, eps) set: same images, timesteps and noise for every model, seed and measure."""
    cfg = params.flatness
    diffusion = diffusion_from_config(params.diffusion, params.model.learn_sigma)
    images = evaluation_subset(dataset_from_config(params.data), cfg.num_triples,
                               seeding.derive(params.seed, "flatness_images"))
    return DiffusionLossSet(diffusion, images, (cfg.t_min, cfg.t_max),
                            seed=seeding.derive(params.seed, "flatness_triples"),
                            batch_size=cfg.batch_size, hybrid=cfg.hybrid_loss, device=device)


def lpf_at(model, losses, cfg: FlatnessConfig, sigma: float, seed: int, progress: bool) -> dict:
    """LPF, its standard error, the base loss and MC sharpness at ``sigma``: the same draws for every model (the
    Table 1 rows and the rho sweep's runs alike)."""
    out = flatness.lpf(model, losses, sigma, cfg.draws, seeding.derive(seed, "flatness_lpf"), cfg.filter_relative,
                       progress=progress)
    return {k: out[k] for k in ("lpf", "std_err", "base_loss", "mc_sharpness")}


def flatness_report(model, losses, cfg: FlatnessConfig, seed: int, progress: bool) -> dict:
    """LPF / MC sharpness per sigma, the 1-D loss curve and the Hessian's top eigenvalue and trace; each measure
    draws from its own stream of the evaluation ``seed`` (flatlib.seeding)."""
    report = {"lpf": {str(sigma): lpf_at(model, losses, cfg, sigma, seed, progress) for sigma in cfg.sigmas}}
    alphas = np.linspace(-cfg.curve_span, cfg.curve_span, cfg.curve_points)
    report["curve"] = flatness.loss_curve_1d(model, losses, alphas, seeding.derive(seed, "flatness_curve"),
                                             cfg.curve_directions, progress=progress)
    if cfg.hessian_iters:
        top = flatness.hessian_top_eigenvalue(model, losses.batch_terms(), cfg.hessian_iters, cfg.hessian_tol,
                                              seed=seeding.derive(seed, "flatness_eigen"), progress=progress)
        report["hessian_top_eigenvalue"] = {k: top[k] for k in ("eigenvalue", "iterations", "converged")}
    if cfg.hessian_samples:
        trace = flatness.hessian_trace(model, losses.batch_terms(), cfg.hessian_samples,
                                       seed=seeding.derive(seed, "flatness_trace"), progress=progress)
        report["hessian_trace"] = {k: trace[k] for k in ("trace", "std_err")}
    return _to_builtin(report)


def stage_flatness(params: Params, args) -> None:
    cfg, device = params.flatness, _device(params)
    losses, results = loss_set(params, device), {}
    for weights in params.weights_of(args.variant):
        model, _, _ = load_model(layout.weights_run_dir(args.variant, args.seed, weights), weights, device=device)
        results[weights] = flatness_report(model, losses, cfg, params.seed, args.progress)
        if args.variant in cfg.surface_variants and weights in cfg.surface_weights:
            axis = np.linspace(-cfg.curve_span, cfg.curve_span, cfg.surface_points)
            results[weights]["surface"] = _to_builtin(
                flatness.loss_surface_2d(model, losses, axis, axis, seeding.derive(params.seed, "flatness_curve"),
                                         progress=args.progress))
        lpf = results[weights]["lpf"]
        print(f"{args.variant}/{weights} seed {args.seed}: base loss {next(iter(lpf.values()))['base_loss']:.4f}, "
              + ", ".join(f"MC sharpness(sigma={s}) {v['mc_sharpness']:.4f}" for s, v in lpf.items()))
    records.write("flatness", layout.variant_metrics("flatness", args.variant, args.seed), results)


def stage_exposure(params: Params, args) -> None:
    cfg, results = params.exposure, {}
    for weights in params.weights_of(args.variant):
        results[weights] = exposure_of_run(layout.weights_run_dir(args.variant, args.seed, weights), weights, cfg,
                                           params.seed, params.sample.batch_size, _device(params),
                                           progress=args.progress)
        print(f"{args.variant}/{weights} seed {args.seed}: exposure gap ({cfg.aggregate}) "
              f"{results[weights]['gap_aggregate']:+.4f}")
    records.write("exposure", layout.variant_metrics("exposure", args.variant, args.seed), results)


def stage_rho_sweep(params: Params, args) -> None:
    """One extra run of the rho sweep (``--rho``, ``--seed``): FID per sample set of its raw weights at
    ``rho_sweep.respacing`` and LPF / MC sharpness at ``rho_sweep.sigma``, measured as the sample, fid and flatness
    stages measure the Table 1 rows (whose raw-weight values are the sweep's rho 0 and SAM rows). The run's
    convergence is in its run record (metrics/train/), where the report reads every run's."""
    cfg, device = params.rho_sweep, _device(params)
    folder = layout.rho_run_dir(args.rho, args.seed)
    model, run, _ = load_model(folder, "raw", device=device)
    samples = sample_run(model, run, cfg.respacing, params.sample.seeds, params.sample, device, args.progress)
    result = dict(fid=fid_of_sets(samples, params, device)["fid"],
                  **lpf_at(model, loss_set(params, device), params.flatness, cfg.sigma, params.seed, args.progress))
    print(f"rho={args.rho} seed {args.seed}: {result}")
    records.write("rho_sweep", layout.rho_sweep_metrics(args.rho, args.seed), result)


STAGES = {"reference": stage_reference, "featurenet": stage_featurenet, "sample": stage_sample, "fid": stage_fid,
          "fid-floor": stage_fid_floor,
          "quant": stage_quant, "flatness": stage_flatness, "exposure": stage_exposure,
          "rho-sweep": stage_rho_sweep}
PER_VARIANT = ("sample", "fid", "quant", "flatness", "exposure")
RHO_SWEEP = ("rho-sweep",)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.stages.pipeline", __doc__)
    parser.add_argument("stage", choices=sorted(STAGES), help="the stage to run")
    parser.add_argument("--variant", help=f"training variant (a key of params.yaml 'variants') of the stages "
                                           f"{', '.join(PER_VARIANT)}")
    parser.add_argument("--seed", type=int, help=f"training seed (one of params.yaml 'seeds') of the stages "
                                                 f"{', '.join(PER_VARIANT + RHO_SWEEP)}")
    parser.add_argument("--rho", type=float, help=f"one of params.yaml 'rho_sweep.rhos' ({' and '.join(RHO_SWEEP)})")
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with cli_errors("stages.pipeline", args.debug):
        params = load_params(args.params)
        if args.stage in PER_VARIANT and args.variant not in params.variants:
            raise ConfigError(f"stage {args.stage} needs --variant, one of {sorted(params.variants)}")
        if args.stage in PER_VARIANT + RHO_SWEEP and args.seed not in params.seeds:
            raise ConfigError(f"stage {args.stage} needs --seed, one of params.yaml seeds {params.seeds}")
        if args.stage in RHO_SWEEP and args.rho not in params.rho_sweep.rhos:
            raise ConfigError(f"stage {args.stage} needs --rho, one of params.yaml rho_sweep.rhos "
                              f"{params.rho_sweep.rhos}")
        torch.manual_seed(seeding.derive(params.seed, "evaluation"))
        line_buffered_stdout()
        STAGES[args.stage](params, args)


if __name__ == "__main__":
    main()
