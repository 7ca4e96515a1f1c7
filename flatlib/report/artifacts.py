"""Rounding rules and loaders of the pipeline's artifacts (paths from flatlib.layout; a missing file raises
ArtifactMissing naming the DVC stage that writes it; every metrics file is read through its schema,
flatlib.measure.records), and the typed params of the workspace."""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from flatlib import layout, vocabulary
from flatlib.measure import records
from flatlib.schema import Params, load_params as _parse_params

# --------------------------------------------------------------------------------------------- rounding
#: Decimals printed (and compared) per quantity of fixed scale. FID is printed with 3 decimals: two runs
#: whose FIDs agree within +-0.0005 print the same text, and a verdict compares the printed values.
DECIMALS = {"fid": 3, "paper": 2, "kid": 4, "loss": 5, "weight_error": 5, "norm": 4, "corr": 4, "accuracy": 4,
            "rank": 1, "int": 0, "rel": 4, "percent": 1}
#: Significant figures for quantities whose scale spans orders of magnitude between profiles.
SIGNIFICANT = {"sharpness": 4, "hessian": 4, "gap": 4}
#: Significant figures of an interval's half-width; the mean beside it is shown to the same decimal place.
INTERVAL_DIGITS = 2


def round_value(x, kind: str):
    """``x`` rounded as it is printed: DECIMALS[kind] decimals or SIGNIFICANT[kind] significant figures."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return x
    if kind in SIGNIFICANT:
        return float(f"{float(x):.{SIGNIFICANT[kind]}g}")
    if kind == "int":
        return int(round(float(x)))
    if kind in DECIMALS:
        return round(float(x), DECIMALS[kind])
    return x


def _unsigned_zero(text: str) -> str:
    """"-0.00" (a small negative mean rounded away) as "0.00"."""
    return text.lstrip("+-") if float(text.rstrip("%")) == 0 else text


def fmt(x, kind: str, sign: bool = False) -> str:
    """The printed text of ``x`` (see :func:`round_value`); a rank without decimals where it is a whole number."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    plus = "+" if sign else ""
    if kind == "rank":
        return f"{float(x):g}"
    if kind in SIGNIFICANT:
        return f"{float(x):{plus}.{SIGNIFICANT[kind]}g}"
    return _unsigned_zero(f"{float(x):{plus}.{DECIMALS[kind]}f}")


def _places(x: float, digits: int) -> int:
    """The decimal places that show ``x`` to ``digits`` significant figures."""
    rounded = float(f"{abs(x):.{digits}g}")
    return max(0, digits - 1 - math.floor(math.log10(rounded))) if rounded else 0


def interval_decimals(mean: float, half_width: float, kind: str) -> int:
    """The decimal places that show ``half_width`` to INTERVAL_DIGITS significant figures (the mean beside it is
    shown to the same place: digits beyond the interval's are noise), at most two more than the kind's own
    precision (a negligible interval does not print a mean to 15 places)."""
    own = _places(mean, SIGNIFICANT[kind]) if kind in SIGNIFICANT and mean else DECIMALS.get(kind, 4)
    return min(_places(half_width, INTERVAL_DIGITS), own + 2)


def with_kinds(df: pd.DataFrame, kinds: dict) -> pd.DataFrame:
    """Attach the rounding kind of each column (``df.attrs["kinds"]``) and return ``df``."""
    df.attrs["kinds"] = dict(kinds)
    return df


#: A column "X" with a companion column "X" + HALF_WIDTH holds means; the companion their interval's
#: half-width. Printed tables show the pair as one column "mean ± half-width".
HALF_WIDTH = " ±"


