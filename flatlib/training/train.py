"""The training command and its run folders: ``python -m flatlib.training.train`` trains one variant and seed
(flatlib.training.trainer) into a run folder that it owns: it checks, holds and records the folder.

    python -m flatlib.training.train --variant sam --seed 0 --out runs/sam/seed0            # one CPU process
    python -m flatlib.training.train --variant sam --seed 0 --phase swa --init runs/sam/seed0 --out runs/sam_swa/seed0
    python -m flatlib.training.train --variant sam --seed 0 --out runs/sam/seed0 --dry-run  # print the resolved config
    python -m flatlib.training.train --variant adm --out runs/adm/seed0 --set train.steps=500 --set optim.lr=1e-3
    python -m flatlib.profiles cifar10       # params.yaml := the paper's CIFAR-10 settings, then on 8 GPUs:
    torchrun --nproc_per_node 8 -m flatlib.training.train --variant sam --seed 0 --out runs/sam/seed0

The run config comes from params.yaml through flatlib.schema (``Params.run_config``: the one parse path); a paper
profile is merged into params.yaml by flatlib.profiles (``profiles/*.yaml``); ``--params`` reads another
parameter file. The DVC stages train through :func:`train_run` (flatlib.stages.runs), not this command line.

A run folder holds ``config.yaml`` (resolved), the checkpoints of flatlib.training.trainer and
``checksums.json`` (their SHA-256, checked at load), ``log.csv``, ``metrics.json``, ``code.json`` (the digest of
the code that trained it: :func:`code_digest` of flatlib.sources.TRAINING_CODE) and ``timings.json`` (wall time
and speed, .dvcignore'd: the one file that differs between two identical runs). Reliability (issue 14): resume only continues a run of the same params and
training code (:func:`check_run_folder`); a rerun with nothing left to do writes nothing; a ``train.steps``
below the newest checkpoint is refused; the SWA phase checks its ``--init`` run (:func:`check_init_run`); a
trainer holds its folder with an exclusive ``flock`` on ``RUN/.lock`` (:func:`hold_run_folder`).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from flatlib import atomic, layout, sources
from flatlib.cli import cli_parser
from flatlib.config import ConfigError, dump_yaml, load_yaml
from flatlib.errors import RunFolderError, add_debug_flag, cli_errors
from flatlib.progress import add_progress_flag
from flatlib.schema import RunConfig, check_choice, check_swa_phase, load_params
from flatlib.training.checkpoints import configured_step, read_run_config, saved_steps
from flatlib.training.data import check_dataset
from flatlib.training.optimizers import OPTIMIZERS
from flatlib.training.trainer import Trainer

# ------------------------------------------------------------------------------------- run folders
RESUMABLE_CHANGES = {("train", "steps"), ("train", "log_every"), ("train", "save_every"), ("train", "device")}


def code_digest(root: Path = sources.ROOT) -> dict:
    """SHA-256 of the code that computes the trained weights, :data:`flatlib.sources.TRAINING_CODE` (the model,
    diffusion, data, optimizers, averaging and the training loop; not this command line, the layout, progress,
    the report, flatness or evaluation code). Returns ``dict(sha256, files)``."""
    files = sorted(sources.TRAINING_CODE)
    sha = hashlib.sha256()
    for file in files:
        sha.update(f"{file}\0".encode() + (root / file).read_bytes() + b"\0")
    return dict(sha256=sha.hexdigest(), files=files)


def recorded_code(run_dir: Path) -> str | None:
    """The code digest a run folder records (None for a folder written before digests were recorded)."""
    path = Path(run_dir) / layout.CODE_RECORD
    return json.loads(path.read_text())["sha256"] if path.is_file() else None


def config_changes(old: dict, new: dict, ignore_sections: tuple[str, ...] = ()) -> list[str]:
    """Keys whose value differs between two resolved run configs, except those a resume tolerates."""
    changed = sorted(f"{section}.{key}" for section in new if isinstance(new[section], dict)
                     and section not in ignore_sections for key in new[section]
                     if (section, key) not in RESUMABLE_CHANGES and old.get(section, {}).get(key) != new[section][key])
    return changed + (["seed"] if old.get("seed") != new["seed"] else [])


def _code_change(run_dir: Path) -> list[str]:
    old, new = recorded_code(run_dir), code_digest()["sha256"]
    return [] if old == new else [f"code (digest {old[:12] if old else 'not recorded'}, now {new[:12]}; see code.json)"]


def check_run_folder(out_dir: Path, cfg: RunConfig, restart: bool, phase: str = "train") -> None:
    """Resume only a run of the same params and the same code (:func:`code_digest`), trained no further than
    this config's last step; otherwise refuse, or delete its files when ``restart`` (issue 14, guarantee 0)."""
    config_path = out_dir / layout.RUN_CONFIG
    if not config_path.is_file():
        return
    new = cfg.to_dict()
    changed = config_changes(load_yaml(config_path), new) + _code_change(out_dir)
    last, saved = configured_step(new, phase == "swa"), saved_steps(out_dir)
    if saved and saved[-1] > last:
        changed.append(f"last step ({last}, below its checkpoint of step {saved[-1]})")
    if not changed:
        return
    if not restart:
        raise ConfigError(f"{out_dir} holds a run with different {', '.join(changed)}: use another --out, delete "
                          "it, or pass --restart-if-changed to start it over")
    for path in out_dir.iterdir():
        if path.suffix in (".pt", ".csv", ".json", ".yaml"):
            path.unlink()


