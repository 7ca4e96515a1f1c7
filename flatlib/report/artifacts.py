"""Rounding rules and loaders of the pipeline's artifacts (paths from flatlib.layout; a missing file raises
ArtifactMissing naming the DVC stage that writes it), and the typed params of the workspace."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from flatlib import layout
from flatlib.params import Params, load_params as _parse_params

# --------------------------------------------------------------------------------------------- rounding
#: Decimals printed (and compared) per quantity of fixed scale. FID is printed with 3 decimals: two runs
#: whose FIDs agree within +-0.0005 print the same text, and a verdict compares the printed values.
DECIMALS = {"fid": 3, "paper": 2, "kid": 4, "loss": 5, "weight_error": 5, "norm": 4, "corr": 4, "accuracy": 4,
            "rank": 1, "int": 0}
#: Significant figures for quantities whose scale spans orders of magnitude between profiles.
SIGNIFICANT = {"sharpness": 4, "hessian": 4, "gap": 4}


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


def fmt(x, kind: str, sign: bool = False) -> str:
    """The printed text of ``x`` (see :func:`round_value`)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    plus = "+" if sign else ""
    if kind in SIGNIFICANT:
        return f"{float(x):{plus}.{SIGNIFICANT[kind]}g}"
    return f"{float(x):{plus}.{DECIMALS[kind]}f}"


def with_kinds(df: pd.DataFrame, kinds: dict) -> pd.DataFrame:
    """Attach the rounding kind of each column (``df.attrs["kinds"]``) and return ``df``."""
    df.attrs["kinds"] = dict(kinds)
    return df


def format_table(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with every column of known kind (``df.attrs["kinds"]``: column -> kind) rounded as printed."""
    out = df.copy()
    for column, kind in df.attrs.get("kinds", {}).items():
        if column in out.columns:
            out[column] = [round_value(v, kind) if isinstance(v, (int, float)) and not isinstance(v, bool)
                           else v for v in out[column]]
    return out


def table_text(df: pd.DataFrame) -> str:
    return format_table(df).to_string(na_rep="-")


# ------------------------------------------------------------------------------------------- artifacts
class ArtifactMissing(FileNotFoundError):
    """An artifact of the pipeline is missing; the message names the file and the DVC stage that writes it."""

    def __init__(self, relpath, stage: str | None = None):
        self.relpath, self.stage = str(relpath), stage or layout.stage_of(relpath)
        super().__init__(f"{self.relpath} is missing from the workspace: it is written by the DVC stage "
                         f"'{self.stage}' (run `dvc repro {self.stage}` in the workspace)")


def workspace_path(workspace, relpath="") -> Path:
    return Path(workspace) / relpath


def _require(workspace, relpath) -> Path:
    path = workspace_path(workspace, relpath)
    if not path.is_file():
        raise ArtifactMissing(relpath)
    return path


def _json(workspace, relpath):
    return json.loads(_require(workspace, relpath).read_text())


def load_params(workspace) -> Params:
    """The workspace's params.yaml as typed :class:`flatlib.params.Params` (what the stages read)."""
    path = workspace_path(workspace, "params.yaml")
    if not path.is_file():
        raise FileNotFoundError("params.yaml is missing from the workspace: the notebooks read the parameters "
                                "of the run from the repository's params.yaml (pass workspace = the root)")
    return _parse_params(path)


def load_fid(workspace) -> dict:
    """metrics/fid/V.json of every variant as {extractor, num_samples, rows: {"variant/weights": {"T20": {fid,
    kid_mean, ...}}}}."""
    merged = {"rows": {}}
    for variant in variants(workspace):
        data = _json(workspace, layout.variant_metrics("fid", variant))
        merged.update(extractor=data["extractor"], num_samples=data["num_samples"])
        merged["rows"].update({f"{variant}/{w}": by_t for w, by_t in data["rows"].items()})
    return merged


def load_quant(workspace, variant: str) -> dict:
    """metrics/quant/V.json: {respacing, rows: {weights: {"32"|"8"|"4": {fid, weight_rel_error, ...}}}}."""
    return _json(workspace, layout.variant_metrics("quant", variant))


def load_flatness(workspace, variant: str) -> dict:
    """metrics/flatness/V.json: {weights: {lpf: {sigma: {...}}, curve, hessian_*, [surface]}}."""
    return _json(workspace, layout.variant_metrics("flatness", variant))


def load_exposure(workspace, variant: str) -> dict:
    """metrics/exposure/V.json: {weights: {t, sampling_norm, training_norm, gap, gap_aggregate, ...}}."""
    return _json(workspace, layout.variant_metrics("exposure", variant))


def load_rho_sweep(workspace) -> dict:
    """metrics/rho_sweep.json: {steps, sigma, respacing, rows: {rho: {fid, mc_sharpness, base_loss, lpf}}}."""
    return _json(workspace, layout.RHO_SWEEP_METRICS)


def load_featurenet(workspace) -> dict:
    return _json(workspace, layout.FEATURENET_METRICS)


def load_training_log(workspace, variant: str, phase: str = "train") -> pd.DataFrame:
    """The log.csv of a variant's training run (``phase="train"``) or its SWA phase (``phase="swa"``)."""
    return pd.read_csv(_require(workspace, layout.run_dir(variant, phase) / layout.RUN_LOG))


def sample_grid_path(workspace, variant: str, weights: str, respacing: int) -> Path:
    return _require(workspace, layout.samples_file(variant, weights, respacing, ".png"))


def quant_grid_path(workspace, variant: str, weights: str, respacing: int, bits: int) -> Path:
    return _require(workspace, layout.quant_grid_file(variant, weights, respacing, bits))


def variants(workspace) -> list[str]:
    return list(load_params(workspace).variants)


def weights_kinds(workspace) -> list[str]:
    return list(load_params(workspace).sample.weights)


def rows(workspace) -> list[tuple[str, str]]:
    """The (variant, weights) rows this workspace's params define: the paper's order first, extras after."""
    params = load_params(workspace)
    wanted = [(v, w) for v in params.variants for w in params.sample.weights]
    return [r for r in layout.PAPER_ROWS if r in wanted] + [r for r in wanted if r not in layout.PAPER_ROWS]


def paper_dataset(workspace) -> str:
    """The paper column to compare with: LSUN Tower / FFHQ for those image folders, else CIFAR-10."""
    data = load_params(workspace).data
    path = str(data.path or "").lower()
    if data.name == "image_folder" and "lsun" in path:
        return "LSUN Tower"
    if data.name == "image_folder" and "ffhq" in path:
        return "FFHQ"
    return "CIFAR-10"


def flatness_entries(workspace) -> dict:
    """{label: entry} over every (variant, weights) of the flatness artifacts, in Table 1 order."""
    data = {v: load_flatness(workspace, v) for v in variants(workspace)}
    return {layout.label(v, w): data[v][w] for v, w in rows(workspace) if w in data[v]}


def exposure_entries(workspace) -> list[tuple[str, str, dict]]:
    """(variant, weights, entry) over every row of the exposure artifacts, in Table 1 order."""
    data = {v: load_exposure(workspace, v) for v in variants(workspace)}
    return [(v, w, data[v][w]) for v, w in rows(workspace) if w in data[v]]


def mean_rise(entry: dict, landscape: str) -> float:
    """Mean of L - L(theta) over a landscape of a flatness entry: ``"curve"`` (1-D, every direction and a)
    or ``"surface"`` (the 2-D grid); NaN when it was not measured."""
    measured = entry.get(landscape)
    if not measured:
        return float("nan")
    return float(np.mean(np.asarray(measured["losses"], dtype=float)) - measured["base_loss"])