def mean_columns(df: pd.DataFrame, prefix: str = "") -> list[str]:
    """The mean columns of ``df`` whose names start with ``prefix`` (not their intervals' half-widths)."""
    return [c for c in df.columns if str(c).startswith(prefix) and not str(c).endswith(HALF_WIDTH)]


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every column of known kind (``df.attrs["kinds"]``: column -> kind) rounded as printed, and
    every mean column with a half-width companion merged into one "mean ± half-width" text column."""
    out = df.copy()
    kinds = df.attrs.get("kinds", {})
    for column in list(out.columns):
        kind = kinds.get(column)
        if kind is None or column.endswith(HALF_WIDTH):
            continue
        if column + HALF_WIDTH in out.columns:
            out[column] = [fmt_interval(m, h, kind) for m, h in zip(out[column], out[column + HALF_WIDTH])]
            out = out.drop(columns=column + HALF_WIDTH)
        else:
            out[column] = [round_value(v, kind) if isinstance(v, (int, float)) and not isinstance(v, bool)
                           else v for v in out[column]]
    return out


def fmt_interval(mean, half_width, kind: str, sign: bool = False, percent: bool = False) -> str:
    """"mean ± half-width" as printed: the half-width to INTERVAL_DIGITS significant figures, the mean to the same
    decimal place (``percent``: both times 100 with "%"); a missing or zero half-width (a single replicate) leaves
    the mean at its kind's precision. Display only: no verdict reads this text (flatlib.measure.stats decides on the
    unrounded values)."""
    scale, unit = (100.0, "%") if percent else (1.0, "")
    if half_width is None or not math.isfinite(half_width) or half_width == 0 or not math.isfinite(mean):
        return fmt(mean * scale, "percent" if percent else kind, sign) + (unit if math.isfinite(mean) else "")
    places = interval_decimals(mean * scale, half_width * scale, "percent" if percent else kind)
    plus = "+" if sign else ""
    return (_unsigned_zero(f"{mean * scale:{plus}.{places}f}{unit}") + f" ± {half_width * scale:.{places}f}{unit}")


# ------------------------------------------------------------------------------------------- artifacts
class ArtifactMissing(FileNotFoundError):
    """An artifact of the pipeline is missing; the message names the file and the DVC stage that writes it."""

    def __init__(self, relpath, stage: str | None = None, hint: str = ""):
        self.relpath, self.stage = str(relpath), stage or layout.stage_of(relpath)
        super().__init__(f"{self.relpath} is missing from the workspace: it is written by the DVC stage "
                         f"'{self.stage}' (run `dvc repro {self.stage}` in the workspace){hint}")


def check_workspace(workspace, notebook: str) -> None:
    """Fail early, with what to do, when the workspace lacks the run records or samples the notebooks read (a fresh
    clone has the metrics, the run records among them, in git; the samples only after ``dvc repro``)."""
    params = load_params(workspace)
    needed = [layout.run_record(layout.run_dir(v, s)) / layout.RUN_METRICS for v in params.variants
              for s in params.seeds if v not in params.imports]
    needed += [layout.samples_dir(v, s) for v in params.variants for s in params.seeds]
    missing = [str(p) for p in needed if not workspace_path(workspace, p).exists()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ArtifactMissing(f"{missing[0]}{more}", "notebooks", hint=
            f". A fresh clone has the metrics in git but not the samples (DVC cache). Run `dvc repro "
            f"notebooks` (or `make repro`) in the repository root, or read {layout.docs_page(notebook)}, "
            "the page rendered from the default run.")


class NotEvaluable(Exception):
    """The measurement a claim needs was not configured (e.g. no 8-bit run); not a missing file."""


#: :class:`AtCheckpoints`' pick of the equal-progress control (else a key of length.fractions)
EQUAL_PROGRESS = "equal_progress"


@dataclasses.dataclass(frozen=True)
class AtCheckpoints:
    """A workspace read at saved checkpoints instead of the final step (issue 21 items 3 and 4): the loaders of
    FID and flatness give each variant of ``variants`` (every variant when empty) as stage length measured it at
    the checkpoint ``pick`` names in its metrics/length file (a fraction of training, "0.5", or
    :data:`EQUAL_PROGRESS`), raw and EMA rows only (the SWA phase follows the final step), LPF / MC sharpness only;
    the other variants stay final. Everything else reads the workspace (``os.fspath`` is its root)."""
    root: str
    pick: str
    variants: tuple = ()

    def __fspath__(self) -> str:
        return os.fspath(self.root)

    def reads(self, variant: str) -> bool:
        return not self.variants or variant in self.variants


def load_length(workspace, variant: str, seed: int) -> dict:
    """metrics/length/V/seedS.json (flatlib.stages.length): {final_step, fractions: {fraction: step}, last_k: [steps],
    equal_progress: {step, target, eval_mse} (adm), rows: {step: {weights: {fid: {"T20": scores}, lpf: {sigma:
    ...}}}}}: the saved checkpoints measured besides the final step, which is Table 1's."""
    return _record(workspace, "length", layout.length_metrics(variant, seed))


