"""Paper numbers, rounding rules and loaders of the pipeline's artifacts (a missing file raises
ArtifactMissing naming the DVC stage that writes it)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml


# ------------------------------------------------------------------------------------------ paper facts
RESPACINGS = (20, 100)
DATASETS = ("CIFAR-10", "LSUN Tower", "FFHQ")
#: Table 1 of arXiv 2503.11078 (FID, lower is better): row -> data set -> (T'=20, T'=100).
PAPER_TABLE1 = {
    "ADM":      {"CIFAR-10": (34.47, 8.80), "LSUN Tower": (36.65, 8.57), "FFHQ": (30.81, 7.53)},
    "+EMA":     {"CIFAR-10": (10.63, 4.06), "LSUN Tower": (7.87, 2.49), "FFHQ": (19.03, 6.19)},
    "+SWA":     {"CIFAR-10": (11.00, 3.78), "LSUN Tower": (8.72, 2.31), "FFHQ": (17.93, 5.49)},
    "+IP":      {"CIFAR-10": (20.11, 7.23), "LSUN Tower": (25.77, 7.00), "FFHQ": (15.03, 13.55)},
    "+IP+EMA":  {"CIFAR-10": (9.10, 3.46), "LSUN Tower": (7.66, 2.43), "FFHQ": (11.72, 4.00)},
    "+IP+SWA":  {"CIFAR-10": (9.04, 3.07), "LSUN Tower": (8.55, 2.34), "FFHQ": (12.99, 3.54)},
    "+SAM":     {"CIFAR-10": (9.01, 3.83), "LSUN Tower": (16.02, 4.79), "FFHQ": (11.59, 5.29)},
    "+SAM+EMA": {"CIFAR-10": (7.00, 3.18), "LSUN Tower": (6.66, 2.30), "FFHQ": (11.41, 5.04)},
    "+SAM+SWA": {"CIFAR-10": (7.27, 2.96), "LSUN Tower": (6.50, 2.27), "FFHQ": (12.15, 4.17)},
}
#: CIFAR-10, T'=20: FID at full precision (32) and with 8-bit weights.
PAPER_QUANT_8BIT = {"ADM": {32: 34.47, 8: 48.02}, "+SAM": {32: 9.01, 8: 8.94}}
#: Exposure-bias gap of the predicted-noise norm (sampling minus training), CIFAR-10.
PAPER_EXPOSURE_GAP = {"ADM": 11.39, "+SAM": 3.32}

#: A Table 1 row is a (variant, weights) pair of the pipeline, in the paper's order.
ROWS = [("adm", "raw"), ("adm", "ema"), ("adm", "swa"), ("ip", "raw"), ("ip", "ema"), ("ip", "swa"),
        ("sam", "raw"), ("sam", "ema"), ("sam", "swa")]
LABELS = dict(zip(ROWS, PAPER_TABLE1))
#: the rows of the flatness comparison "explicit (SAM) vs indirect (EMA, SWA, IP) flatness"
FLATNESS_ROWS = ["ADM", "+EMA", "+SWA", "+IP", "+SAM"]

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


def _kinds(df: pd.DataFrame, kinds: dict) -> pd.DataFrame:
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

    def __init__(self, relpath: str, stage: str):
        self.relpath, self.stage = relpath, stage
        super().__init__(f"{relpath} is missing from the workspace: it is written by the DVC stage "
                         f"'{stage}' (run `dvc repro {stage}` in the workspace)")


def _ws(workspace) -> Path:
    return Path(workspace)


def _require(workspace, relpath: str, stage: str) -> Path:
    path = _ws(workspace) / relpath
    if not path.is_file():
        raise ArtifactMissing(relpath, stage)
    return path


def _json(workspace, relpath: str, stage: str):
    return json.loads(_require(workspace, relpath, stage).read_text())


def load_params(workspace) -> dict:
    path = _ws(workspace) / "params.yaml"
    if not path.is_file():
        raise FileNotFoundError("params.yaml is missing from the workspace: the notebooks read the parameters "
                                "of the run from the repository's params.yaml (pass workspace = the root)")
    return yaml.safe_load(path.read_text()) or {}


def load_fid(workspace) -> dict:
    """metrics/fid.json: {extractor, num_samples, rows: {"variant/weights": {"T20": {fid, kid_mean, ...}}}}."""
    return _json(workspace, "metrics/fid.json", "fid")


def load_quant(workspace, variant: str) -> dict:
    """metrics/quant/V.json: {respacing, rows: {weights: {"32"|"8"|"4": {fid, weight_rel_error, ...}}}}."""
    return _json(workspace, f"metrics/quant/{variant}.json", f"quant@{variant}")


def load_flatness(workspace, variant: str) -> dict:
    """metrics/flatness/V.json: {weights: {lpf: {sigma: {...}}, curve, hessian_*, [surface]}}."""
    return _json(workspace, f"metrics/flatness/{variant}.json", f"flatness@{variant}")


def load_exposure(workspace, variant: str) -> dict:
    """metrics/exposure/V.json: {weights: {t, sampling_norm, training_norm, gap, gap_aggregate, ...}}."""
    return _json(workspace, f"metrics/exposure/{variant}.json", f"exposure@{variant}")


def load_rho_sweep(workspace) -> dict:
    """metrics/rho_sweep.json: {steps, sigma, respacing, rows: {rho: {fid, mc_sharpness, base_loss, lpf}}}."""
    return _json(workspace, "metrics/rho_sweep.json", "rho_sweep")


def load_featurenet(workspace) -> dict:
    return _json(workspace, "metrics/featurenet.json", "featurenet")


def load_training_log(workspace, variant: str, phase: str = "train") -> pd.DataFrame:
    """runs/V/log.csv (``phase="train"``) or runs/V_swa/log.csv (``phase="swa"``)."""
    folder, stage = (f"runs/{variant}", f"train@{variant}") if phase == "train" else \
        (f"runs/{variant}_swa", f"swa@{variant}")
    return pd.read_csv(_require(workspace, f"{folder}/log.csv", stage))


def sample_grid_path(workspace, variant: str, weights: str, respacing: int) -> Path:
    return _require(workspace, f"samples/{variant}/{weights}_T{respacing}.png", f"sample@{variant}")


def quant_grid_path(workspace, variant: str, weights: str, respacing: int, bits: int) -> Path:
    return _require(workspace, f"samples/quant/{variant}/{weights}_T{respacing}_{bits}bit.png", f"quant@{variant}")


def variants(workspace) -> list[str]:
    return list(load_params(workspace).get("variants", {"adm": {}, "ip": {}, "sam": {}}))


def weights_kinds(workspace) -> list[str]:
    return list(load_params(workspace).get("sample", {}).get("weights", ["raw", "ema", "swa"]))


def label(variant: str, weights: str) -> str:
    return LABELS.get((variant, weights), f"{variant}/{weights}")


def rows(workspace) -> list[tuple[str, str]]:
    """The (variant, weights) rows this workspace's params define: the paper's order first, extras after."""
    wanted = [(v, w) for v in variants(workspace) for w in weights_kinds(workspace)]
    return [r for r in ROWS if r in wanted] + [r for r in wanted if r not in ROWS]


def paper_dataset(workspace) -> str:
    """The paper column to compare with: LSUN Tower / FFHQ for those image folders, else CIFAR-10."""
    data = load_params(workspace).get("data", {})
    path = str(data.get("path") or "").lower()
    if data.get("name") == "image_folder" and "lsun" in path:
        return "LSUN Tower"
    if data.get("name") == "image_folder" and "ffhq" in path:
        return "FFHQ"
    return "CIFAR-10"


def paper_fid(row: str, respacing: int, dataset: str = "CIFAR-10") -> float:
    values = PAPER_TABLE1.get(row, {}).get(dataset)
    return values[RESPACINGS.index(respacing)] if values and respacing in RESPACINGS else float("nan")
