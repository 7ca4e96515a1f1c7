"""Import weights trained by guided-diffusion, DDPM-IP or ADM-ES (the published DDPM-IP checkpoints, or a
user's ``model*.pt`` / ``ema_*.pt``) as a run folder that every evaluation stage reads like a trained one.

    python -m flatlib.gd.importer --ema data/ddpm_ip/cifar10/ADM-IP.pt --published cifar10/ADM-IP.pt \\
        --step 1 --out runs/adm_ip_published
    python -m flatlib.gd.importer model200000.pt --ema ema_0.9999_200000.pt --swa swa200000.pt \\
        --flags "--image_size 32 --num_channels 128 ..." --data name=cifar10 --reference ref.pt --out runs/mine

In the pipeline, params.yaml ``imports`` names such weights for a variant (flatlib.schema.ImportConfig), which its DVC
train and swa stages import instead of training it (flatlib.stages.runs).

The published files carry no step in their names: ``--step`` labels the run folder's files. Their README does
not say whether they hold raw or EMA weights; the lineage samples from EMA weights.

Each file is read weights-only, checked strictly against the UNet of its flags (flatlib.gd.weights: a
mismatch names the likely flag), optionally checked against a reference output of the original code, and
copied byte for byte into ``OUT`` under flatlib's names (``model{step:06d}.pt``, ``ema_{rate}_{step:06d}.pt``),
SWA weights into the SWA-phase folder ``OUT_swa`` (``swa{step:06d}.pt``), where the layout keeps them. Each
folder gets ``config.yaml`` (a :class:`~flatlib.schema.RunConfig`: model and diffusion from the flags),
``opt{step:06d}.pt`` (the complete-checkpoint marker that ``load_model`` requires; it holds no training state)
and ``import.json`` (sources, their SHA-256, the flags, the step), written last. No ``code.json`` is written,
so flatlib.training.train refuses to resume or to start an SWA phase from an imported folder. Nothing is downloaded:
a missing file is one error that names it and, for a published file, where it is published.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
from pathlib import Path

from flatlib import atomic, layout, vocabulary
from flatlib.training.checkpoints import training_state_path, weights_path
from flatlib.cli import cli_parser
from flatlib.config import ConfigError, _nearest, dump_yaml, parse_yaml
from flatlib.errors import MissingInputError, RunFolderError, add_debug_flag, cli_errors
from flatlib.gd.flags import GuidedDiffusionFlags, parse_flags
from flatlib.gd.weights import (REFERENCE_TOLERANCE, SHAPELESS_FLAGS, attention_signature, check_reference,
                                check_state_dict, read_reference, read_state_dict)
from flatlib.measure.metrics import sha256_file
from flatlib.schema import (DataConfig, DiffusionConfig, ImportConfig, OptimConfig, Params, RunConfig, SWAConfig,
                            TrainConfig, UNetConfig)
from flatlib.training.train import hold_run_folder

DDPM_IP_README = "https://github.com/forever208/DDPM-IP#download-adm-ip-models-and-adm-base-models"


@dataclasses.dataclass(frozen=True)
class PublishedCheckpoint:
    """A checkpoint DDPM-IP publishes: where, the flags of its README's commands, the data set it was trained on."""
    url: str
    flags: str
    data: dict


_CIFAR10_FLAGS = ("--image_size 32 --num_channels 128 --num_head_channels 32 --num_res_blocks 3 "
                  "--attention_resolutions 16,8 --resblock_updown True --use_new_attention_order True "
                  "--learn_sigma True --dropout 0.3 --diffusion_steps 1000 --noise_schedule cosine "
                  "--use_scale_shift_norm True --rescale_learned_sigmas True --schedule_sampler loss-second-moment")
_LSUN_TOWER_FLAGS = ("--image_size 64 --num_channels 192 --num_head_channels 64 --num_res_blocks 3 "
                     "--attention_resolutions 32,16,8 --resblock_updown True --use_new_attention_order True "
                     "--learn_sigma True --dropout 0.1 --diffusion_steps 1000 --noise_schedule cosine "
                     "--use_scale_shift_norm True --rescale_learned_sigmas True --schedule_sampler loss-second-moment")
