"""The DVC train and swa stages: a variant's run folder of one training seed, trained here or imported.

    python -m flatlib.runs train --variant sam --seed 0   # runs/sam/seed0
    python -m flatlib.runs swa --variant sam --seed 0     # runs/sam_swa/seed0

A variant of params.yaml ``variants`` is trained by flatlib.train with ``--restart-if-changed`` (the swa stage:
its SWA phase from the train phase's checkpoint). A variant that params.yaml ``imports`` names trains nothing:
the train stage imports its raw and EMA weights, the swa stage its SWA weights, through flatlib.gd_import
(strict load, SHA-256 and flags in ``import.json``); without SWA weights its SWA folder holds only an
``import.json`` without weights, and its swa rows are not evaluated (``Params.weights_of``). A folder that holds
anything else (another import, a trained run) is replaced, as ``--restart-if-changed`` replaces a changed run.
Folders are the ones flatlib.layout names.

Launch (issue 22): with ``launch.nproc_per_node`` 1 the stage trains in this process, without torchrun; with N > 1
it runs torchrun's launcher in-process (:func:`launch_ranks`): N ranks run this same command (DDP), and the
launcher ends with the exit status of the ranks, silently (they printed their own line). Ctrl-C reaches the
launcher alone (torchrun starts each rank in a session of its own), which passes it once to every rank: each
finishes its step, saves, prints ``flatlib.train: error: stopped by SIGINT ...`` (rank 0) and the stage exits 130.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from flatlib import atomic, layout
from flatlib.cli import cli_parser
from flatlib.config import ConfigError
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.gd_import import IMPORT_RECORD, holds_import, import_checkpoint
from flatlib.params import Params, load_params
from flatlib.progress import add_progress_flag
from flatlib.train import hold_run_folder
from flatlib.train import main as train_main

PHASES = ("train", "swa")


def train_arguments(variant: str, seed: int, phase: str, params_path: str, progress: bool = True) -> list[str]:
    """flatlib.train's command line for the run folder of ``phase``."""
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
    parser = cli_parser("python -m flatlib.runs", __doc__)
    parser.add_argument("phase", choices=PHASES, help="train: runs/V/seedS; swa: its SWA phase runs/V_swa/seedS")
    parser.add_argument("--variant", required=True, help="a key of params.yaml 'variants'")
    parser.add_argument("--seed", type=int, required=True, help="a training seed of params.yaml 'seeds'")
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def launch_ranks(argv: list[str], nproc: int) -> None:
    """Run ``python -m flatlib.runs ARGV`` as ``nproc`` DDP ranks through torchrun's launcher, in this process,
    and exit with their status: 0, the status of the first failed rank (the lowest of those that failed in the
    same second; 2 for an expected failure, which that rank printed), or 128 + the signal that stopped the
    launcher (the ranks got it too, saved and said so).
    torchrun's own traceback and log lines are not shown: each rank reports for itself."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name in list(logging.root.manager.loggerDict):  # each module's logger sets its own level (LOGLEVEL)
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(parse_args(["--standalone", "--nproc_per_node", str(nproc), "-m", "flatlib.runs", *argv]))
    except SignalException as err:
        raise SystemExit(128 + int(err.sigval)) from None
    except ChildFailedError as err:
        first = min(err.failures.values(), key=lambda failure: (failure.timestamp, failure.local_rank))
        raise SystemExit(first.exitcode if first.exitcode > 0 else 128 - first.exitcode) from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    with cli_errors("runs", args.debug):
        params = load_params(args.params)
        if args.variant not in params.variants or args.seed not in params.seeds:
            raise ConfigError(f"--variant {args.variant} --seed {args.seed}: choose a variant of "
                              f"{sorted(params.variants)} and a seed of {params.seeds} (params.yaml)")
        if args.variant in params.imports:
            if int(os.environ.get("RANK", 0)) == 0:
                import_phase(params, args.variant, args.seed, args.phase)
        elif params.launch.nproc_per_node > 1 and "RANK" not in os.environ:
            launch_ranks(argv, params.launch.nproc_per_node)
        else:
            train_main(train_arguments(args.variant, args.seed, args.phase, args.params, args.progress))


if __name__ == "__main__":
    main()
