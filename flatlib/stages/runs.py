"""The DVC train and swa stages: a variant's run folder of one training seed, trained here or imported.

    torchrun --standalone --nproc_per_node 1 -m flatlib.stages.runs train --variant sam --seed 0   # runs/sam/seed0
    torchrun --standalone --nproc_per_node 1 -m flatlib.stages.runs swa --variant sam --seed 0     # runs/sam_swa/seed0

A variant of params.yaml ``variants`` is trained by flatlib.training.train with ``--restart-if-changed`` (the swa stage:
its SWA phase from the train phase's checkpoint). A variant that params.yaml ``imports`` names trains nothing:
the train stage imports its raw and EMA weights, the swa stage its SWA weights, through flatlib.gd.importer
(strict load, SHA-256 and flags in ``import.json``); without SWA weights its SWA folder holds only an
``import.json`` without weights, and its swa rows are not evaluated (``Params.weights_of``). A folder that holds
anything else (another import, a trained run) is replaced, as ``--restart-if-changed`` replaces a changed run.
Under torchrun, rank 0 alone imports. Folders are the ones flatlib.layout names.
"""
from __future__ import annotations

import argparse
import os

from flatlib import atomic, layout
from flatlib.cli import cli_parser
from flatlib.config import ConfigError
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.gd.importer import IMPORT_RECORD, holds_import, import_checkpoint
from flatlib.schema import Params, load_params
from flatlib.progress import add_progress_flag
from flatlib.training.train import hold_run_folder
from flatlib.training.train import main as train_main

PHASES = ("train", "swa")


def train_arguments(variant: str, seed: int, phase: str, params_path: str, progress: bool = True) -> list[str]:
    """flatlib.training.train's command line for the run folder of ``phase``."""
    out = layout.run_dir(variant, seed, phase)
    init = ["--phase", "swa", "--init", str(layout.run_dir(variant, seed))] if phase == "swa" else []
    return ["--params", params_path, "--variant", variant, "--seed", str(seed), *init, "--out", str(out),
            *([] if progress else ["--no-progress"]), "--restart-if-changed"]


def import_phase(params: Params, variant: str, seed: int, phase: str) -> None:
    """Import the weights of ``phase`` (train: raw and EMA; swa: SWA) of an imported variant into its folder."""
    imported = params.imports[variant]
    phase_kinds = [kind for kind in layout.WEIGHT_KINDS if layout.weights_run_dir(variant, seed, kind) ==
                   layout.run_dir(variant, seed, phase)]
    kinds = [kind for kind in imported.files if kind in phase_kinds]
    if kinds:
        import_checkpoint(imported.source(kinds), layout.run_dir(variant, seed), params.data, seed,
                          swa_out=layout.run_dir(variant, seed, "swa"), replace=True)
        return
    folder = layout.run_dir(variant, seed, phase)
    record = dict(flags=imported.gd_flags.given, weights={},
                  note=f"imports.{variant} gives {', '.join(imported.files)} weights, none of {', '.join(phase_kinds)}")
    if not holds_import(folder, record, replace=True):
        with hold_run_folder(folder):
            atomic.write_json(folder / IMPORT_RECORD, record, indent=2)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.stages.runs", __doc__)
    parser.add_argument("phase", choices=PHASES, help="train: runs/V/seedS; swa: its SWA phase runs/V_swa/seedS")
    parser.add_argument("--variant", required=True, help="a key of params.yaml 'variants'")
    parser.add_argument("--seed", type=int, required=True, help="a training seed of params.yaml 'seeds'")
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with cli_errors("runs", args.debug):
        params = load_params(args.params)
        if args.variant not in params.variants or args.seed not in params.seeds:
            raise ConfigError(f"--variant {args.variant} --seed {args.seed}: choose a variant of "
                              f"{sorted(params.variants)} and a seed of {params.seeds} (params.yaml)")
        if args.variant not in params.imports:
            train_main(train_arguments(args.variant, args.seed, args.phase, args.params, args.progress))
        elif int(os.environ.get("RANK", 0)) == 0:
            import_phase(params, args.variant, args.seed, args.phase)


if __name__ == "__main__":
    main()
