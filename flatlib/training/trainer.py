"""The training loop of every Table 1 variant: ADM, +IP, +SAM, with EMA tracked inside each run and SWA as a
separate phase resumed from a late checkpoint. This module, with the model, diffusion, data, optimizer and
averaging code, is what computes the trained weights (flatlib.sources.TRAINING_CODE: the code digest of a run
folder and the train stages' code deps); run folders, the command line and launching are flatlib.training.train.

The objective is the hybrid loss of improved DDPM (flatlib.model.diffusion.training_losses). The seed fixes the
initial weights, the data order and the training noise, each its own stream of flatlib.seeding (issue 21); runs of
one seed share the first two across variants (paired). A checkpoint holds ``model{step:06d}.pt`` (guided-diffusion
layout), ``ema_{rate}_{step:06d}.pt``, ``opt{step:06d}.pt`` (optimizer incl. Adam moments, step, RNG states, timestep-sampler state) and
``swa{step:06d}.pt`` in the SWA phase, and ``checksums.json`` their SHA-256; resuming from the newest intact
``opt*.pt`` continues bitwise identically (CPU). Every file is written atomically, the training state last, and
a newest checkpoint that fails to load or to match its recorded SHA-256 is reported and skipped; SIGINT/SIGTERM
stop the run after the current step with a checkpoint (:class:`StopSignal`). A run writes ``metrics.json`` (what
the training computed: a retrain writes the same bytes) and ``timings.json`` (wall time and speed: the one file
that differs between two identical runs, kept out of DVC's hash by .dvcignore); a resume cuts ``log.csv`` back
to its step (:meth:`RunningLog.cut_back`, issue 22).

A two-pass optimizer (SAM's ``first_step`` / ``second_step``, flatlib.training.optimizers) reuses the same batch,
timesteps, noise, IP noise and dropout masks in its second pass (the global RNG state is restored before the
second forward); under DDP the first backward runs under ``no_sync`` (per-replica ascent) unless
``optim.sam_sync_first_backward``.
"""
from __future__ import annotations

import contextlib
import csv
import json
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from flatlib import atomic, layout, seeding
from flatlib.config import ConfigError
from flatlib.errors import CorruptFileError, Interrupted, MissingInputError
from flatlib.model.device import compiled, resolve_device
from flatlib.model.diffusion import create_timestep_sampler, diffusion_from_config
from flatlib.model.loss_set import DiffusionLossSet
from flatlib.model.unet import create_unet
from flatlib.progress import progress_bar
from flatlib.schema import RunConfig
from flatlib.training.averaging import EMA, SWA
from flatlib.training.checkpoints import (read_checkpoint, record_checksums, saved_steps, training_state_path,
                                         weights_path)
from flatlib.training.data import BatchStream, batch_iterator, dataset_from_config, evaluation_subset, random_hflip
from flatlib.training.optimizers import build_optimizer, is_two_pass
from flatlib.vocabulary import DESCENDING, NOISY, NOT_LEARNED, PLATEAUED, RISING, TOO_FEW


