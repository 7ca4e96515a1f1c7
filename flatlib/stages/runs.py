"""The DVC training stages: every run folder of flatlib.layout, trained here or imported; the one owner of them.

    torchrun --standalone --nproc_per_node 1 -m flatlib.stages.runs train --variant sam --seed 0   # runs/sam/seed0
    torchrun --standalone --nproc_per_node 1 -m flatlib.stages.runs swa --variant sam --seed 0     # runs/sam_swa/seed0
    torchrun --standalone --nproc_per_node 1 -m flatlib.stages.runs rho --seed 0   # runs/rho_sweep/seed0/rho_*

A variant of params.yaml ``variants`` is trained by :func:`flatlib.training.train.train_run` with the typed run
config of ``Params.run_config`` (the swa phase: its SWA phase from the train phase's checkpoint), replacing a run
of other params or training code; the rho phase trains the rho sweep's extra SAM runs of one seed, each the SAM
variant's run but for ``optim.rho``. A variant that params.yaml ``imports`` names trains nothing: the train phase
imports its raw and EMA weights, the swa phase its SWA weights, through flatlib.gd.importer (strict load,
SHA-256 and flags in ``import.json``); without SWA weights its SWA folder holds only an ``import.json`` without
weights, and its swa rows are not evaluated (``Params.weights_of``). A folder that holds anything else (another
import, a trained run) is replaced. Under torchrun every rank trains (DDP) and rank 0 alone imports.
"""
from __future__ import annotations

import argparse
import os

from flatlib import atomic, layout, vocabulary
from flatlib.cli import cli_parser
from flatlib.config import ConfigError
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.gd.importer import check_imports, holds_import, import_checkpoint, import_flags, import_source
from flatlib.progress import add_progress_flag
from flatlib.schema import Params, load_params
from flatlib.training.train import hold_run_folder, train_run

PHASES = ("train", "swa", "rho")


def train_phase(params: Params, variant: str, seed: int, phase: str, progress: bool = True) -> None:
    """Train the run folder of ``phase`` (train, or swa from the train phase's checkpoint) of a variant and seed."""
    init = layout.run_dir(variant, seed) if phase == "swa" else None
    train_run(params.run_config(variant, seed), layout.run_dir(variant, seed, phase), phase, init, restart=True,
              progress=progress)


def rho_runs(params: Params, seed: int, progress: bool = True) -> None:
    """The rho sweep's extra runs of one training seed: the SAM variant's run with each ``rho_sweep.rhos``."""
    for rho in params.rho_sweep.rhos:
        train_run(params.run_config("sam", seed, rho=rho), layout.rho_run_dir(rho, seed), restart=True,
                  progress=progress)


def import_phase(params: Params, variant: str, seed: int, phase: str) -> None:
    """Import the weights of ``phase`` (train: raw and EMA; swa: SWA) of an imported variant into its folder."""
    imported = params.imports[variant]
    phase_kinds = [kind for kind in vocabulary.WEIGHT_KINDS if layout.weights_run_dir(variant, seed, kind) ==
                   layout.run_dir(variant, seed, phase)]
    kinds = [kind for kind in imported.files if kind in phase_kinds]
    if kinds:
        import_checkpoint(import_source(imported, kinds), layout.run_dir(variant, seed), params.data, seed,
                          swa_out=layout.run_dir(variant, seed, "swa"), replace=True)
        return
    folder = layout.run_dir(variant, seed, phase)
    record = dict(flags=import_flags(imported).given, weights={},
                  note=f"imports.{variant} gives {', '.join(imported.files)} weights, none of {', '.join(phase_kinds)}")
    if not holds_import(folder, record, replace=True):
        with hold_run_folder(folder):
            atomic.write_json(folder / layout.IMPORT_RECORD, record, indent=2)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.stages.runs", __doc__)
    parser.add_argument("phase", choices=PHASES, help="train: runs/V/seedS; swa: its SWA phase runs/V_swa/seedS; "
                                                      "rho: the rho sweep's runs runs/rho_sweep/seedS/rho_R")
    parser.add_argument("--variant", help="a key of params.yaml 'variants' (train and swa)")
    parser.add_argument("--seed", type=int, required=True, help="a training seed of params.yaml 'seeds'")
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with cli_errors("stages.runs", args.debug):
        params = load_params(args.params)
        if args.seed not in params.seeds or (args.phase != "rho") != (args.variant in params.variants):
            raise ConfigError(f"--variant {args.variant} --seed {args.seed}: choose a seed of {params.seeds} and, "
                              f"for train and swa only, a variant of {sorted(params.variants)} (params.yaml)")
        if args.phase == "rho":
            rho_runs(params, args.seed, args.progress)
        elif args.variant not in params.imports:
            train_phase(params, args.variant, args.seed, args.phase, args.progress)
        elif int(os.environ.get("RANK", 0)) == 0:
            check_imports(params)
            import_phase(params, args.variant, args.seed, args.phase)


if __name__ == "__main__":
    main()