_CIFAR10_DATA = dict(name="cifar10", image_size=32)
_LSUN_TOWER_DATA = dict(name="image_folder", path="lsun_tower", image_size=64)
#: DDPM-IP's README (DDPM_IP_README): its download links, and the flags of its training commands
PUBLISHED = {
    "cifar10/ADM-baseline.pt": PublishedCheckpoint(
        "https://drive.google.com/file/d/1m-a3WqfpMTibzuTC2om046yWQr20GT0I/view?usp=sharing",
        _CIFAR10_FLAGS + " --input_pertub 0.0", _CIFAR10_DATA),
    "cifar10/ADM-IP.pt": PublishedCheckpoint(
        "https://drive.google.com/file/d/1yLLoS1fLSRiQNIbjWcGAaEqt_cz82IHE/view?usp=sharing",
        _CIFAR10_FLAGS + " --input_pertub 0.15", _CIFAR10_DATA),
    "lsun_tower/ADM-baseline.pt": PublishedCheckpoint(
        "https://drive.google.com/file/d/1_7gLg44qP4v5bgJNvSo65MtXDZ3xXW39/view?usp=sharing",
        _LSUN_TOWER_FLAGS + " --input_pertub 0.0", _LSUN_TOWER_DATA),
    "lsun_tower/ADM-IP.pt": PublishedCheckpoint(
        "https://drive.google.com/file/d/1QUaY94bSAiTdGu5T_GtdIXMvGT3X1GMy/view?usp=sharing",
        _LSUN_TOWER_FLAGS + " --input_pertub 0.1", _LSUN_TOWER_DATA),
}
#: guided-diffusion's checkpoint names (model{step}.pt, ema_{rate}_{step}.pt) and ours for SWA: the step
_STEP_IN_NAME = re.compile(r"^(?:model|ema_[0-9.]+_|swa)(\d{6,})\.pt$")


def where_published(path: Path, image_size: int) -> str:
    """Where DDPM-IP publishes a file of ``path``'s name (the image size picks the data set), or what the
    lineage's training runs write."""
    matches = [(key.split("/"), entry) for key, entry in PUBLISHED.items() if key.endswith(f"/{path.name}")]
    sized = [(key, entry) for key, entry in matches if entry.data["image_size"] == image_size] or matches
    if sized:
        return ("; ".join(f"DDPM-IP publishes {name} for {dataset} at {entry.url}" for (dataset, name), entry in sized)
                + f" (README: {DDPM_IP_README})")
    return ("guided-diffusion, DDPM-IP and ADM-ES training runs write model{step:06d}.pt and "
            f"ema_{{rate}}_{{step:06d}}.pt; DDPM-IP's published checkpoints are listed in {DDPM_IP_README}")


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """The weights of one model, one file per kind (raw, ema, swa: any non-empty subset), and the
    guided-diffusion flags that built it. ``step`` labels the run folder's files (default: the step in the
    files' guided-diffusion names). ``reference``: ``{x, t, out}`` that the original code computed with the
    ``reference_weights`` file (default: ema if given, else the first kind); it checks the flags the weights
    cannot (flatlib.gd.weights.SHAPELESS_FLAGS)."""
    flags: GuidedDiffusionFlags
    files: dict[str, str | Path]
    step: int | None = None
    reference: Path | None = None
    reference_weights: str | None = None

    def __post_init__(self):
        unknown = set(self.files) - set(vocabulary.WEIGHT_KINDS)
        if not self.files or unknown:
            raise ConfigError(f"give one weights file per kind among {vocabulary.WEIGHT_KINDS}, "
                              f"got {sorted(self.files)}")
        if self.reference_weights not in (None, *self.files):
            raise ConfigError(f"reference_weights {self.reference_weights!r} is none of the given kinds "
                              f"{sorted(self.files)}")

    @property
    def reference_kind(self) -> str:
        return self.reference_weights or ("ema" if "ema" in self.files else next(iter(self.files)))

    def check_present(self) -> None:
        """One :class:`MissingInputError` naming every absent file and where each is published."""
        paths = [Path(p) for p in self.files.values()] + ([Path(self.reference)] if self.reference else [])
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise MissingInputError("\n  ".join(
                f"{p.resolve()} not found (nothing is downloaded: place it there by hand); "
                + (where_published(p, self.flags["image_size"]) if p != self.reference else
                   "the reference output of the original code: torch.save(dict(x=x, t=t, out=model(x, t)), path)")
                for p in missing))

    def resolved_step(self) -> int:
        """``step``, or the one step of the files' names; a step that disagrees with them is an error."""
        named = {kind: int(m.group(1)) for kind, p in self.files.items() if (m := _STEP_IN_NAME.match(Path(p).name))}
        steps = set(named.values()) | ({self.step} if self.step is not None else set())
        if len(steps) > 1:
            raise ConfigError(f"the weights are of different steps: "
                              + ", ".join(f"{kind} {step}" for kind, step in named.items())
                              + (f", given step {self.step}" if self.step is not None else "")
                              + ": import the files of one step")
        if not steps:
            raise ConfigError(f"no step in the file names {[Path(p).name for p in self.files.values()]}: give the "
                              "training step of the weights (step; --step on the command line), which names the "
                              "run folder's files")
        if min(steps) <= 0:
            raise ConfigError(f"the step must be positive, got {self.step}")
        return steps.pop()


