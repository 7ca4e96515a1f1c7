"""Where every artifact of the pipeline lives: the one place that spells a
path (the stages, the report, the tests and, checked by a test, dvc.yaml all follow it).

Paths are relative to the workspace (the repository root a ``dvc repro`` runs in). This module imports no
torch, so the report and the tests read it cheaply.

Every training run and every measurement of it exists once per training seed (``seeds`` in params.yaml):

    data/preflight.json                             the checks python -m flatlib.stages.preflight passed
    data/reference.npz, data/featurenet.pt          FID reference images, CPU-profile feature extractor
    runs/{variant}/seed{s}/, runs/{variant}_swa/seed{s}/   training run and its SWA phase (checkpoints, log.csv)
    runs/rho_sweep/seed{s}/rho_{rho}/               the rho sweep's extra SAM runs (one per rho and seed)
    samples/{variant}/seed{s}/{weights}_T{T'}.npz|.png      Table 1 samples (every sample set) and their grids
    samples/quant/{variant}/seed{s}/{weights}_T{T'}_{b}bit.png   quantized-sampling grids
    metrics/{fid,quant,flatness,exposure}/{variant}/seed{s}.json, metrics/rho_sweep/seed{s}/rho_{rho}.json
    metrics/length/{variant}/seed{s}.json           saved checkpoints besides the final one (issue 21)
    metrics/train/{run folder under runs/}/         each run's log.csv, metrics.json (or import.json): what the report
                                                    reads of a run, beside the metrics (not the checkpoints)
    metrics/featurenet.json
    results/summary.json, results/plots/{plot}.csv  headline numbers and plot data (python -m flatlib.stages.summary)
    reports/{notebook}.ipynb, reports/tables/, reports/figures/   the executed notebooks (stage notebooks)
"""
from __future__ import annotations

from pathlib import Path

from flatlib.vocabulary import WEIGHT_KINDS

# ------------------------------------------------------------------------------------------------ inputs
PREFLIGHT = Path("data/preflight.json")     # the checks passed (python -m flatlib.stages.preflight --out)
REFERENCE = Path("data/reference.npz")
FEATURENET = Path("data/featurenet.pt")
FIDELITY_CACHE = Path(".fidelity_cache")

# -------------------------------------------------------------------------------------------- run folders
RUNS = Path("runs")
RHO_RUNS = RUNS / "rho_sweep"


def seed_dir(seed: int) -> str:
    """The folder (or file stem) of one training seed."""
    return f"seed{seed}"


def run_dir(variant: str, seed: int, phase: str = "train") -> Path:
    """The training run of a variant and seed (``phase="train"``) or its SWA phase (``phase="swa"``)."""
    if phase not in ("train", "swa"):
        raise ValueError(f"phase must be 'train' or 'swa', got {phase!r}")
    return RUNS / (f"{variant}_swa" if phase == "swa" else variant) / seed_dir(seed)


def weights_run_dir(variant: str, seed: int, weights: str) -> Path:
    """Raw and EMA weights live in the training run, SWA weights in its SWA phase."""
    return run_dir(variant, seed, "swa" if weights == "swa" else "train")


def rho_run_dir(rho: float, seed: int) -> Path:
    """The rho sweep's extra SAM run of one rho and training seed."""
    return RHO_RUNS / seed_dir(seed) / f"rho_{rho}"


# ------------------------------------------------------------------------------------ files of a run folder
RUN_CONFIG = "config.yaml"
RUN_LOG = "log.csv"
RUN_METRICS = "metrics.json"   # what the training computed: bitwise the same on a retrain
RUN_TIMINGS = "timings.json"   # wall time, steps per second, steps run: .dvcignore'd, so DVC never hashes it
CHECKSUMS = "checksums.json"   # checkpoint file name -> SHA-256 recorded when it was written


