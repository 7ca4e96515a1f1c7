"""The schema of every metrics file the stages write, and its one writer and one reader (issue 19): a stage writes
its record with :func:`write`, the report reads it with :func:`read`, and both check it against the schema of its
kind, so a writer and the report cannot drift apart silently. A missing, misspelt or mistyped key is one
:class:`~flatlib.errors.CorruptFileError` naming the file and the key.

A schema is a TypedDict checked by pydantic: strict (no text or bool read as a number) and closed (a key
it does not name is an error). Maps keyed by weights kind, T' ("T20"), sigma ("0.01"), bits ("8") or step ("1500")
are dicts. A key is optional only where its writer leaves it out by configuration, or where the report still reads
the files of runs that predate it. Every writer imports torch and this module, which the report imports, must not:
so the schemas live here, each naming the function that writes it; flatlib.layout names the paths.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Annotated, Literal, Union

import pydantic
from typing_extensions import NotRequired, TypedDict  # pydantic needs typing_extensions' TypedDict before 3.12

from flatlib.errors import CorruptFileError

closed = pydantic.with_config(pydantic.ConfigDict(extra="forbid", strict=True))


# ------------------------------------------------------------------------------------- FID and its relatives
@closed
class Scores(TypedDict):
    """FID-like metrics per sample set (sample.sets) and on all samples of the seed (``_all``), as
    flatlib.stages.pipeline.fid_of_sets measures it; KID with fid.kid, precision and recall with fid.prc. ``_all``
    is absent in runs that predate it (flatlib.report.artifacts.seed_values then averages the sets)."""
    fid: list[float]
    fid_all: NotRequired[float]
    kid_mean: NotRequired[list[float]]
    kid_mean_all: NotRequired[float]
    kid_std: NotRequired[list[float]]
    kid_std_all: NotRequired[float]
    precision: NotRequired[list[float]]
    precision_all: NotRequired[float]
    recall: NotRequired[list[float]]
    recall_all: NotRequired[float]


@closed
class Fid(TypedDict):
    """metrics/fid/V/seedS.json (flatlib.stages.pipeline.stage_fid): the FID of every Table 1 row of one run,
    rows[weights]["T{T'}"], against the reference set with fid.extractor's features."""
    extractor: str
    num_samples: int
    sets: NotRequired[int]  # absent in runs that predate sample.sets: one set
    rows: dict[str, dict[str, Scores]]


@closed
class QuantScores(Scores):
    """FID of samples drawn with weights rounded to some bits, and the weights' relative L2 error."""
    weight_rel_error: float


@closed
class Quant(TypedDict):
    """metrics/quant/V/seedS.json (flatlib.stages.pipeline.stage_quant): FID of each row's samples at T'
    quant.respacing under weights quantized to each of quant.bits, rows[weights][bits] ("32": unquantized)."""
    respacing: int
    rows: dict[str, dict[str, QuantScores]]


@closed
class FloorDraws(TypedDict):
    """A metric of every seeded draw of real images (fid.floor_draws of them)."""
    fid: list[float]
    kid_mean: NotRequired[list[float]]
    kid_std: NotRequired[list[float]]
    precision: NotRequired[list[float]]
    recall: NotRequired[list[float]]


@closed
class FloorCounts(TypedDict):
    """The image counts the floor is measured at."""
    set: int  # the images of one sample set (sample.num)
    all: int  # of all sets of a seed (sample.num x sample.sets)


@closed
class FidFloor(TypedDict):
    """metrics/fid_floor.json (flatlib.stages.pipeline.stage_fid_floor): the real-vs-real floor, FID of real
    images against the reference at the count of one sample set and of all sets of a seed."""
    extractor: str
    source: str
    counts: FloorCounts
    set: FloorDraws
    all: FloorDraws


@closed
class FeatureNet(TypedDict):
    """metrics/featurenet.json (flatlib.stages.pipeline.stage_featurenet): the accuracy of the CPU profile's FID
    feature extractor on its training and held-out images."""
    train_acc: float
    val_acc: float


# ----------------------------------------------------------------------------------------------- flatness
@closed
class Lpf(TypedDict):
    """LPF at one sigma, the standard error of its mean over draws, L(theta) and MC sharpness = LPF - L(theta)
    (flatlib.stages.pipeline.lpf_at)."""
    lpf: float
    std_err: float
    base_loss: float
    mc_sharpness: float