def _at_checkpoint(workspace: AtCheckpoints, kind: str, variant: str, seed: int, final: dict) -> dict:
    """A per-seed FID or flatness file (``final``) as at the checkpoint ``workspace`` picks: Table 1's own raw and
    EMA rows where that checkpoint is the final step, else stage length's; NotEvaluable where it measured none."""
    if kind not in ("fid", "flatness"):
        raise NotEvaluable(f"{kind} is measured at the final step only")
    record = load_length(workspace, variant, seed)
    step = (record.get(EQUAL_PROGRESS, {}).get("step") if workspace.pick == EQUAL_PROGRESS
            else record.get("fractions", {}).get(workspace.pick))
    if step is None:
        raise NotEvaluable(f"no {workspace.pick} checkpoint of {variant} seed {seed} in metrics/length/")
    if step == record["final_step"]:
        rows = final["rows"] if kind == "fid" else {w: {"lpf": entry["lpf"]} for w, entry in final.items()}
    else:
        rows = {w: entry["fid"] if kind == "fid" else {"lpf": entry["lpf"]}
                for w, entry in record["rows"][str(step)].items()}
    rows = {w: rows[w] for w in vocabulary.CHECKPOINT_WEIGHTS if w in rows}
    return dict(final, rows=rows) if kind == "fid" else rows


def workspace_path(workspace, relpath="") -> Path:
    return Path(workspace) / relpath


def _require(workspace, relpath) -> Path:
    path = workspace_path(workspace, relpath)
    if not path.is_file():
        raise ArtifactMissing(relpath)
    return path


def _record(workspace, kind: str, relpath) -> dict:
    """The metrics file ``relpath``, read through the schema of ``kind`` (flatlib.measure.records)."""
    return records.read(kind, _require(workspace, relpath))


def _variant_record(workspace, kind: str, variant: str, seed: int) -> dict:
    """metrics/KIND/V/seedS.json (KIND: one of flatlib.layout.PER_VARIANT_METRICS)."""
    return _record(workspace, kind, layout.variant_metrics(kind, variant, seed))


def load_params(workspace) -> Params:
    """The workspace's params.yaml as typed :class:`flatlib.schema.Params` (what the stages read), parsed once per
    text of the file (the report reads it in nearly every function)."""
    path = workspace_path(workspace, "params.yaml")
    if not path.is_file():
        raise FileNotFoundError("params.yaml is missing from the workspace: the notebooks read the parameters "
                                "of the run from the repository's params.yaml (pass workspace = the root)")
    return _parsed(path.resolve(), path.read_text())


@functools.lru_cache(maxsize=8)
def _parsed(path: Path, text: str) -> Params:
    """:func:`flatlib.schema.load_params` of a file with this text (Params are frozen: shared safely)."""
    return _parse_params(path)


def num_parameters(workspace) -> int:
    """The parameter count of the UNet of the workspace's ``model`` params (built once per model config)."""
    return _num_parameters(load_params(workspace).model)


@functools.lru_cache(maxsize=4)
def _num_parameters(model) -> int:
    from flatlib.model.unet import count_parameters, create_unet
    return count_parameters(create_unet(model))


def num_training_images(workspace) -> int:
    """The number of training images of the workspace's ``data`` params (the data set less its held-out images),
    with ``data.root`` taken relative to the workspace, as the stages take it."""
    from flatlib.training.data import dataset_from_config
    data = load_params(workspace).data
    return len(dataset_from_config(dataclasses.replace(data, root=str(workspace_path(workspace, data.root)))))


def seeds(workspace) -> list[int]:
    """The training seeds of the workspace's params (every run and measurement exists once per seed)."""
    return list(load_params(workspace).seeds)


