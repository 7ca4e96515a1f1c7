"""The DVC training stages: every run folder of flatlib.layout, trained here or imported; the one owner of them.

    python -m flatlib.stages.runs train --variant sam --seed 0   # runs/sam/seed0
    python -m flatlib.stages.runs swa --variant sam --seed 0     # runs/sam_swa/seed0
    python -m flatlib.stages.runs rho --seed 0 --rho 0.05        # runs/rho_sweep/seed0/rho_0.05

A variant of params.yaml ``variants`` is trained by :func:`flatlib.training.train.train_run` with the typed run
config of ``Params.run_config`` (the swa phase: its SWA phase from the train phase's checkpoint), replacing a run
of other params or training code; the rho phase trains one extra SAM run of the rho sweep, the SAM variant's run
of that seed but for ``optim.rho``. A variant that params.yaml ``imports`` names trains nothing: the train phase
imports its raw and EMA weights, the swa phase its SWA weights, through flatlib.gd.importer (strict load,
SHA-256 and flags in ``import.json``); without SWA weights its SWA folder holds only an ``import.json`` without
weights, and its swa rows are not evaluated (``Params.weights_of``). A folder that holds anything else (another
import, a trained run) is replaced. Imports run in this process (under torchrun, rank 0 alone imports).

Launch (issue 22): with ``launch.nproc_per_node`` 1 a phase trains in this process, without torchrun; with N > 1
it runs torchrun's launcher in-process (:func:`launch_ranks`): N ranks run this same command (DDP), and the
launcher ends with the exit status of the ranks, silently (they printed their own line). Ctrl-C reaches the
launcher alone (torchrun starts each rank in a session of its own), which passes it once to every rank: each
finishes its step, saves, prints ``flatlib.stages.runs: error: stopped by SIGINT ...`` (rank 0) and the stage
exits 130. The train, swa and rho phases all start this way.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from flatlib import atomic, layout, vocabulary
from flatlib.cli import cli_parser
from flatlib.config import ConfigError
from flatlib.errors import add_debug_flag, cli_errors
from flatlib.gd.importer import check_imports, holds_import, import_checkpoint, import_flags, import_source
from flatlib.measure import records
from flatlib.progress import add_progress_flag
from flatlib.schema import Params, load_params
from flatlib.training.train import hold_run_folder, train_run

PHASES = ("train", "swa", "rho")


def publish_record(folder) -> None:
    """Copy a run folder's small files (:data:`flatlib.layout.RECORD_FILES`: log, metrics, import record) to its
    :func:`flatlib.layout.run_record`, a declared output of the stage beside the checkpoints (rank 0 alone). The
    metrics, which the trainer writes and the report reads, are checked first (flatlib.measure.records)."""
    if int(os.environ.get("RANK", 0)) != 0:
        return
    if (folder / layout.RUN_METRICS).is_file():
        records.read("train", folder / layout.RUN_METRICS)
    for name in layout.RECORD_FILES:
        if (folder / name).is_file():
            atomic.write_bytes(layout.run_record(folder) / name, (folder / name).read_bytes())


def train_phase(params: Params, variant: str, seed: int, phase: str, progress: bool = True) -> None:
    """Train the run folder of ``phase`` (train, or swa from the train phase's checkpoint) of a variant and seed."""
    init = layout.run_dir(variant, seed) if phase == "swa" else None
    train_run(params.run_config(variant, seed), layout.run_dir(variant, seed, phase), phase, init, restart=True,
              progress=progress)
    publish_record(layout.run_dir(variant, seed, phase))


def rho_run(params: Params, seed: int, rho: float, progress: bool = True) -> None:
    """One extra run of the rho sweep: the SAM variant's run of ``seed`` with ``optim.rho`` = ``rho``."""
    train_run(params.run_config("sam", seed, rho=rho), layout.rho_run_dir(rho, seed), restart=True,
              progress=progress)
    publish_record(layout.rho_run_dir(rho, seed))


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
                                                      "rho: a rho sweep's run runs/rho_sweep/seedS/rho_R")
    parser.add_argument("--variant", help="a key of params.yaml 'variants' (train and swa)")
    parser.add_argument("--rho", type=float, help="one of params.yaml 'rho_sweep.rhos' (rho)")
    parser.add_argument("--seed", type=int, required=True, help="a training seed of params.yaml 'seeds'")
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def launch_ranks(argv: list[str], nproc: int) -> None:
    """Run ``python -m flatlib.stages.runs ARGV`` as ``nproc`` DDP ranks through torchrun's launcher, in this
    process, and exit with their status: 0, the status of the first failed rank (the lowest of those that failed
    in the same second; 2 for an expected failure, which that rank printed), or 128 + the signal that stopped the
    launcher (the ranks got it too, saved and said so).
    torchrun's own traceback and log lines are not shown: each rank reports for itself."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    for name in list(logging.root.manager.loggerDict):  # each module's logger sets its own level (LOGLEVEL)
        if name.startswith(("torch.distributed.elastic", "torch.distributed.run")):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(parse_args(["--standalone", "--nproc_per_node", str(nproc), "-m", "flatlib.stages.runs", *argv]))
    except SignalException as err:
        raise SystemExit(128 + int(err.sigval)) from None
    except ChildFailedError as err:
        first = min(err.failures.values(), key=lambda failure: (failure.timestamp, failure.local_rank))
        raise SystemExit(first.exitcode if first.exitcode > 0 else 128 - first.exitcode) from None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    with cli_errors("stages.runs", args.debug):
        params = load_params(args.params)
        if args.seed not in params.seeds or (args.phase != "rho") != (args.variant in params.variants):
            raise ConfigError(f"--variant {args.variant} --seed {args.seed}: choose a seed of {params.seeds} and, "
                              f"for train and swa only, a variant of {sorted(params.variants)} (params.yaml)")
        if (args.phase == "rho") != (args.rho in params.rho_sweep.rhos):
            raise ConfigError(f"--rho {args.rho}: the rho phase, and it alone, takes a rho of rho_sweep.rhos "
                              f"{params.rho_sweep.rhos} (params.yaml)")
        if args.phase != "rho" and args.variant in params.imports:
            if int(os.environ.get("RANK", 0)) == 0:
                check_imports(params)
                import_phase(params, args.variant, args.seed, args.phase)
                publish_record(layout.run_dir(args.variant, args.seed, args.phase))
        elif params.launch.nproc_per_node > 1 and "RANK" not in os.environ:
            launch_ranks(argv, params.launch.nproc_per_node)
        elif args.phase == "rho":
            rho_run(params, args.seed, args.rho, args.progress)
        else:
            train_phase(params, args.variant, args.seed, args.phase, args.progress)


if __name__ == "__main__":
    main()