class Trainer:
    """One training run (phase "train") or SWA phase (phase "swa") of one variant."""

    def __init__(self, cfg: RunConfig, out_dir: Path, phase: str = "train", init_dir: Path | None = None):
        self.cfg, self.out_dir, self.phase = cfg, Path(out_dir), phase
        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.device = resolve_device(cfg.train.device)
        if cfg.train.batch_size % self.world_size:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} is not divisible by {self.world_size} ranks")
        self.local_batch = cfg.train.batch_size // self.world_size

        torch.manual_seed(seeding.derive(cfg.seed, "init"))  # the same initial weights on every rank
        self.model = create_unet(cfg.model).to(self.device)
        torch.manual_seed(seeding.derive(cfg.seed, "dropout", self.rank))  # the global RNG from here: dropout
        if cfg.train.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ddp_model = (torch.nn.parallel.DistributedDataParallel(self.model) if self.world_size > 1
                          else self.model)
        self.forward_model = compiled(self.ddp_model, cfg.train.compile)  # both SAM passes call this one
        self.diffusion = diffusion_from_config(cfg.diffusion, cfg.model.learn_sigma)
        self.timestep_sampler = create_timestep_sampler(cfg.train.timestep_sampler, self.diffusion)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.ema = EMA(self.model, cfg.train.ema_rate, warmup=cfg.train.ema_warmup)
        self.swa = None
        self.cpu_generator = seeding.generator(cfg.seed, "timesteps", self.rank)  # timesteps, flips
        self.noise_generator = seeding.generator(cfg.seed, "noise", self.rank, device=self.device)  # eps, IP xi

        self.step = 0
        if phase == "swa":
            self.first_step = cfg.swa.start_step
            self.last_step = cfg.swa.start_step + cfg.swa.steps
        else:
            self.first_step, self.last_step = 0, cfg.train.steps
        if not self.resume() and phase == "swa":
            if init_dir is None:
                raise ConfigError("the SWA phase needs --init RUN_DIR holding the checkpoint of swa.start_step")
            self.load(Path(init_dir), cfg.swa.start_step)
            self.swa = SWA(self.model, cfg.swa.window, cfg.optim.lr, cfg.swa.lr_min)
        if phase == "swa" and self.swa is None:
            raise ConfigError(f"{self.out_dir} holds no SWA state: was it written by the train phase?")

    # ------------------------------------------------------------------------------------ checkpoints
    def _rng_state(self) -> dict:
        state = dict(cpu_generator=self.cpu_generator.get_state(), noise_generator=self.noise_generator.get_state(),
                     torch=torch.get_rng_state())
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self) -> None:
        """Write the checkpoint of the current step, each file atomically and the training state last, then
        record their SHA-256 (``checksums.json``): a crash at any point leaves the previous checkpoint the
        newest complete one (``saved_steps``, then :func:`~flatlib.training.checkpoints.verify_checksum`)."""
        if self.rank:
            return
        step, rate = self.step, self.cfg.train.ema_rate
        files = {weights_path(self.out_dir, "raw", step, rate): self.model.state_dict(),
                 weights_path(self.out_dir, "ema", step, rate): self.ema.model.state_dict()}
        if self.swa is not None:
            files[weights_path(self.out_dir, "swa", step, rate)] = self.swa.model.state_dict()
        files[training_state_path(self.out_dir, step)] = dict(
            step=step, optimizer=self.optimizer.state_dict(), ema_updates=self.ema.num_updates,
            timestep_sampler=self.timestep_sampler.state_dict(), rng=self._rng_state(),
            swa=None if self.swa is None else self.swa.state_dict())
        for path, obj in files.items():
            atomic.torch_save(obj, path)
        record_checksums(self.out_dir, list(files))

    def resume(self) -> bool:
        """Load the newest checkpoint of the run folder that loads; a newer one that does not (a crash cut it
        short) is reported by name on stderr and skipped, and training resumes bitwise identically from the
        intact one. Returns whether a checkpoint was loaded."""
        for step in reversed(saved_steps(self.out_dir)):
            try:
                self.load(self.out_dir, step)
                return True
            except (CorruptFileError, MissingInputError) as err:
                if self.rank == 0:
                    print(f"flatlib.training.train: warning: skipping the checkpoint of step {step}, resuming from the "
                          f"newest intact one before it: {err}", file=sys.stderr)
        return False

    def load(self, folder: Path, step: int) -> None:
        """Restore the whole training state of ``step``; every file is read before anything is restored."""
        rate = self.cfg.train.ema_rate
        paths = [weights_path(folder, "raw", step, rate), weights_path(folder, "ema", step, rate),
                 training_state_path(folder, step)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise MissingInputError(f"checkpoint of step {step} is incomplete; missing {missing}")
        raw, ema, state = (read_checkpoint(p, self.device) for p in paths)
        self.model.load_state_dict(raw)
        self.ema.load_state_dict(dict(model=ema, num_updates=state["ema_updates"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.timestep_sampler.load_state_dict(state["timestep_sampler"])
        rng = state["rng"]
        self.cpu_generator.set_state(rng["cpu_generator"].cpu())
        self.noise_generator.set_state(rng["noise_generator"].cpu())
        torch.set_rng_state(rng["torch"].cpu())
        if "cuda" in rng and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"].cpu(), self.device)
        if state["swa"] is not None:
            self.swa = SWA(self.model, self.cfg.swa.window, self.cfg.optim.lr, self.cfg.swa.lr_min)
            self.swa.load_state_dict(state["swa"])
        self.step = state["step"]

    # ---------------------------------------------------------------------------------------- one step
    def _autocast(self):
        if self.cfg.train.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _losses(self, x0, t, noise, ip_noise) -> dict:
        with self._autocast():
            return self.diffusion.training_losses(self.forward_model, x0, t, noise, ip_gamma=self.cfg.optim.ip_gamma,
                                                  ip_noise=ip_noise)

    def _backward(self, x0, t, noise, ip_noise, weights) -> dict:
        """Forward the hybrid loss, backward its importance-weighted mean; returns the per-image losses."""
        losses = self._losses(x0, t, noise, ip_noise)
        (losses["loss"] * weights).mean().backward()
        return losses

    def training_step(self, x0: torch.Tensor) -> dict:
        """One optimizer step (two forward/backward passes for SAM) on a batch of clean images."""
        opt = self.cfg.optim
        t, weights = self.timestep_sampler.sample(x0.shape[0], self.device, generator=self.cpu_generator)
        noise = torch.randn(x0.shape, generator=self.noise_generator, device=self.device)
        ip_noise = (torch.randn(x0.shape, generator=self.noise_generator, device=self.device)
                    if opt.ip_gamma > 0 else None)
        if is_two_pass(self.optimizer):
            dropout_state = torch.get_rng_state() if self.device.type == "cpu" else torch.cuda.get_rng_state(self.device)
            sync = (contextlib.nullcontext() if opt.sam_sync_first_backward or self.world_size == 1
                    else self.ddp_model.no_sync())
            with sync:
                losses = self._backward(x0, t, noise, ip_noise, weights)
            self.optimizer.first_step(zero_grad=True)
            if self.device.type == "cpu":
                torch.set_rng_state(dropout_state)  # same dropout masks at w + e
            else:
                torch.cuda.set_rng_state(dropout_state, self.device)
            self._backward(x0, t, noise, ip_noise, weights)
            self._clip()
            self.optimizer.second_step(zero_grad=True)
        else:
            losses = self._backward(x0, t, noise, ip_noise, weights)
            self._clip()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.timestep_sampler.update_with_local_losses(t, losses["loss"].detach())
        self.ema.update(self.model)
        return dict(t=t, **{k: v.detach().float() for k, v in losses.items()})

    def _clip(self) -> None:
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)

    # ---------------------------------------------------------------------------------------- the loop
    def run(self, progress: bool = True) -> dict:
        """Train to the last step and write ``metrics.json`` (what the training computed: a retrain writes the
        same bytes) and ``timings.json`` (wall time, steps per second, steps run: .dvcignore'd); returns both
        merged. A run already there writes nothing and returns its stored metrics with ``steps_run`` 0. A
        resumed run first cuts ``log.csv`` back to the resumed step (rows a crash left after the checkpoint
        would be logged twice). SIGINT/SIGTERM stop it after the current step with a checkpoint and raise
        :class:`Interrupted` (exit status 130/143); rerunning resumes."""
        cfg = self.cfg
        if max(self.step, self.first_step) >= self.last_step:
            stored = self.out_dir / layout.RUN_METRICS
            return {**(json.loads(stored.read_text()) if stored.is_file() else {}), "phase": self.phase,
                    "step": self.step, "steps_run": 0}
        dataset = dataset_from_config(cfg.data)
        stream = BatchStream(len(dataset), self.local_batch, cfg.seed, self.rank, self.world_size,
                             start_step=self.step)
        batches = batch_iterator(dataset, stream, cfg.data.num_workers)
        if self.step < self.first_step:
            self.step = self.first_step
        log = RunningLog(self.out_dir / layout.RUN_LOG, self.diffusion.num_timesteps, self.device, enabled=self.rank == 0)
        log.cut_back(self.step)
        self.plateau_set = None
        if cfg.train.plateau_triples and self.rank == 0:
            source = dataset_from_config(cfg.data, "holdout") if cfg.data.holdout else dataset
            images = evaluation_subset(source, cfg.train.plateau_triples, seeding.derive(cfg.seed, "heldout_images"))
            triples = seeding.derive(cfg.seed, "heldout_triples")
            self.plateau_set = DiffusionLossSet(self.diffusion, images, seed=triples, device=self.device)
        self.model.train()
        bar = progress_bar(self.last_step, f"{self.phase} {self.out_dir}", initial=self.step,
                           enabled=progress and self.rank == 0)
        start = time.perf_counter()
        start_step = self.step
        with StopSignal(self.world_size) as stop:
            while self.step < self.last_step:
                self._train_one(batches, log, bar)
                saved = self.step % cfg.train.save_every == 0 or self.step == self.last_step
                if saved:
                    self.save()
                signum = stop.requested()
                if signum:
                    if not saved:
                        self.save()
                    bar.close()
                    raise Interrupted(f"stopped by {signal.Signals(signum).name} at step {self.step} of "
                                      f"{self.last_step}; its checkpoint is in {self.out_dir}: rerun the same "
                                      "command to resume", signum)
        bar.close()
        elapsed = time.perf_counter() - start
        metrics = dict(phase=self.phase, step=self.step, final_loss=log.last.get("loss"),
                       final_mse=log.last.get("mse"), swa_snapshots=None if self.swa is None else self.swa.num_averaged)
        if self.plateau_set is not None and self.phase == "train":
            metrics["plateau"] = plateau_of_log(self.out_dir / layout.RUN_LOG, cfg.train.plateau_window,
                                                cfg.train.plateau_tol, cfg.train.plateau_level)
        timings = dict(steps_run=self.step - start_step, seconds=round(elapsed, 2),
                       steps_per_second=round((self.step - start_step) / elapsed, 3) if elapsed else None,
                       device=str(self.device), world_size=self.world_size)
        if self.rank == 0:
            atomic.write_json(self.out_dir / layout.RUN_METRICS, metrics, indent=2)
            atomic.write_json(self.out_dir / layout.RUN_TIMINGS, timings, indent=2)
        return {**metrics, **timings}

    def plateau_loss(self) -> float:
        """L_simple of the raw weights on the fixed (x0, t, eps) set (eval mode; consumes no random numbers,
        so logging it leaves the run and its resume bitwise unchanged)."""
        self.model.eval()
        with torch.no_grad(), self._autocast():
            loss = float(self.plateau_set(self.model))
        self.model.train()
        return loss

    def _train_one(self, batches, log: RunningLog, bar) -> None:
        """One step of the loop: SWA learning rate, batch, optimizer step, averaging, log."""
        cfg = self.cfg
        if self.swa is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.swa.learning_rate(self.step - self.first_step)
        x0, _ = next(batches)
        x0 = x0.to(self.device, non_blocking=True)
        if cfg.data.hflip:
            x0 = random_hflip(x0, self.cpu_generator)
        if cfg.train.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        log.add(self.training_step(x0))
        if self.swa is not None:
            self.swa.after_step(self.model, self.step - self.first_step)
        self.step += 1
        if self.step % cfg.train.log_every == 0 or self.step == self.last_step:
            extra = {} if self.plateau_set is None else dict(eval_mse=self.plateau_loss())
            row = log.flush(self.step, self.optimizer.param_groups[0]["lr"], extra)
            if row:
                bar.set_postfix(loss=f"{row['loss']:.4f}", mse=f"{row['mse']:.4f}")
        bar.update(1)


class RunningLog:
    """Loss sums kept on the device (no host sync per step), written to CSV every ``log_every`` steps:
    the hybrid loss, its MSE and VB parts, and the loss per quarter of the timestep range (no timings: a
    retrain writes the same bytes)."""

    QUARTERS = 4

    def __init__(self, path: Path, num_timesteps: int, device: torch.device, enabled: bool = True):
        self.path, self.num_timesteps, self.enabled, self.last = path, num_timesteps, enabled, {}
        self.sums = torch.zeros(3, device=device)
        self.quarter_sums = torch.zeros(self.QUARTERS, device=device)
        self.quarter_counts = torch.zeros(self.QUARTERS, device=device)
        self.count = 0

    def cut_back(self, step: int) -> None:
        """Drop the rows logged after ``step`` (the resumed checkpoint), so that the steps a crash logged
        after its last checkpoint are not logged twice; a rerun from scratch (step 0) starts a new log."""
        if not self.enabled or not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            lines = f.read().splitlines(keepends=True)
        kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) <= step]
        if step == 0:
            self.path.unlink()
        elif len(kept) < len(lines):
            atomic.write_text(self.path, "".join(kept))

    def add(self, out: dict) -> None:
        self.sums += torch.stack([out["loss"].mean(), out["mse"].mean(), out["vb"].mean()])
        quarter = (out["t"] * self.QUARTERS // self.num_timesteps).clamp(max=self.QUARTERS - 1)
        self.quarter_sums.index_add_(0, quarter, out["loss"])
        self.quarter_counts.index_add_(0, quarter, torch.ones_like(out["loss"]))
        self.count += 1

    def flush(self, step: int, lr: float, extra: dict | None = None) -> dict:
        if not self.enabled or self.count == 0:
            return {}
        loss, mse, vb = (self.sums / self.count).tolist()
        quarters = (self.quarter_sums / self.quarter_counts.clamp(min=1)).tolist()
        row = dict(step=step, loss=loss, mse=mse, vb=vb, **{f"loss_q{i + 1}": q for i, q in enumerate(quarters)},
                   lr=lr, **(extra or {}))
        new_file = not self.path.exists()
        with atomic.disk_full_as_error(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(row))
                if new_file:
                    writer.writeheader()
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self.sums.zero_(); self.quarter_sums.zero_(); self.quarter_counts.zero_()
        self.count, self.last = 0, row
        return row


class StopSignal:
    """SIGINT/SIGTERM request a stop instead of killing the process mid-write (issue 14, guarantee 4): the
    loop finishes its current step, saves it and raises :class:`Interrupted`. The first signal restores the
    previous handlers, so a second one acts as usual. Under DDP every rank must stop after the same step:
    the request is max-reduced over a gloo group (a CPU round trip, no device sync) after every step."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, world_size: int = 1):
        self.signum, self.previous = 0, {}
        self.group = dist.new_group(backend="gloo") if world_size > 1 else None

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _handle(self, signum, frame) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def requested(self) -> int:
        """The signal number that asked to stop (on any rank), 0 if none."""
        if self.group is None:
            return self.signum
        flag = torch.tensor([self.signum])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return int(flag)


#: L_simple of a model that predicts zero noise is E||eps||^2 / d = 1: a run whose held-out L_simple stays at
#: 0.9 or above has not learned, and a flat curve there is no plateau of a trained model.
UNTRAINED_LOSS = 0.9



def plateau(steps, losses, window: float, tol: float, level: float) -> dict:
    """Measured convergence of a run (issue 21: no label the curve does not support), from ``losses`` (the fixed-set
    L_simple, ``eval_mse``) logged in the last ``window`` fraction of the steps:

    - ``rel_change``: the OLS line's change across the window relative to its fitted final loss;
    - ``slope`` (per step) and ``slope_p``: the line's slope and its two-sided p-value (``scipy.stats.linregress``);
    - ``per_doubling``: the slope of a fit on log2(step), relative to the final loss: the change another doubling of
      training would bring if the trend held.

    ``status`` is "plateaued" only when the slope is not distinguishable from zero at ``level`` (p >= level) AND
    ``|per_doubling| < tol`` AND the run has learned (final loss below :data:`UNTRAINED_LOSS`); otherwise "still
    descending" (or "rising") when the slope is significant, "not shown flat (noisy)" when it is not but the noisy
    change per doubling reaches ``tol``, "not learned", or "too few points" (fewer than three logged points in the
    window: no trend can be fitted). ``plateaued`` is that bool."""
    from scipy.stats import linregress

    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    start = steps[-1] - window * steps[-1] if len(steps) else 0.0
    inside = steps >= start
    out = dict(window=window, tol=tol, level=level, points=int(inside.sum()))
    if inside.sum() < 3:
        return dict(out, rel_change=float("nan"), slope=float("nan"), slope_p=float("nan"), per_doubling=float("nan"),
                    final_eval_mse=float(losses[-1]) if len(losses) else float("nan"), learned=False, status=TOO_FEW,
                    plateaued=False)
    line = linregress(steps[inside], losses[inside])
    log_line = linregress(np.log2(np.maximum(steps[inside], 1)), losses[inside])
    final = line.slope * steps[-1] + line.intercept
    p = 1.0 if np.isnan(line.pvalue) else float(line.pvalue)  # NaN: an exactly constant curve, no slope at all
    per_doubling = float(log_line.slope / final)
    learned = bool(final < UNTRAINED_LOSS)
    trend = DESCENDING if line.slope < 0 else RISING
    status = (NOT_LEARNED if not learned else trend if p < level else PLATEAUED if abs(per_doubling) < tol else NOISY)
    return dict(out, rel_change=float(line.slope * (steps[-1] - start) / final), slope=float(line.slope), slope_p=p,
                per_doubling=per_doubling, final_eval_mse=float(final), learned=learned, status=status,
                plateaued=status == PLATEAUED)


def plateau_of_log(path: Path, window: float, tol: float, level: float) -> dict:
    """:func:`plateau` of a run's ``log.csv`` (its ``eval_mse`` column)."""
    with open(path) as f:
        rows = [row for row in csv.DictReader(f) if row.get("eval_mse")]
    return plateau([int(r["step"]) for r in rows], [float(r["eval_mse"]) for r in rows], window, tol, level)