def weights_file(kind: str, step: int, ema_rate: float) -> str:
    """guided-diffusion's names: ``model{step:06d}.pt`` (raw), ``ema_{rate}_{step:06d}.pt``; ours for SWA."""
    names = {"raw": f"model{step:06d}.pt", "ema": f"ema_{ema_rate}_{step:06d}.pt", "swa": f"swa{step:06d}.pt"}
    if kind not in names:
        raise ValueError(f"unknown weights kind {kind!r}; choose one of {WEIGHT_KINDS}")
    return names[kind]


def training_state_file(step: int) -> str:
    """Optimizer state, step, RNG and sampler state; written last, so it marks a complete checkpoint."""
    return f"opt{step:06d}.pt"


TRAINING_STATE_GLOB = "opt[0-9]*.pt"
SWA_WEIGHTS_GLOB = "swa[0-9]*.pt"
CODE_RECORD = "code.json"      # digest of the code that trained the run
IMPORT_RECORD = "import.json"  # an imported run's flags, files and SHA-256 (flatlib.gd.importer)
LOCK_FILE = ".lock"            # held (flock) while a trainer writes the folder


def step_of(checkpoint_name: str) -> int:
    """The step of a checkpoint file name (its last six digits before ``.pt``)."""
    return int(Path(checkpoint_name).stem[-6:])

# ------------------------------------------------------------------------------------------------ samples
SAMPLES = Path("samples")
QUANT_SAMPLES = SAMPLES / "quant"


def samples_dir(variant: str, seed: int) -> Path:
    return SAMPLES / variant / seed_dir(seed)


def samples_file(variant: str, seed: int, weights: str, respacing: int, suffix: str = ".npz") -> Path:
    return samples_dir(variant, seed) / f"{weights}_T{respacing}{suffix}"


def quant_dir(variant: str, seed: int) -> Path:
    return QUANT_SAMPLES / variant / seed_dir(seed)


def quant_grid_file(variant: str, seed: int, weights: str, respacing: int, bits: int) -> Path:
    return quant_dir(variant, seed) / f"{weights}_T{respacing}_{bits}bit.png"


# ------------------------------------------------------------------------------------------------ metrics
METRICS = Path("metrics")
FEATURENET_METRICS = METRICS / "featurenet.json"
FID_FLOOR = METRICS / "fid_floor.json"       # the real-vs-real FID floor at the sample counts (stage fid_floor)
RHO_SWEEP_METRICS = METRICS / "rho_sweep"
#: metrics written once per variant and seed: metrics/{kind}/{variant}/seed{s}.json
PER_VARIANT_METRICS = ("fid", "quant", "flatness", "exposure")
#: stage length's measurements of a run's saved checkpoints besides the final step (issue 21)
LENGTH_METRICS = METRICS / "length"


def variant_metrics(kind: str, variant: str, seed: int) -> Path:
    if kind not in PER_VARIANT_METRICS:
        raise ValueError(f"unknown per-variant metrics {kind!r}; choose one of {PER_VARIANT_METRICS}")
    return METRICS / kind / variant / f"{seed_dir(seed)}.json"


def length_metrics(variant: str, seed: int) -> Path:
    return LENGTH_METRICS / variant / f"{seed_dir(seed)}.json"


def rho_sweep_metrics(rho: float, seed: int) -> Path:
    return RHO_SWEEP_METRICS / seed_dir(seed) / f"rho_{rho}.json"


TRAIN_RECORDS = METRICS / "train"
#: the small files of a run folder that its training stage copies to :func:`run_record` (what the report reads)
RECORD_FILES = (RUN_LOG, RUN_METRICS, IMPORT_RECORD)


def run_record(folder: str | Path) -> Path:
    """Where a run folder's :data:`RECORD_FILES` are published: runs/X -> metrics/train/X (the summary and the
    notebooks depend on metrics/, not on the checkpoints)."""
    return TRAIN_RECORDS / Path(folder).relative_to(RUNS)