@closed
class Curve(TypedDict):
    """L(theta + a d) at each a of ``alphas``, one row of ``losses`` per direction (flatlib.measure.flatness)."""
    alphas: list[float]
    losses: list[list[float]]
    base_loss: float


@closed
class Surface(Curve):
    """L(theta + a d1 + b d2) on the grid ``alphas`` x ``betas``."""
    betas: list[float]


@closed
class HessianTop(TypedDict):
    """The Hessian's dominant eigenvalue by power iteration (flatlib.measure.flatness.hessian_top_eigenvalue)."""
    eigenvalue: float
    iterations: int
    converged: bool


@closed
class HessianTrace(TypedDict):
    """Hutchinson's estimate of the Hessian's trace and its standard error (flatlib.measure.flatness.hessian_trace)."""
    trace: float
    std_err: float


@closed
class FlatnessEntry(TypedDict):
    """One weights kind's flatness (flatlib.stages.pipeline.flatness_report): LPF per sigma of flatness.sigmas, the
    1-D loss curve, the Hessian's top eigenvalue (flatness.hessian_iters > 0) and trace (flatness.hessian_samples
    > 0), the 2-D surface (flatness.surface_variants and surface_weights only)."""
    lpf: dict[str, Lpf]
    curve: Curve
    hessian_top_eigenvalue: NotRequired[HessianTop]
    hessian_trace: NotRequired[HessianTrace]
    surface: NotRequired[Surface]


#: metrics/flatness/V/seedS.json (flatlib.stages.pipeline.stage_flatness): weights kind -> its flatness
Flatness = dict[str, FlatnessEntry]


@closed
class RhoSweep(TypedDict):
    """metrics/rho_sweep/seedS/rho_R.json (flatlib.stages.pipeline.stage_rho_sweep): FID per sample set of an extra
    SAM run's raw weights at rho_sweep.respacing, and its LPF at rho_sweep.sigma."""
    fid: list[float]
    lpf: float
    std_err: float
    base_loss: float
    mc_sharpness: float


# ----------------------------------------------------------------------------------------------- exposure
@closed
class ExposureEntry(TypedDict):
    """One weights kind's exposure bias (flatlib.measure.exposure.predicted_noise_norms): per sampling step t, the
    mean norm of the predicted noise on the sampling chain and on forward-noised data, their gap, and the gap's
    aggregate (exposure.aggregate), mean and maximum over steps."""
    t: list[int]
    sampling_norm: list[float]
    training_norm: list[float]
    gap: list[float]
    aggregate: str
    gap_aggregate: float
    gap_mean: float
    gap_max: float
    num_images: int
    unit_noise_norm: float


#: metrics/exposure/V/seedS.json (flatlib.stages.pipeline.stage_exposure): weights kind -> its exposure bias
Exposure = dict[str, ExposureEntry]


# ---------------------------------------------------------------------------------------- training length
@closed
class EqualProgress(TypedDict):
    """ADM's checkpoint whose held-out loss is closest to SAM's final one (flatlib.stages.length)."""
    step: int
    target: float
    eval_mse: float


@closed
class AtCheckpoint(TypedDict):
    """One weights kind at one saved checkpoint, measured as Table 1 measures the final weights."""
    fid: dict[str, Scores]
    lpf: dict[str, Lpf]


@closed
class Length(TypedDict):
    """metrics/length/V/seedS.json (flatlib.stages.length.stage_length): the saved checkpoints besides the final
    step, rows[step][weights]; which steps at each of length.fractions, the last length.last_k, and (adm with a
    trained sam) the equal-progress checkpoint."""
    final_step: int
    fractions: dict[str, int]
    last_k: list[int]
    equal_progress: NotRequired[EqualProgress]
    num_samples: int
    sets: int
    rows: dict[str, dict[str, AtCheckpoint]]


@closed
class LengthOfImport(TypedDict):
    """metrics/length/V/seedS.json of an imported variant: no checkpoints to measure."""
    imported: Literal[True]
    rows: dict[str, dict[str, AtCheckpoint]]


def _length_shape(record) -> str:
    return "imported" if isinstance(record, dict) and "imported" in record else "measured"


#: the two shapes of a length file, told apart by the key ``imported``
LengthFile = Annotated[Union[Annotated[LengthOfImport, pydantic.Tag("imported")],
                             Annotated[Length, pydantic.Tag("measured")]], pydantic.Discriminator(_length_shape)]