def _per_seed(workspace, kind: str, variant: str) -> list[dict]:
    """metrics/KIND/V/seedS.json of every seed (under :class:`AtCheckpoints`, as at its checkpoints)."""
    files = [_variant_record(workspace, kind, variant, s) for s in seeds(workspace)]
    if isinstance(workspace, AtCheckpoints) and workspace.reads(variant):
        return [_at_checkpoint(workspace, kind, variant, s, f) for s, f in zip(seeds(workspace), files)]
    return files


#: what a FID-like metric is, by feature extractor (fid.extractor): "FID" and "KID" only with Inception features
METRIC_NAMES = {("fid", "inception"): "FID", ("kid_mean", "inception"): "KID",
                ("fid", "featurenet"): "FD, FeatureNet features", ("kid_mean", "featurenet"): "KD, FeatureNet features"}


def metric_label(workspace, metric: str = "fid") -> str:
    """The honest name of ``metric`` ("fid" or "kid_mean") for the workspace's fid.extractor."""
    return METRIC_NAMES[(metric, load_params(workspace).fid.extractor)]


def load_fid(workspace) -> dict:
    """metrics/fid/V/seedS.json of every variant and seed as {extractor, num_samples, sets, rows: {"variant/
    weights": {"T20": {metric: array[seed, sample set]}}}} (fid, kid_mean, precision, recall, ...)."""
    merged = {"rows": {}}
    for variant in variants(workspace):
        per_seed = _per_seed(workspace, "fid", variant)
        merged.update(extractor=per_seed[0]["extractor"], num_samples=per_seed[0]["num_samples"],
                      sets=per_seed[0].get("sets", 1))
        for weights, by_t in per_seed[0]["rows"].items():
            merged["rows"][f"{variant}/{weights}"] = {
                t: {metric: np.asarray([d["rows"][weights][t][metric] for d in per_seed], dtype=float)
                    for metric in scores} for t, scores in by_t.items()}
    return merged


def seed_values(scores: dict, metric: str = "fid") -> tuple[np.ndarray, np.ndarray]:
    """(per seed, per seed and sample set) of a FID-like metric of one row: the per-seed value is the metric on ALL
    samples of the seed (``METRIC_all``, flatlib.stages.pipeline), or the mean over sample sets for a run that predates it.
    A KeyError when ``metric`` was not measured."""
    sets = np.asarray(scores[metric], dtype=float)
    whole = scores.get(f"{metric}_all")
    return (np.asarray(whole, dtype=float) if whole is not None else sets.mean(axis=1)), sets


def table_values(scores: dict, metric: str = "fid") -> np.ndarray:
    """What a table's "mean ± interval" of a FID-like metric is computed from: the per-seed values (on all samples
    of a seed) with several training seeds, the sample sets of the single seed otherwise (flatlib.measure.stats.estimate)."""
    whole, sets = seed_values(scores, metric)
    return whole if len(whole) > 1 else sets


def load_fid_floor(workspace) -> dict | None:
    """metrics/fid_floor.json (the real-vs-real floor, flatlib.stages.pipeline fid-floor), or None for a run that predates
    it."""
    path = workspace_path(workspace, layout.FID_FLOOR)
    return records.read("fid_floor", path) if path.is_file() else None


def floor_text(workspace) -> str:
    """The real-vs-real floor in one sentence (printed beside every FID table)."""
    floor, name = load_fid_floor(workspace), metric_label(workspace)
    if floor is None:
        return "Real-vs-real floor: not measured in this run (metrics/fid_floor.json, stage fid_floor)."
    parts = [f"{floor['counts'][k]} images {np.mean(floor[k]['fid']):.3f} (draws {min(floor[k]['fid']):.3f}-"
             f"{max(floor[k]['fid']):.3f})" for k in ("all", "set")]
    return (f"Real-vs-real floor of the {name} ({floor['source']}): " + "; ".join(parts)
            + ". A row's value near its floor is indistinguishable from real data at this count.")