def check_init_run(init_dir: Path, cfg: RunConfig) -> None:
    """The SWA phase continues its ``--init`` run, so that run must be this variant's train phase under the
    same params (but for the SWA section and the keys a resume tolerates) and the same code."""
    changed = config_changes(read_run_config(init_dir), cfg.to_dict(), ignore_sections=("swa",))
    changed += _code_change(init_dir)
    if changed:
        raise ConfigError(f"--init {init_dir} was trained with different {', '.join(changed)}: the SWA phase "
                          "must start from the train phase of the same variant, params and code")


@contextlib.contextmanager
def hold_run_folder(out_dir: Path):
    """Hold a run folder for one trainer: an exclusive, non-blocking ``flock`` on ``RUN/.lock`` (released
    when the process ends, however it ends); a second trainer fails at once. Temporary files a killed
    writer left behind are removed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / layout.LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunFolderError(f"{out_dir} is being written by another trainer (it holds {out_dir / layout.LOCK_FILE}): "
                                 "wait for it to end or stop it first") from None
        atomic.remove_stale_temporaries(out_dir)
        yield


def record_run(out_dir: Path, cfg: RunConfig) -> None:
    """Write the resolved config (``config.yaml``) and the code digest (``code.json``) of a run, each only
    when it changed: a rerun with nothing to do writes nothing."""
    for name, text in ((layout.RUN_CONFIG, dump_yaml(cfg.to_dict())),
                       (layout.CODE_RECORD, json.dumps(code_digest(), indent=2) + "\n")):
        path = out_dir / name
        if not path.is_file() or path.read_text() != text:
            atomic.write_text(path, text)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.training.train", __doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    parser.add_argument("--variant", required=True, help="a key of params.yaml 'variants' (adm, ip, sam, ...)")
    parser.add_argument("--seed", type=int,
                        help="training seed: initial weights, data order, noise (default: the first of params.yaml "
                             "'seeds', else 0)")
    parser.add_argument("--out", required=True, type=Path, help="run folder (resumes if it holds checkpoints)")
    parser.add_argument("--phase", choices=("train", "swa"), default="train",
                        help="train from scratch, or the SWA phase from the checkpoint swa.start_step of --init")
    parser.add_argument("--init", type=Path, help="SWA phase: the run folder to start from (swa.start_step)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. train.steps=500 (repeatable)")
    parser.add_argument("--restart-if-changed", action="store_true",
                        help="if --out holds checkpoints of a different config or code, or trained past the "
                             "last step, delete them and start over (default: refuse); a longer train.steps "
                             "alone resumes")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    add_progress_flag(parser)
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict | None:
    args = build_parser().parse_args(argv)
    with cli_errors("training.train", args.debug):
        cfg = load_params(args.params, args.set).run_config(args.variant, args.seed)
        if args.dry_run:
            sys.stdout.write(dump_yaml(cfg.to_dict()))
            return None
        return train_run(cfg, args.out, args.phase, args.init, args.restart_if_changed, args.progress)


def train_run(cfg: RunConfig, out: Path, phase: str = "train", init: Path | None = None, restart: bool = False,
              progress: bool = True) -> dict:
    """Train (or run the SWA phase of) ``cfg`` into the run folder ``out``: rank 0 holds and checks the folder
    (resuming only the same params and code), every rank then builds its trainer and runs it. The training
    CLI and the DVC training stages (flatlib.stages.runs) both train through here."""
    check_choice("optim.optimizer", cfg.optim.optimizer, OPTIMIZERS)  # before the folder exists
    if phase == "swa":
        check_swa_phase(cfg.train, cfg.swa)
    check_dataset(cfg.data.name, cfg.data.root, cfg.data.image_size, cfg.data.path)
    distributed = "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", 1)) > 1
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    rank = dist.get_rank() if distributed else 0
    try:
        with hold_run_folder(out) if rank == 0 else contextlib.nullcontext():
            if rank == 0:
                check_run_folder(out, cfg, restart, phase)
                if phase == "swa" and init is not None and not saved_steps(out):
                    check_init_run(Path(init), cfg)
            if distributed:
                dist.barrier()
            trainer = Trainer(cfg, out, phase=phase, init_dir=init)
            if rank == 0:
                record_run(out, cfg)
            return trainer.run(progress=progress)
    finally:
        if distributed:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
