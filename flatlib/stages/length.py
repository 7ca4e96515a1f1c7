"""Stage length (issue 21 items 3-5): the saved checkpoints of one training run measured besides its final step.

    python -m flatlib.stages.length --variant adm --seed 0     # metrics/length/adm/seed0.json

Each checkpoint is measured as Table 1 measures the final weights (flatlib.stages.pipeline: the same sampling
path, image seeds and count sample.num x sample.sets, FID per sample set and on all of them, MC sharpness at
flatness.sigmas on the fixed loss set), at the paper's T' of length.respacings (a subset of sample.respacings):

- **training length** (item 4): raw and EMA weights at the checkpoint nearest each of ``length.fractions`` of
  train.steps, so every FID and flatness verdict can be decided again at that length (flatlib.report.length);
- **iterate noise** (item 5): raw weights of the last ``length.last_k`` checkpoints, whose spread is the noise of
  taking the final iterate of a run at a constant learning rate;
- **equal progress** (item 3, for adm when sam is trained too): raw and EMA weights at the ADM checkpoint whose
  held-out loss (log.csv ``eval_mse``) is closest to SAM's final one (:func:`equal_progress_step`): SAM trained
  for the same steps is less far along (higher held-out loss), and this control compares it with an ADM that is
  as far along.

The final step is never measured again: its numbers are Table 1's (metrics/fid, metrics/flatness). An imported
variant has no checkpoints to measure: its file records that.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from flatlib import layout, seeding
from flatlib.cli import cli_parser
from flatlib.config import ConfigError
from flatlib.errors import MissingInputError, add_debug_flag, cli_errors
from flatlib.measure import records
from flatlib.measure.sample import sample_run
from flatlib.model.device import resolve_device
from flatlib.progress import add_progress_flag, line_buffered_stdout
from flatlib.schema import Params, load_params
from flatlib.stages.pipeline import fid_of_sets, loss_set, lpf_at
from flatlib.training.checkpoints import load_model, saved_steps
from flatlib.vocabulary import CHECKPOINT_WEIGHTS, PAPER_RESPACINGS


def nearest_step(steps: list[int], target: float) -> int:
    """The saved step nearest ``target`` (the earlier one on a tie)."""
    return min(steps, key=lambda s: (abs(s - target), s))


def held_out_losses(log: str | Path) -> dict[int, float]:
    """step -> held-out L_simple (``eval_mse``) of a run's log.csv, at the steps where it was measured."""
    with open(log) as f:
        return {int(r["step"]): float(r["eval_mse"]) for r in csv.DictReader(f) if r.get("eval_mse")}


def equal_progress_step(losses: dict[int, float], checkpoints: list[int], target: float) -> int:
    """The checkpoint whose held-out loss (``losses``: step -> eval_mse) is closest to ``target`` (SAM's final
    held-out loss; issue 21 item 3); the later one on a tie. Checkpoints without a logged loss are not candidates."""
    candidates = [s for s in checkpoints if s in losses]
    if not candidates:
        raise ConfigError(f"no checkpoint of {checkpoints} has a held-out loss in the log (train.log_every must "
                          "divide train.save_every)")
    return min(candidates, key=lambda s: (abs(losses[s] - target), -s))


def plan(params: Params, variant: str, seed: int) -> dict:
    """Which checkpoints of the run are measured and why: {final_step, fractions: {fraction: step}, last_k: [steps],
    equal_progress: {step, target, eval_mse} (adm with a trained sam only), measure: {step: [weights]}}."""
    final = params.train.steps
    steps = [s for s in saved_steps(layout.run_dir(variant, seed)) if s <= final]
    if final not in steps:
        raise MissingInputError(f"{layout.run_dir(variant, seed)} holds no checkpoint of its final step {final}: "
                                f"run `dvc repro {layout.stage_of(layout.run_dir(variant, seed))}`")
    out = dict(final_step=final, fractions={str(f): nearest_step(steps, f * final) for f in params.length.fractions},
               last_k=steps[-params.length.last_k:])
    measure = {s: list(CHECKPOINT_WEIGHTS) for s in out["fractions"].values()}
    for s in out["last_k"]:
        measure.setdefault(s, ["raw"])
    if variant == "adm" and "sam" in params.variants and "sam" not in params.imports:
        target = held_out_losses(layout.run_record(layout.run_dir("sam", seed)) / layout.RUN_LOG)[final]
        losses = held_out_losses(layout.run_record(layout.run_dir("adm", seed)) / layout.RUN_LOG)
        step = equal_progress_step(losses, steps, target)
        out["equal_progress"] = dict(step=step, target=target, eval_mse=losses[step])
        measure[step] = list(CHECKPOINT_WEIGHTS)
    weights = params.weights_of(variant)
    out["measure"] = {s: [w for w in ws if w in weights] for s, ws in sorted(measure.items()) if s != final}
    return out


def stage_length(params: Params, args) -> None:
    device = resolve_device(params.sample.device)
    out_file = layout.length_metrics(args.variant, args.seed)
    if args.variant in params.imports:
        records.write("length", out_file, dict(imported=True, rows={}))
        print(f"{args.variant} is imported: no checkpoints to measure")
        return
    todo = plan(params, args.variant, args.seed)
    respacings = [t for t in params.length.respacings if t in PAPER_RESPACINGS]
    losses, rows = loss_set(params, device), {}
    for step, kinds in todo.pop("measure").items():
        for weights in kinds:
            model, run, _ = load_model(layout.run_dir(args.variant, args.seed), weights, step, device)
            fid = {f"T{t}": fid_of_sets(sample_run(model, run, t, params.sample.seeds, params.sample, device,
                                                   args.progress), params, device) for t in respacings}
            lpf = {str(s): lpf_at(model, losses, params.flatness, s, params.seed, args.progress)
                   for s in params.flatness.sigmas}
            rows.setdefault(str(step), {})[weights] = dict(fid=fid, lpf=lpf)
            print(f"{args.variant}/{weights} seed {args.seed} step {step}: FID " + ", ".join(
                f"T'={t[1:]} {v['fid_all']:.3f}" for t, v in fid.items()))
    records.write("length", out_file, dict(todo, num_samples=params.sample.num, sets=params.sample.sets, rows=rows))


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.stages.length", __doc__)
    parser.add_argument("--variant", required=True, help="training variant (a key of params.yaml 'variants')")
    parser.add_argument("--seed", type=int, required=True, help="training seed (one of params.yaml 'seeds')")
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with cli_errors("stages.length", args.debug):
        params = load_params(args.params)
        if args.variant not in params.variants or args.seed not in params.seeds:
            raise ConfigError(f"--variant must be one of {sorted(params.variants)} and --seed one of {params.seeds}")
        torch.manual_seed(seeding.derive(params.seed, "evaluation"))
        line_buffered_stdout()
        stage_length(params, args)


if __name__ == "__main__":
    main()