def load_quant(workspace, variant: str) -> dict:
    """metrics/quant/V/seedS.json of every seed as {respacing, rows: {weights: {"32"|"8"|"4": {"fid", "kid_mean":
    array[seed, sample set], "fid_all", "kid_mean_all": array[seed] (where measured), "weight_rel_error":
    array[seed]}}}}."""
    per_seed = _per_seed(workspace, "quant", variant)
    keys = ("fid", "kid_mean", "fid_all", "kid_mean_all", "weight_rel_error")
    rows_ = {w: {b: {k: np.asarray([d["rows"][w][b][k] for d in per_seed], dtype=float) for k in keys if k in scores}
                 for b, scores in by_bits.items()} for w, by_bits in per_seed[0]["rows"].items()}
    return dict(respacing=per_seed[0]["respacing"], rows=rows_)


def load_flatness(workspace, variant: str) -> list[dict]:
    """metrics/flatness/V/seedS.json per seed: [{weights: {lpf: {sigma: {...}}, curve, hessian_*, [surface]}}]."""
    return _per_seed(workspace, "flatness", variant)


def load_exposure(workspace, variant: str) -> list[dict]:
    """metrics/exposure/V/seedS.json per seed: [{weights: {t, sampling_norm, training_norm, gap, ...}}]."""
    return _per_seed(workspace, "exposure", variant)


def _plateau(workspace, run_dir) -> dict | None:
    """The plateau criterion a run's train phase recorded (its run record's metrics.json, metrics/train/)."""
    return _record(workspace, "train", layout.run_record(run_dir) / layout.RUN_METRICS).get("plateau")


def load_rho_sweep(workspace) -> list[dict]:
    """Per training seed, the rho sweep's rows {rho: {fid: [per sample set], mc_sharpness, base_loss, lpf, plateau}}
    ([] without a sweep): rho 0 and the SAM variant's rho are the raw weights of the adm and sam runs as Table 1
    measured them (FID at rho_sweep.respacing, LPF at rho_sweep.sigma: flatlib.schema checks both are measured),
    each extra rho is its metrics/rho_sweep/seedS/rho_R.json."""
    params = load_params(workspace)
    cfg, out = params.rho_sweep, []
    for seed in params.seeds if cfg.rhos else ():
        rows = {}
        for rho, variant in ((0.0, "adm"), (params.variant_rho("sam"), "sam")):
            fid = _variant_record(workspace, "fid", variant, seed)["rows"]["raw"][f"T{cfg.respacing}"]
            lpf = _variant_record(workspace, "flatness", variant, seed)["raw"]["lpf"][str(cfg.sigma)]
            rows[str(float(rho))] = dict(fid=fid["fid"], **lpf,
                                         plateau=_plateau(workspace, layout.run_dir(variant, seed)))
        rows.update({str(float(rho)): dict(_record(workspace, "rho_sweep", layout.rho_sweep_metrics(rho, seed)),
                                           plateau=_plateau(workspace, layout.rho_run_dir(rho, seed)))
                     for rho in cfg.rhos})
        out.append({"rows": rows})
    return out


def load_import_record(workspace, variant: str, seed: int, weights: str) -> dict:
    """The import.json of the run folder that holds an imported variant's ``weights`` (flatlib.gd.importer)."""
    path = _require(workspace, layout.run_record(layout.weights_run_dir(variant, seed, weights)) / layout.IMPORT_RECORD)
    return json.loads(path.read_text())


def load_featurenet(workspace) -> dict:
    return _record(workspace, "featurenet", layout.FEATURENET_METRICS)


def load_training_log(workspace, variant: str, seed: int, phase: str = "train") -> pd.DataFrame:
    """The log.csv of a variant's training run (``phase="train"``) or its SWA phase (``phase="swa"``)."""
    return pd.read_csv(_require(workspace, layout.run_record(layout.run_dir(variant, seed, phase)) / layout.RUN_LOG))


#: the plateau table's "status" of a run imported, not trained here (it has no training log)
IMPORTED = "imported: not trained here"


