"""Preflight: check in seconds, before any training, everything the whole run of the active params needs.

    python -m flatlib.stages.preflight                                  # params.yaml in the current folder
    python -m flatlib.stages.preflight --params params.yaml --out data/preflight.json   # as the DVC stage runs it

Checks (issue 14, guarantee 1): params.yaml parses (:class:`flatlib.schema.Params`, every section and
the checks across sections); the data set is on disk (:func:`flatlib.training.data.check_dataset`, without reading
images); the held-out images and the FID reference set fit it (:func:`data_size_problems`); the Inception weights,
when ``fid.extractor`` is inception, exist and are the published file (SHA-256); every imported weights file
exists and loads strictly into the UNet of its flags (:func:`import_problems`; their SHA-256 go into ``--out``);
the workspace is writable; the disk holds the checkpoints and samples the profile will write, and DVC's cache
copy of them (:func:`disk_problems`); every named device exists, and ``launch.nproc_per_node`` fits the devices
and the batch (:func:`launch_problems`). It prints one list of every problem, each with the path or key to fix
(one problem: one line), and exits with status 2; with none it prints a one-line summary (and writes ``--out``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import tempfile
from pathlib import Path

import torch

from flatlib import layout
from flatlib.cli import cli_parser
from flatlib.config import load_yaml
from flatlib.training.data import check_dataset
from flatlib.errors import FlatlibError, add_debug_flag, cli_errors
from flatlib.gd.weights import check_state_dict, read_state_dict
from flatlib.gd.importer import check_imports, import_flags, import_source
from flatlib.measure import records
from flatlib.measure.metrics import EXTRACTORS, sha256_file
from flatlib.training.optimizers import OPTIMIZERS
from flatlib.schema import Params, check_choice, check_swa_phase
from flatlib.model.unet import create_unet

CHECKS = ("params", "data", "inception_weights", "imports", "workspace_writable", "free_disk", "devices")
GiB = 2 ** 30


def _saves(first: int, last: int, save_every: int) -> int:
    """Checkpoints a run from ``first`` to ``last`` writes: every multiple of save_every, and the last step."""
    return len({step for step in range(first + 1, last + 1) if step % save_every == 0} | {last})


def disk_needed(params: Params, workspace: Path) -> tuple[int, str]:
    """Bytes the profile still has to write, and how that was estimated. Per checkpoint of a run trained here
    (every variant not imported, and the rho sweep's runs, per training seed): 4 bytes per UNet parameter for
    each of raw weights, EMA weights and the two Adam moments (plus SWA weights in the SWA phase); imported
    weights as the size of their files; samples as raw uint8 (compressed npz files are smaller). Files already
    in the run and sample folders and the reference set count as written."""
    with torch.device("meta"):
        num_params = sum(p.numel() for p in create_unet(params.model).parameters())
    train, swa, rho, sample = params.train, params.swa, params.rho_sweep, params.sample
    trained_runs = len(params.seeds) * len([v for v in params.variants if v not in params.imports])
    checkpoints = (trained_runs * _saves(0, train.steps, train.save_every)
                   + len(params.seeds) * len(rho.rhos) * _saves(0, train.steps, train.save_every))
    swa_checkpoints = trained_runs * _saves(swa.start_step, swa.start_step + swa.steps, train.save_every)
    imported = [workspace / path for entry in params.imports.values() for path in entry.files.values()]
    sample_files = len(params.seeds) * sum(len(params.weights_of(v)) for v in params.variants) * len(sample.respacings)
    image_bytes = params.model.in_channels * params.model.image_size ** 2
    total = (4 * num_params * (4 * checkpoints + 5 * swa_checkpoints)
             + sum(path.stat().st_size for path in imported if path.is_file())
             + image_bytes * (sample_files * sample.num * sample.sets + params.fid.reference_size))
    written = [path for folder in (layout.RUNS, layout.SAMPLES) for path in (workspace / folder).rglob("*")]
    present = sum(path.stat().st_size for path in written + [workspace / layout.REFERENCE] if path.is_file())
    how = (f"{checkpoints + swa_checkpoints} checkpoints of a {num_params:,}-parameter UNet, {len(imported)} "
           f"imported weights files, {sample_files} sample files of {sample.sets} x {sample.num} images")
    return max(0, total - present), how


def dvc_cache(workspace: Path) -> Path | None:
    """The local cache folder of the DVC repository at ``workspace`` when it stores copies of the outputs
    (cache.type includes copy, DVC's default "reflink,copy"; links alone take no space), else None."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(workspace), uninitialized=False)
    except NotDvcRepoError:
        return None
    try:
        return Path(repo.cache.local.path) if "copy" in repo.cache.local.cache_types else None
    finally:
        repo.close()


def _file_system(path: Path) -> Path:
    """``path``, or its nearest existing parent (a cache folder DVC has not created yet)."""
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def disk_problems(params: Params, workspace: Path) -> list[str]:
    """Free disk against :func:`disk_needed` on the workspace's file system and, counted again, on the file
    system of DVC's cache (:func:`dvc_cache`), which keeps a copy of every run folder, sample set and
    reference: both on the workspace's when they share it."""
    needed, how = disk_needed(params, workspace)
    needs = {workspace.resolve(): (needed, how)}
    cache = dvc_cache(workspace)
    if cache is not None:
        cache_fs = _file_system(cache)
        if cache_fs.stat().st_dev == workspace.resolve().stat().st_dev:
            needs[workspace.resolve()] = (2 * needed, f"{how}, and DVC's cache copy of them in {cache}")
        else:
            needs[cache_fs] = (needed, f"DVC's cache copy of {how}")
    found = []
    for path, (size, what) in needs.items():
        free = shutil.disk_usage(path).free
        if size > free:
            found.append(f"not enough free disk in {path}: the profile writes about "
                         f"{math.ceil(size / GiB * 10) / 10} GiB there ({what}), {free / GiB:.1f} GiB are free")
    return found


def import_problems(params: Params, workspace: Path) -> list[str]:
    """Every imported weights file (params.yaml ``imports``) and reference output: present (else where it is
    published), and a weights-only state_dict that loads strictly into the UNet of its flags."""
    found = []
    for variant, imported in params.imports.items():
        source = import_source(imported)
        files = {kind: workspace / path for kind, path in source.files.items()}
        try:
            dataclasses.replace(source, files=files, reference=source.reference and workspace / source.reference
                                ).check_present()
        except FlatlibError as err:
            found.append(f"imports.{variant}: {err}")
            continue
        for kind, path in files.items():
            try:
                check_state_dict(read_state_dict(path), import_flags(imported).unet_config(), path)
            except FlatlibError as err:
                found.append(f"imports.{variant}.{kind}: {err}")
    return found


def import_digests(params: Params, workspace: Path) -> dict[str, dict[str, str]]:
    """variant -> weights kind -> SHA-256 of each imported file: recorded in the preflight's output, on which
    the train and swa stages depend, so that a file replaced under the same name is imported again."""
    return {variant: {kind: sha256_file(workspace / path) for kind, path in imported.files.items()}
            for variant, imported in params.imports.items()}


def _device_problem(key: str, name: str) -> str | None:
    try:
        device = torch.device(name if name != "auto" else "cpu")
    except RuntimeError as err:
        return f"{key}: {name!r} is not a device ({err}); use auto, cpu or cuda[:N]"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"{key}: {name!r} is requested but no CUDA device is available here: set {key} to auto or cpu"
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        return f"{key}: {name!r} does not exist ({torch.cuda.device_count()} CUDA devices): set {key} to auto"
    return None


def problems(params: dict, workspace: Path) -> list[str]:
    """Every problem that would stop the run of ``params`` (params.yaml as a dict) in ``workspace``, each
    naming the path or key to fix; an empty list when the run can start."""
    workspace = Path(workspace)
    if not workspace.is_dir():
        return [f"the workspace {workspace.resolve()} is not a folder"]
    try:
        cfg = Params.from_dict(params, "params")
    except FlatlibError as err:
        return [str(err)]
    found, data, fid = [], cfg.data, cfg.fid
    try:
        found += data_size_problems(cfg, check_dataset(data.name, workspace / data.root, data.image_size, data.path))
    except FlatlibError as err:
        found.append(str(err))
    inputs = [lambda: check_choice("fid.extractor", fid.extractor, EXTRACTORS), lambda: check_imports(cfg),
              lambda: check_swa_phase(cfg.train, cfg.swa)]
    inputs += [lambda v=v: check_choice(f"optim.optimizer of variant {v}", cfg.run_config(v).optim.optimizer,
                                        OPTIMIZERS) for v in cfg.variants]
    extractor = EXTRACTORS.get(fid.extractor)
    if extractor is not None and extractor.placed_by_hand:
        weights = extractor.weights(fid)
        inputs.append(lambda: extractor.check_weights(weights and workspace / weights))
    for check in inputs:
        try:
            check()
        except FlatlibError as err:
            found.append(str(err))
    found += import_problems(cfg, workspace)
    try:
        with tempfile.TemporaryFile(dir=workspace):
            pass
    except OSError as err:
        found.append(f"the workspace {workspace.resolve()} is not writable ({err})")
    found += disk_problems(cfg, workspace)
    devices = {"train.device": cfg.train.device, "sample.device": cfg.sample.device}
    found += [problem for key, name in devices.items() if (problem := _device_problem(key, name))]
    return found + launch_problems(cfg)


def data_size_problems(params: Params, images: int) -> list[str]:
    """What does not fit a data set of ``images`` images: the held-out images, the FID reference set (drawn
    from the training images)."""
    data, found = params.data, []
    if not data.holdout < images:
        found.append(f"data.holdout {data.holdout} must be below the {images} images of {data.name}")
    elif params.fid.reference_size > images - data.holdout:
        found.append(f"fid.reference_size {params.fid.reference_size} must be at most the {images - data.holdout} "
                     f"training images of {data.name} (the reference set is drawn from them)")
    return found


def launch_problems(params: Params) -> list[str]:
    """``launch.nproc_per_node`` against the devices a rank trains on (CUDA devices, else CPU cores) and the
    global batch it splits."""
    nproc, train, found = params.launch.nproc_per_node, params.train, []
    on_gpu = train.device.startswith("cuda") or (train.device == "auto" and torch.cuda.is_available())
    available, kind = (torch.cuda.device_count(), "CUDA devices") if on_gpu else (os.cpu_count() or 1, "CPU cores")
    if nproc > available:
        found.append(f"launch.nproc_per_node is {nproc} but there are {available} {kind} for train.device "
                     f"{train.device!r}")
    if train.batch_size % nproc:
        found.append(f"train.batch_size {train.batch_size} must be divisible by launch.nproc_per_node {nproc} "
                     "(the global batch is split over the ranks)")
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.stages.preflight", __doc__)
    parser.add_argument("--params", default="params.yaml", help="parameter file to check")
    parser.add_argument("--workspace", type=Path, default=Path("."), help="where the pipeline runs")
    parser.add_argument("--out", type=Path, help="write the list of checks passed and the SHA-256 of imported weights "
                                                 "here (a DVC stage output)")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with cli_errors("stages.preflight", args.debug):
        found = problems(load_yaml(args.params), args.workspace)
        if len(found) == 1:
            raise FlatlibError(f"{args.params}: {found[0]}")
        if found:
            raise FlatlibError(f"{len(found)} problems found before any work ({args.params}):\n"
                               + "\n".join(f"  - {problem}" for problem in found))
        if args.out:
            digests = import_digests(Params.from_dict(load_yaml(args.params), "params"), args.workspace)
            records.write("preflight", args.out, {"checks": list(CHECKS), **({"imports": digests} if digests else {})})
        print(f"flatlib.stages.preflight: ok ({', '.join(CHECKS)})")


if __name__ == "__main__":
    main()