# ------------------------------------------------------------------------------------------------ results
#: The summary stage's outputs, outside metrics/: the stage depends on the whole metrics/ tree (every measurement
#: stage, the rho sweep's where a profile has one), and DVC refuses a stage whose outputs lie inside its deps.
RESULTS = Path("results")
SUMMARY = RESULTS / "summary.json"          # the headline numbers, flat (`dvc metrics show`, `dvc exp show`)
PLOTS = RESULTS / "plots"                   # the data of dvc.yaml's plots (`dvc plots show`)
CLAIM_PARTS = RESULTS / "claims.csv"        # every part of every claim: interval, relative effect, p, outcome
CLAIM_SEEDS = RESULTS / "claims_per_seed.csv"  # per training seed, the compared values of every part
PLOT_NAMES = ("training_loss", "fid", "loss_curve", "exposure_gap")


def plot_file(name: str) -> Path:
    if name not in PLOT_NAMES:
        raise ValueError(f"unknown plot {name!r}; choose one of {PLOT_NAMES}")
    return PLOTS / f"{name}.csv"


# ------------------------------------------------------------------------------------------------ reports
REPORTS = Path("reports")
TABLES = REPORTS / "tables"
FIGURES = REPORTS / "figures"
NOTEBOOKS = Path("notebooks")
NOTEBOOK_NAMES = ("table1_fid", "quantization", "flatness", "exposure", "rho_sweep", "summary")


def report_notebook(name: str) -> Path:
    return REPORTS / f"{name}.ipynb"


#: the published report of the default run (committed): one HTML page per notebook and the key figures
DOCS = Path("docs")
DOCS_FIGURES = DOCS / "figures"


def docs_page(name: str) -> Path:
    return DOCS / f"{name}.html"


# ------------------------------------------------------------------------------------- who writes what
def _seed_of(part: str) -> str:
    return Path(part).stem.removeprefix("seed")


def stage_of(relpath: str | Path) -> str:
    """The DVC stage that writes an artifact (for "run `dvc repro STAGE`" messages); a per-seed stage is
    named ``stage@variant-seed`` (dvc.yaml's matrix) or ``stage@seed``."""
    parts = Path(relpath).parts
    if Path(relpath) in (PREFLIGHT, REFERENCE, FEATURENET):
        return Path(relpath).stem
    if Path(relpath) == FEATURENET_METRICS:
        return "featurenet"
    if Path(relpath) == FID_FLOOR:
        return "fid_floor"
    if parts[:2] == TRAIN_RECORDS.parts:
        return stage_of(RUNS.joinpath(*parts[2:]))
    if parts[:2] == LENGTH_METRICS.parts:
        return f"length@{parts[2]}-{_seed_of(parts[3])}"
    if parts[:2] == RHO_SWEEP_METRICS.parts:
        return f"rho_sweep@{_seed_of(parts[2])}-{Path(parts[3]).stem.removeprefix('rho_')}"
    if parts[0] == RUNS.name:
        if parts[1] == RHO_RUNS.name:
            return f"rho_train@{_seed_of(parts[2])}-{parts[3].removeprefix('rho_')}"
        name = parts[1]
        return (f"swa@{name[:-4]}" if name.endswith("_swa") else f"train@{name}") + f"-{_seed_of(parts[2])}"
    if parts[:2] == QUANT_SAMPLES.parts:
        return f"quant@{parts[2]}-{_seed_of(parts[3])}"
    if parts[0] == SAMPLES.name:
        return f"sample@{parts[1]}-{_seed_of(parts[2])}"
    if parts[0] == METRICS.name and parts[1] in PER_VARIANT_METRICS:
        return f"{parts[1]}@{parts[2]}-{_seed_of(parts[3])}"
    if parts[0] == RESULTS.name:
        return "summary"
    if parts[0] == REPORTS.name:
        return "notebooks"
    if parts[0] == DOCS.name:
        return "publish"
    raise ValueError(f"{relpath} is not an artifact of the pipeline")