def plateau_table(workspace) -> pd.DataFrame:
    """The convergence every training run measured (metrics.json, flatlib.training.trainer.plateau; issue 21): one
    row per run (the Table 1 variants and the rho sweep's runs, per seed) with its final held-out L_simple, its
    relative change over the last window, the p-value of that window's slope, the fitted change per doubling of
    steps and its status ("plateaued" only when both show no descent; else "still descending", ...); an imported
    variant's runs are marked :data:`IMPORTED`."""
    params = load_params(workspace)
    runs = [(v, s, layout.run_dir(v, s)) for v in params.variants for s in params.seeds]
    runs += [(f"sam rho={rho:g}", s, layout.rho_run_dir(rho, s)) for rho in params.rho_sweep.rhos
             for s in params.seeds]
    table = []
    for name, seed, folder in runs:
        imported = name in params.imports
        plateau = {} if imported else _plateau(workspace, folder) or {}
        table.append({"run": name, "seed": seed, "final held-out loss": plateau.get("final_eval_mse", float("nan")),
                      "relative change": plateau.get("rel_change", float("nan")),
                      "slope p": plateau.get("slope_p", float("nan")),
                      "change per doubling": plateau.get("per_doubling", float("nan")),
                      "window": plateau.get("window", float("nan")), "tolerance": plateau.get("tol", float("nan")),
                      "level": plateau.get("level", float("nan")),
                      "status": IMPORTED if imported else plateau.get("status", "not measured")})
    return with_kinds(pd.DataFrame(table).set_index(["run", "seed"]),
                      {"final held-out loss": "loss", "relative change": "rel", "slope p": "rel",
                       "change per doubling": "rel", "window": "rel", "tolerance": "rel", "level": "rel"})


def sample_grid_path(workspace, variant: str, weights: str, respacing: int, seed: int | None = None) -> Path:
    """The sample grid of a row (of the first training seed unless ``seed``)."""
    seed = seeds(workspace)[0] if seed is None else seed
    return _require(workspace, layout.samples_file(variant, seed, weights, respacing, ".png"))


def quant_grid_path(workspace, variant: str, weights: str, respacing: int, bits: int, seed: int | None = None) -> Path:
    seed = seeds(workspace)[0] if seed is None else seed
    return _require(workspace, layout.quant_grid_file(variant, seed, weights, respacing, bits))


def variants(workspace) -> list[str]:
    return list(load_params(workspace).variants)


def weights_kinds(workspace) -> list[str]:
    return list(load_params(workspace).sample.weights)


def rows(workspace) -> list[tuple[str, str]]:
    """The (variant, weights) rows this workspace's params measure (Params.weights_of): the paper's order first,
    extras after."""
    params = load_params(workspace)
    wanted = [(v, w) for v in params.variants for w in params.weights_of(v)]
    return [r for r in vocabulary.PAPER_ROWS if r in wanted] + [r for r in wanted if r not in vocabulary.PAPER_ROWS]


def paper_dataset(workspace) -> str | None:
    """The paper's data set whose column is shown beside the measured one: params.yaml ``paper_dataset``
    (None: no paper column)."""
    return load_params(workspace).paper_dataset


def respacings(workspace) -> tuple[int, ...]:
    """The T' every Table 1 row is sampled at (flatlib.vocabulary.measured_respacings)."""
    return vocabulary.measured_respacings(load_params(workspace))


def flatness_entries(workspace) -> dict[str, list[dict]]:
    """{label: [entry per seed]} over every (variant, weights) of the flatness artifacts, in Table 1 order."""
    data = {v: load_flatness(workspace, v) for v in variants(workspace)}
    return {vocabulary.label(v, w): [d[w] for d in data[v]] for v, w in rows(workspace) if w in data[v][0]}


def exposure_entries(workspace) -> list[tuple[str, str, list[dict]]]:
    """(variant, weights, [entry per seed]) over every row of the exposure artifacts, in Table 1 order."""
    data = {v: load_exposure(workspace, v) for v in variants(workspace)}
    return [(v, w, [d[w] for d in data[v]]) for v, w in rows(workspace) if w in data[v][0]]


def mean_rise(entry: dict, landscape: str) -> float:
    """Mean of L - L(theta) over a landscape of a flatness entry: ``"curve"`` (1-D, every direction and a)
    or ``"surface"`` (the 2-D grid); NaN when it was not measured."""
    measured = entry.get(landscape)
    if not measured:
        return float("nan")
    return float(np.mean(np.asarray(measured["losses"], dtype=float)) - measured["base_loss"])