#: the data sets of RGB images: guided-diffusion's scripts build UNets of 3 input channels only
RGB_DATASETS = ("cifar10", "image_folder")


def check_data(flags: GuidedDiffusionFlags, data: DataConfig) -> None:
    """The data set that imported weights are evaluated on must be one their UNet takes: RGB images of
    ``--image_size``."""
    if data.name not in RGB_DATASETS:
        raise ConfigError(f"data.name {data.name!r} is not an RGB data set, and guided-diffusion's UNet takes 3 "
                          f"channels: use one of {list(RGB_DATASETS)}")
    if data.image_size != flags["image_size"]:
        raise ConfigError(f"data.image_size {data.image_size} differs from --image_size {flags['image_size']}")


#: the flags that split attention into heads and order it: they change no shape, compared as the blocks use them
ATTENTION_FLAGS = ("num_heads", "num_head_channels", "num_heads_upsample", "use_new_attention_order")


def _as_built(cfg: UNetConfig) -> dict:
    """``"model.KEY"`` -> what it builds: channel_mult and attention_resolutions as the levels they reach; not
    use_checkpoint (memory only) nor :data:`ATTENTION_FLAGS`."""
    built = {f"model.{f.name}": getattr(cfg, f.name) for f in dataclasses.fields(cfg)
             if f.name not in ("channel_mult", "attention_resolutions", "use_checkpoint", *ATTENTION_FLAGS)}
    built["model.channel_mult"] = ",".join(map(str, cfg.channel_mult_tuple))
    built["model.attention_resolutions"] = ",".join(str(cfg.image_size // r) for r in sorted(cfg.attention_rates))
    return built


def differences_from(flags: GuidedDiffusionFlags, model: UNetConfig, diffusion: DiffusionConfig) -> list[str]:
    """Where the UNet and diffusion that ``flags`` build differ from ``model`` and ``diffusion`` (params.yaml's
    sections), one ``"model.KEY: VALUE in the flags, VALUE here"`` each; the attention heads and order compared
    as the attention blocks use them (flatlib.gd.weights.attention_signature)."""
    built = flags.unet_config()
    ours = {**_as_built(built), **{f"diffusion.{k}": v for k, v in flags.diffusion_config().to_dict().items()}}
    theirs = {**_as_built(model), **{f"diffusion.{k}": v for k, v in diffusion.to_dict().items()}}
    found = [f"{key}: {ours[key]} in the flags, {theirs[key]} here" for key in ours if ours[key] != theirs[key]]
    if attention_signature(built) != attention_signature(model):
        values = lambda cfg: "/".join(str(getattr(cfg, name)) for name in ATTENTION_FLAGS)  # noqa: E731
        found.append(f"model.{'/'.join(ATTENTION_FLAGS)}: {values(built)} in the flags, {values(model)} here")
    return found


def imported_run_config(flags: GuidedDiffusionFlags, step: int, data: DataConfig, seed: int = 0) -> RunConfig:
    """The run config of imported weights: model and diffusion from the flags; lr, weight_decay, input_pertub
    (IP gamma), schedule_sampler, ema_rate and batch_size (guided-diffusion's per-process value) from the flags
    too; ``train.steps`` and ``swa.start_step`` are the import's step with ``swa.steps`` 0, so that
    ``load_model``'s configured step is that step in the train and in the SWA-phase folder."""
    check_data(flags, data)
    model = flags.unet_config()
    return RunConfig(
        seed=seed, data=data, model=model, diffusion=flags.diffusion_config(),
        optim=OptimConfig(lr=flags["lr"], weight_decay=flags["weight_decay"], ip_gamma=flags["input_pertub"]),
        train=TrainConfig(steps=step, batch_size=flags["batch_size"], ema_rate=flags.ema_rate, ema_warmup=False,
                          timestep_sampler=flags["schedule_sampler"], log_every=flags["log_interval"],
                          save_every=flags["save_interval"]),
        swa=SWAConfig(start_step=step, steps=0, window=OFFICIAL_SWA_WINDOW))


#: the official README's swa_window (an import has no SWA phase here: its SWA section only names the step)
OFFICIAL_SWA_WINDOW = 100


def import_flags(imported: ImportConfig) -> GuidedDiffusionFlags:
    """The guided-diffusion flags of an ``imports`` entry: its ``flags``, or its ``published`` checkpoint's."""
    if imported.published is not None and imported.published not in PUBLISHED:
        raise ConfigError(f"published {imported.published!r}{_nearest(imported.published, PUBLISHED)} is none of "
                          f"DDPM-IP's checkpoints {sorted(PUBLISHED)}")
    return parse_flags(PUBLISHED[imported.published].flags if imported.published else imported.flags)


def import_source(imported: ImportConfig, kinds=None) -> CheckpointSource:
    """The weights of ``kinds`` (default: every kind given) of an ``imports`` entry as a :class:`CheckpointSource`;
    the reference goes with the kind that computed it."""
    reference = Path(imported.reference) if imported.reference else None
    whole = CheckpointSource(import_flags(imported), imported.files, imported.step, reference,
                             imported.reference_weights)
    if kinds is None:
        return whole
    with_reference = whole.reference_kind in kinds
    return CheckpointSource(whole.flags, {k: v for k, v in imported.files.items() if k in kinds}, imported.step,
                            reference if with_reference else None,
                            imported.reference_weights if with_reference else None)


def check_evaluated_on(imported: ImportConfig, data: DataConfig) -> None:
    """:func:`check_data`, and for a published checkpoint the data set it was trained on."""
    check_data(import_flags(imported), data)
    if imported.published and data.name != PUBLISHED[imported.published].data["name"]:
        raise ConfigError(f"{imported.published} was trained on {PUBLISHED[imported.published].data['name']}, but "
                          f"data.name is {data.name!r}: FID, flatness and exposure compare it with that data set")


def check_imports(params: Params) -> None:
    """Every ``imports`` entry's flags, files and step, and that they build the UNet and diffusion of the model
    and diffusion sections (flatlib.schema checks what needs no flags: variants, seeds, weights kinds)."""
    for variant, imported in params.imports.items():
        where = f"imports.{variant}"
        try:
            check_evaluated_on(imported, params.data)
            import_source(imported).resolved_step()
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        differences = differences_from(import_flags(imported), params.model, params.diffusion)
        if differences:
            raise ConfigError(f"{where}: the flags build another UNet or diffusion than the model and diffusion "
                              f"sections ({'; '.join(differences)}); every row of a profile is one UNet and "
                              "diffusion: set those sections to the flags' values")


def default_swa_out(out: Path) -> Path:
    """``OUT_swa`` beside ``OUT``, as flatlib.layout.run_dir names a run's SWA phase."""
    return out.with_name(f"{out.name}_swa")


def _copy(source: Path, destination: Path) -> None:
    with open(source, "rb") as src, atomic.atomic_open(destination, "wb") as dst:
        shutil.copyfileobj(src, dst)


def holds_import(folder: Path, record: dict, replace: bool = False) -> bool:
    """Whether ``folder`` already holds this very import (its ``import.json`` is ``record``). A folder holding
    anything else (another import, a trained run) is emptied when ``replace``, else refused."""
    if (folder / layout.IMPORT_RECORD).is_file() and json.loads((folder / layout.IMPORT_RECORD).read_text()) == record:
        return True
    others = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    if others and replace:
        shutil.rmtree(folder)
    elif others:
        raise RunFolderError(f"{folder} already holds {', '.join(others[:4])}{', ...' if len(others) > 4 else ''} "
                             "(a trained run or another import): use another --out or delete it")
    return False


def _write_folder(folder: Path, source: CheckpointSource, run: RunConfig, record: dict) -> None:
    """The weights of ``record``, config.yaml, the complete-checkpoint marker, then the record itself."""
    step, rate = run.train.steps, run.train.ema_rate
    with hold_run_folder(folder):
        for kind in record["weights"]:
            _copy(Path(source.files[kind]), weights_path(folder, kind, step, rate))
        atomic.write_text(folder / layout.RUN_CONFIG, dump_yaml(run.to_dict()))
        atomic.torch_save(dict(step=step, import_record=layout.IMPORT_RECORD), training_state_path(folder, step))
        atomic.write_json(folder / layout.IMPORT_RECORD, record, indent=2)


def import_checkpoint(source: CheckpointSource, out: str | Path, data: DataConfig, seed: int = 0,
                      swa_out: str | Path | None = None, tolerance: float = REFERENCE_TOLERANCE,
                      replace: bool = False) -> dict[Path, dict]:
    """Check ``source`` and write it as run folders: raw and EMA weights in ``out``, SWA weights in ``swa_out``
    (default ``OUT_swa``). Returns each folder's import record (its ``import.json``). Every file is checked and
    every folder found empty (or holding this very import, which is left as it is; or, with ``replace``,
    emptied) before anything is written."""
    source.check_present()
    step = source.resolved_step()
    run = imported_run_config(source.flags, step, data, seed)
    folders = {kind: Path(swa_out or default_swa_out(Path(out))) if kind == "swa" else Path(out)
               for kind in source.files}
    weights, reference = {}, None
    for kind, path in source.files.items():
        state_dict = read_state_dict(path)
        check_state_dict(state_dict, run.model, path)
        if source.reference and kind == source.reference_kind:
            error = check_reference(run.model, state_dict, read_reference(source.reference), path, tolerance)
            reference = dict(source=str(source.reference), sha256=sha256_file(source.reference), weights=kind,
                             relative_error=error, tolerance=tolerance)
        weights[kind] = dict(source=str(path), sha256=sha256_file(path),
                             file=layout.weights_file(kind, step, run.train.ema_rate))
    records = {folder: dict(flags=source.flags.given, step=step,
                            weights={k: v for k, v in weights.items() if folders[k] == folder},
                            reference=reference, unverified_flags=[] if reference else list(SHAPELESS_FLAGS))
               for folder in folders.values()}
    for folder in [f for f, record in records.items() if not holds_import(f, record, replace)]:
        _write_folder(folder, source, run, records[folder])
    return records


def _data_config(items: list[str], image_size: int, published: PublishedCheckpoint | None) -> DataConfig:
    values = dict(hflip=False, holdout=0, **(published.data if published else {"image_size": image_size}))
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--data {item!r} must look like key=value (e.g. name=cifar10)")
        values[key] = parse_yaml(raw)
    if "name" not in values:
        raise ConfigError("give the data set the weights were trained on with --data name=... (cifar10, or "
                          "image_folder with path=...): the exposure stage reads its images")
    return DataConfig.from_dict(values, "--data")


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser("python -m flatlib.gd.importer", __doc__)
    parser.add_argument("raw", nargs="?", type=Path, help="raw weights (guided-diffusion's model*.pt)")
    parser.add_argument("--ema", type=Path, help="EMA weights (ema_*.pt)")
    parser.add_argument("--swa", type=Path, help="SWA weights, written to the SWA-phase folder --swa-out")
    flags = parser.add_mutually_exclusive_group(required=True)
    flags.add_argument("--flags", help="the guided-diffusion flags that built the weights, as one string")
    flags.add_argument("--published", choices=sorted(PUBLISHED),
                       help="a DDPM-IP checkpoint: its README's flags and data set")
    parser.add_argument("--out", required=True, type=Path, help="run folder for the raw and EMA weights")
    parser.add_argument("--swa-out", type=Path, help="run folder for the SWA weights (default: OUT_swa)")
    parser.add_argument("--step", type=int, help="training step of the weights (default: the step in the file names)")
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                        help="a key of the run config's data section, once per key: name=cifar10, or "
                             "name=image_folder and path=lsun_tower (image_size defaults to --image_size)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run config")
    parser.add_argument("--reference", type=Path,
                        help="torch.save'd {x, t, out} of the original code, to check the attention order and heads")
    parser.add_argument("--reference-weights", choices=vocabulary.WEIGHT_KINDS,
                        help="the weights that computed --reference (default: ema if given, else the first)")
    parser.add_argument("--tolerance", type=float, default=REFERENCE_TOLERANCE,
                        help="largest relative error that reproduces --reference")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict[Path, dict]:
    args = build_parser().parse_args(argv)
    with cli_errors("gd.importer", args.debug):
        published = PUBLISHED.get(args.published)
        gd_flags = parse_flags(published.flags if published else args.flags)
        files = {kind: path for kind, path in (("raw", args.raw), ("ema", args.ema), ("swa", args.swa)) if path}
        source = CheckpointSource(gd_flags, files, args.step, args.reference, args.reference_weights)
        records = import_checkpoint(source, args.out, _data_config(args.data, gd_flags["image_size"], published),
                                    args.seed, args.swa_out, args.tolerance)
        for folder, record in records.items():
            for kind, entry in record["weights"].items():
                print(f"{kind}: {entry['source']} (sha256 {entry['sha256'][:12]}) -> {folder / entry['file']}")
        if not source.reference:
            print(f"note: {', '.join(SHAPELESS_FLAGS)} change outputs but not shapes, so the weights cannot confirm "
                  "them: pass --reference to check them")
        return records


if __name__ == "__main__":
    main()