# ------------------------------------------------------------------------------------------ run records
@closed
class Plateau(TypedDict):
    """The held-out loss's trend over the last ``window`` of training (flatlib.training.trainer.plateau)."""
    window: float
    tol: float
    level: float
    points: int
    rel_change: float
    slope: float
    slope_p: float
    per_doubling: float
    final_eval_mse: float
    learned: bool
    status: str
    plateaued: bool


@closed
class RunMetrics(TypedDict):
    """metrics.json of a run folder, written by flatlib.training.trainer.Trainer.run (training code: it cannot
    import this module without changing the training digest) and published to metrics/train/ by
    flatlib.stages.runs.publish_record, which checks it: the final training loss and MSE, the SWA snapshots averaged
    (SWA phase), the plateau criterion (train phase with train.plateau_triples)."""
    phase: str
    step: int
    final_loss: float | None
    final_mse: float | None
    swa_snapshots: int | None
    plateau: NotRequired[Plateau]


# ------------------------------------------------------------------------------------ outside metrics/
@closed
class Preflight(TypedDict):
    """data/preflight.json (flatlib.stages.preflight.main): the checks passed, and variant -> weights kind ->
    SHA-256 of every imported weights file."""
    checks: list[str]
    imports: NotRequired[dict[str, dict[str, str]]]


#: results/summary.json (flatlib.stages.summary.write): the headline numbers and outcome counts, flat (a map outside a
#: TypedDict is not strict unless its values say so)
Summary = dict[str, pydantic.StrictFloat]


# ---------------------------------------------------------------------------------------- write and read
@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of file: its schema and the JSON layout its writer has always given it (the same bytes). ``shapes``:
    the schema is a union of shapes told apart by a tag, which pydantic puts first in the key of an error."""
    schema: object
    indent: int = 1
    sort_keys: bool = True
    shapes: bool = False

    @functools.cached_property
    def adapter(self) -> pydantic.TypeAdapter:
        return pydantic.TypeAdapter(self.schema)


KINDS = {"fid": Kind(Fid), "quant": Kind(Quant), "flatness": Kind(Flatness), "exposure": Kind(Exposure),
         "rho_sweep": Kind(RhoSweep), "length": Kind(LengthFile, shapes=True), "fid_floor": Kind(FidFloor),
         "featurenet": Kind(FeatureNet), "train": Kind(RunMetrics, indent=2, sort_keys=False),
         "preflight": Kind(Preflight, sort_keys=False), "summary": Kind(Summary, sort_keys=False)}


def _problem(err: pydantic.ValidationError, kind: Kind) -> str:
    """The first offending key of a validation error (an unexpected key first: a misspelt key is also a missing
    one, and the unexpected spelling is the one to fix), dotted ("rows.raw.T20.fid")."""
    errors = err.errors()
    first = min(errors, key=lambda e: e["type"] != "extra_forbidden")
    key = ".".join(str(part) for part in (first["loc"][1:] if kind.shapes else first["loc"]))
    where = f"key {key!r}" if key else "the top level"
    text = {"extra_forbidden": f"unexpected {where}", "missing": f"{where} is missing"}.get(
        first["type"], f"{where}: {first['msg'][0].lower()}{first['msg'][1:]}, got {type(first['input']).__name__}")
    return text + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def check(kind: str, record, path: str | Path) -> None:
    """Raise a one-line CorruptFileError naming ``path`` and the offending key unless ``record`` fits ``kind``."""
    try:
        KINDS[kind].adapter.validate_python(record)
    except pydantic.ValidationError as err:
        raise CorruptFileError(f"{path} is not a valid {kind} record: {_problem(err, KINDS[kind])}") from err


def write(kind: str, path: str | Path, record) -> None:
    """Check ``record`` against ``kind``, then write it to ``path`` atomically, as its stage always has."""
    from flatlib import atomic  # imports torch: loaded here, by the writers, so that the report reads without torch

    check(kind, record, path)
    atomic.write_json(path, record, indent=KINDS[kind].indent, sort_keys=KINDS[kind].sort_keys)


def read(kind: str, path: str | Path) -> dict:
    """The record of ``kind`` at ``path``, checked against its schema."""
    try:
        record = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise CorruptFileError(f"{path} is not JSON ({err}): rerun the stage that writes it") from err
    check(kind, record, path)
    return record
