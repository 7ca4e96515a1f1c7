"""Checkpoint names of a run folder and loading a model from one (raw, EMA or SWA weights).

Names follow guided-diffusion: ``model{step:06d}.pt`` (raw weights, loadable by guided-diffusion),
``ema_{rate}_{step:06d}.pt``, ``opt{step:06d}.pt``, plus ``swa{step:06d}.pt`` written by the SWA phase.
A run folder also holds ``config.yaml``, the resolved training config that rebuilds the model.

Every checkpoint is read with ``torch.load(weights_only=True)`` (tensors and plain containers only: a
crafted file cannot run code) through :func:`read_checkpoint`, which turns an unreadable file into a
:class:`~flatlib.errors.CorruptFileError` naming it (issue 14, guarantees 3 and 5). A run folder's
``checksums.json`` holds the SHA-256 of each checkpoint file, recorded when the trainer wrote it
(:func:`record_checksums`); :func:`read_checkpoint` checks a file against it first, so a file changed since
(even at the same length) is a ``CorruptFileError`` like a truncated one (issue 22). Folders written
without it (imported weights, which ``import.json`` records) are read unchecked.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch

from flatlib import atomic, layout
from flatlib.config import load_yaml
from flatlib.errors import CorruptFileError, MissingInputError
from flatlib.model.unet import create_unet
from flatlib.schema import load_run_config


def weights_path(run_dir: str | Path, kind: str, step: int, ema_rate: float) -> Path:
    return Path(run_dir) / layout.weights_file(kind, step, ema_rate)


def training_state_path(run_dir: str | Path, step: int) -> Path:
    """Optimizer state, step, RNG states and sampler state; written last, so it marks a whole checkpoint."""
    return Path(run_dir) / layout.training_state_file(step)


def saved_steps(run_dir: str | Path) -> list[int]:
    """Steps with a complete checkpoint (the training state is written last)."""
    return sorted(layout.step_of(p.name) for p in Path(run_dir).glob(layout.TRAINING_STATE_GLOB))


def is_swa_phase(run_dir: str | Path) -> bool:
    """An SWA phase's folder is the one that holds ``swa*.pt`` weights (the train phase writes none)."""
    return any(Path(run_dir).glob(layout.SWA_WEIGHTS_GLOB))


def configured_step(config: dict, swa_phase: bool) -> int:
    """The step a run config trains to: ``train.steps``, or ``swa.start_step + swa.steps`` for an SWA phase."""
    return config["swa"]["start_step"] + config["swa"]["steps"] if swa_phase else config["train"]["steps"]


def read_run_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / layout.RUN_CONFIG
    if not path.is_file():
        raise MissingInputError(f"{path} not found: is {run_dir} a run folder written by flatlib.training.train?")
    return load_yaml(path)



def record_checksums(run_dir: str | Path, paths: list[Path]) -> None:
    """Add the SHA-256 of ``paths`` (files of ``run_dir``) to its ``checksums.json``."""
    record = Path(run_dir) / layout.CHECKSUMS
    checksums = json.loads(record.read_text()) if record.is_file() else {}
    checksums.update({Path(path).name: atomic.sha256_file(path) for path in paths})
    atomic.write_json(record, dict(sorted(checksums.items())), indent=1)


def verify_checksum(path: str | Path) -> None:
    """Raise :class:`CorruptFileError` unless ``path`` matches the SHA-256 its folder's ``checksums.json``
    recorded for it (a file of a folder with no such record is not checked)."""
    path = Path(path)
    record = path.parent / layout.CHECKSUMS
    if not record.is_file():
        return
    expected = json.loads(record.read_text()).get(path.name)
    if expected is None:
        raise CorruptFileError(f"{path.resolve()} has no SHA-256 in {record.name}: the checkpoint was cut short "
                               "before it was recorded")
    actual = atomic.sha256_file(path)
    if actual != expected:
        raise CorruptFileError(f"{path.resolve()} changed after it was written (SHA-256 {actual[:12]}, recorded "
                               f"{expected[:12]} in {record.name})")


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", remedy: str = ""):
    """``torch.load(path, weights_only=True)`` after :func:`verify_checksum`; a truncated, changed, corrupt or
    code-carrying file raises :class:`CorruptFileError` naming it, followed by ``remedy`` (what to do)."""
    try:
        verify_checksum(path)
    except CorruptFileError as err:
        raise CorruptFileError(f"{err}" + (f": {remedy}" if remedy else "")) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        reason = str(err).split(". ")[0].splitlines()[0] if str(err) else type(err).__name__
        raise CorruptFileError(f"{Path(path).resolve()} is not a readable weights-only checkpoint ({reason})"
                               + (f": {remedy}" if remedy else "")) from err


def load_model(run_dir: str | Path, kind: str = "ema", step: int | None = None, device: str | torch.device = "cpu"):
    """``(model, run config, step)``: the UNet of a run folder with its raw / EMA / SWA weights at ``step``, in
    eval mode, and the run's typed :class:`flatlib.schema.RunConfig`. The default step is the one the run's
    config.yaml trains to (:func:`configured_step`), never simply the newest file: a run trained further under
    another ``train.steps`` is not silently evaluated at a later step (issue 14, guarantee 0)."""
    config = read_run_config(run_dir)
    if step is None:
        step = configured_step(config, is_swa_phase(run_dir))
        if step not in saved_steps(run_dir):
            raise MissingInputError(
                f"{Path(run_dir).resolve()} holds no complete checkpoint of its configured step {step} "
                f"(saved: {saved_steps(run_dir) or 'none'}): rerun its training to finish it")
    run = load_run_config(Path(run_dir) / layout.RUN_CONFIG)
    path = weights_path(run_dir, kind, step, run.train.ema_rate)
    if not path.is_file():
        raise MissingInputError(f"{path} not found ({kind} weights at step {step})")
    model = create_unet(run.model)
    model.load_state_dict(read_checkpoint(path, remedy="a crash or a cut copy leaves such a file; rerun the "
                                          "training, which resumes from the newest intact checkpoint and "
                                          "writes it again"))
    return model.to(device).eval(), run, step
