"""Presentation layer: the notebooks' tables, figures and claim verdicts, computed from pipeline artifacts.

Every function takes the WORKSPACE (the repository root a ``dvc repro`` ran in; the notebooks pass
``workspace = ".."``) and reads only what the DVC stages wrote there (see :mod:`flatlib.pipeline`). The
notebooks stay short and call this module; nothing here trains, samples or measures.

API
    paper numbers   PAPER_TABLE1, PAPER_QUANT_8BIT, PAPER_EXPOSURE_GAP, paper_table1()
    loaders         load_params, load_fid, load_quant, load_flatness, load_exposure, load_rho_sweep,
                    load_featurenet, load_training_log, sample_grid_path, quant_grid_path
                    (a missing file raises ArtifactMissing, a FileNotFoundError naming the file and the
                    DVC stage that writes it)
    tables          table1, rank_agreement, quant_table, flatness_table, exposure_table, rho_table
                    (pandas DataFrames, full precision; ``show_table`` prints them rounded as plain text
                    and writes ``reports/tables/NAME.csv``)
    figures         plot_samples, plot_quant_samples, plot_fid_vs_paper, plot_training_loss,
                    plot_loss_curves, plot_loss_surfaces, plot_hessian, plot_noise_norms,
                    plot_exposure_gap, plot_rho_sweep (each saves ``reports/figures/NAME.png`` with
                    deterministic bytes, ``figure_path`` gives it, shows it inline under IPython and
                    returns None, so nothing but the image lands in the cell's output)
    claims          claims(workspace, group=None) -> DataFrame(claim, paper, measured, rule, verdict);
                    print_claims, print_verdicts, print_profile_note, print_choices

Printed text is what CI compares (nbval compares text/plain and stream outputs, never image/png), so
every number is printed rounded (DECIMALS / SIGNIFICANT) and every verdict is decided on those rounded
values: a claim "A < B" holds when the printed A is strictly below the printed B; a tie counts against
the claim. Nothing printed holds a timing or an absolute path.
"""
from __future__ import annotations

import functools
import io
import json
import math
import re
from pathlib import Path

import matplotlib
import matplotlib.style
import matplotlib.ticker
import numpy as np
import pandas as pd
import yaml
from matplotlib.figure import Figure

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


# ------------------------------------------------------------------------------------------------ tables
def paper_table1() -> pd.DataFrame:
    """The paper's Table 1: nine rows x (CIFAR-10, LSUN Tower, FFHQ) x T' in (20, 100)."""
    data = {f"{d} T'={t}": [PAPER_TABLE1[r][d][i] for r in PAPER_TABLE1] for d in DATASETS
            for i, t in enumerate(RESPACINGS)}
    return pd.DataFrame(data, index=pd.Index(list(PAPER_TABLE1), name="method"))


def _ranks(values) -> np.ndarray:
    return pd.Series(values, dtype=float).rank(method="average").to_numpy()


def table1(workspace, dataset: str | None = None) -> pd.DataFrame:
    """Table 1 reproduced: per row and T', the paper's FID beside the measured one, and both ranks (1 = best).

    Measured FIDs use the workspace's extractor and sample count (``load_fid``); only the ranks are
    comparable with the paper unless the run used Inception features on 50,000 samples.
    """
    dataset = dataset or paper_dataset(workspace)
    fid = load_fid(workspace)["rows"]
    index = [r for r in rows(workspace) if f"{r[0]}/{r[1]}" in fid]
    respacings = sorted({int(k[1:]) for r in index for k in fid[f"{r[0]}/{r[1]}"]})
    table, kinds = {}, {}
    for t in respacings:
        paper = [paper_fid(label(*r), t, dataset) for r in index]
        measured = [fid[f"{r[0]}/{r[1]}"].get(f"T{t}", {}).get("fid", float("nan")) for r in index]
        table[f"paper T'={t}"], table[f"measured T'={t}"] = paper, measured
        table[f"paper rank T'={t}"] = _ranks(paper)
        table[f"measured rank T'={t}"] = _ranks([round_value(m, "fid") for m in measured])
        kinds.update({f"measured T'={t}": "fid", f"paper rank T'={t}": "rank", f"measured rank T'={t}": "rank"})
    df = pd.DataFrame(table, index=pd.Index([label(*r) for r in index], name="method"))
    df.attrs["dataset"] = dataset
    return _kinds(df, kinds)


def rank_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation between the paper's and the measured FIDs of ``table1``, per T'."""
    out = {}
    for column in table.columns:
        m = re.fullmatch(r"paper T'=(\d+)", column)
        if not m:
            continue
        t = m.group(1)
        pair = table[[f"paper T'={t}", f"measured T'={t}"]].dropna()
        if len(pair) < 2:
            continue
        a, b = _ranks(pair.iloc[:, 0]), _ranks(pair.iloc[:, 1].map(lambda v: round_value(v, "fid")))
        rho = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
        out[f"T'={t}"] = {"rows": len(pair), "Spearman rho": rho}
    df = pd.DataFrame.from_dict(out, orient="index", columns=["rows", "Spearman rho"])
    df.index.name = "respacing"
    return _kinds(df, {"Spearman rho": "corr", "rows": "int"})


def quant_table(workspace) -> pd.DataFrame:
    """Per row: FID at 32 bits and each quantized width, the FID change, the relative weight error, and the
    paper's CIFAR-10 T'=20 values (ADM and +SAM, 8 bits)."""
    records, kinds, respacing = [], {}, None
    for variant in variants(workspace):
        q = load_quant(workspace, variant)
        respacing = q.get("respacing", respacing)
        for weights, by_bits in q["rows"].items():
            bits = sorted((int(b) for b in by_bits), reverse=True)
            rec = {"method": label(variant, weights)}
            for b in bits:
                rec[f"FID {b}-bit"] = by_bits[str(b)]["fid"]
                kinds[f"FID {b}-bit"] = "fid"
            for b in bits[1:]:
                rec[f"dFID {b}-bit"] = round_value(by_bits[str(b)]["fid"], "fid") - round_value(
                    by_bits["32"]["fid"], "fid") if "32" in by_bits else float("nan")
                rec[f"weight err {b}-bit"] = by_bits[str(b)].get("weight_rel_error", float("nan"))
                kinds.update({f"dFID {b}-bit": "fid", f"weight err {b}-bit": "weight_error"})
            paper = PAPER_QUANT_8BIT.get(rec["method"], {})
            rec["paper FID 32-bit"], rec["paper FID 8-bit"] = paper.get(32, float("nan")), paper.get(8, float("nan"))
            records.append(rec)
    order = {label(*r): i for i, r in enumerate(rows(workspace))}
    df = pd.DataFrame(records).set_index("method")
    df = df.loc[sorted(df.index, key=lambda m: order.get(m, len(order)))]
    df.attrs["respacing"] = respacing
    return _kinds(df, kinds)


def _curve_rise(entry: dict) -> float:
    """Mean over directions and alphas of L(theta + a d) - L(theta) on the 1-D curve."""
    curve = entry.get("curve")
    if not curve:
        return float("nan")
    return float(np.mean(np.asarray(curve["losses"], dtype=float)) - curve["base_loss"])


def _surface_rise(entry: dict) -> float:
    surface = entry.get("surface")
    if not surface:
        return float("nan")
    return float(np.mean(np.asarray(surface["losses"], dtype=float)) - surface["base_loss"])


def _flatness_entries(workspace) -> dict:
    """{label: entry} over every (variant, weights) of the flatness artifacts, in Table 1 order."""
    data = {v: load_flatness(workspace, v) for v in variants(workspace)}
    return {label(v, w): data[v][w] for v, w in rows(workspace) if w in data[v]}


def sigmas(workspace) -> list[str]:
    """The LPF/MC sigmas measured (JSON keys, e.g. "0.01"), ascending."""
    found = {s for entry in _flatness_entries(workspace).values() for s in entry.get("lpf", {})}
    return sorted(found, key=float)


def flatness_table(workspace) -> pd.DataFrame:
    """Per row: base loss L(theta), LPF_sigma and MC sharpness (LPF - L, with the LPF's standard error) per
    sigma, mean rise of the 1-D loss curve, Hessian top eigenvalue (and whether power iteration converged)
    and Hutchinson trace."""
    records, kinds = [], {"base loss": "loss", "1-D curve rise": "sharpness", "Hessian top eig": "hessian",
                          "Hessian trace": "hessian", "trace std err": "hessian"}
    for name, entry in _flatness_entries(workspace).items():
        lpf = entry.get("lpf", {})
        rec = {"method": name, "base loss": next(iter(lpf.values()))["base_loss"] if lpf else float("nan")}
        for s in sorted(lpf, key=float):
            rec[f"LPF s={s}"] = lpf[s]["lpf"]
            rec[f"MC sharp s={s}"] = lpf[s]["mc_sharpness"]
            rec[f"LPF std err s={s}"] = lpf[s].get("std_err", float("nan"))
            kinds.update({f"LPF s={s}": "loss", f"MC sharp s={s}": "sharpness", f"LPF std err s={s}": "sharpness"})
        rec["1-D curve rise"] = _curve_rise(entry)
        top = entry.get("hessian_top_eigenvalue") or {}
        rec["Hessian top eig"] = top.get("eigenvalue", float("nan"))
        rec["converged"] = top.get("converged", "-") if top else "-"
        trace = entry.get("hessian_trace") or {}
        rec["Hessian trace"] = trace.get("trace", float("nan"))
        rec["trace std err"] = trace.get("std_err", float("nan"))
        records.append(rec)
    return _kinds(pd.DataFrame(records).set_index("method"), kinds)


def exposure_table(workspace) -> pd.DataFrame:
    """Per row: the exposure gap (sampling minus training predicted-noise norm) reduced over steps as
    configured, its mean and max, the mean norms, the norm of unit-variance noise for scale, and the
    paper's gap (ADM, +SAM)."""
    records, aggregates = [], set()
    for variant in variants(workspace):
        data = load_exposure(workspace, variant)
        for weights, e in data.items():
            aggregates.add(e.get("aggregate", "mean"))
            records.append({"method": label(variant, weights), "gap": e["gap_aggregate"], "gap mean": e["gap_mean"],
                            "gap max": e["gap_max"], "sampling norm": float(np.mean(e["sampling_norm"])),
                            "training norm": float(np.mean(e["training_norm"])),
                            "unit noise norm": e.get("unit_noise_norm", float("nan")),
                            "paper gap": PAPER_EXPOSURE_GAP.get(label(variant, weights), float("nan"))})
    order = {label(*r): i for i, r in enumerate(rows(workspace))}
    df = pd.DataFrame(records).set_index("method")
    df = df.loc[sorted(df.index, key=lambda m: order.get(m, len(order)))]
    agg = "/".join(sorted(aggregates))
    df = df.rename(columns={"gap": f"gap ({agg})"})
    if agg == "mean":
        df = df.drop(columns="gap mean")
    df.attrs["aggregate"] = agg
    return _kinds(df, {f"gap ({agg})": "gap", "gap mean": "gap", "gap max": "gap", "sampling norm": "norm",
                       "training norm": "norm", "unit noise norm": "norm"})


def rho_table(workspace) -> pd.DataFrame:
    """Per rho (0 = the ADM run, the SAM run's rho, the extra SAM runs): FID, base loss, LPF, MC sharpness,
    all at ``rho_sweep.steps`` training steps and ``rho_sweep.sigma``."""
    data = load_rho_sweep(workspace)
    records = [{"rho": float(rho), "FID": r["fid"], "base loss": r["base_loss"], "LPF": r["lpf"],
                "MC sharpness": r["mc_sharpness"]} for rho, r in data["rows"].items()]
    df = pd.DataFrame(records).sort_values("rho").set_index("rho")
    df.attrs.update(steps=data.get("steps"), sigma=data.get("sigma"), respacing=data.get("respacing"))
    return _kinds(df, {"FID": "fid", "base loss": "loss", "LPF": "loss", "MC sharpness": "sharpness"})


def _csv_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def show_table(df: pd.DataFrame, workspace, name: str, title: str | None = None) -> None:
    """Print ``df`` rounded as plain text and write it at full precision to reports/tables/NAME.csv."""
    path = _ws(workspace) / "reports" / "tables" / f"{_csv_safe(name)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)
    if title:
        print(title)
    print(table_text(df))


# ----------------------------------------------------------------------------------------------- figures
DPI = 100
STYLE = {"figure.dpi": DPI, "savefig.dpi": DPI, "font.family": "DejaVu Sans", "font.size": 9,
         "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 7, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.4,
         "axes.prop_cycle": matplotlib.cycler(color=matplotlib.colormaps["tab10"].colors),
         "image.interpolation": "nearest", "svg.hashsalt": "flatlib"}
#: one colour per Table 1 row, one line style per weights kind
ROW_COLORS = {name: matplotlib.colormaps["tab10"](i) for i, name in enumerate(PAPER_TABLE1)}
WEIGHT_STYLES = {"raw": "-", "ema": "--", "swa": ":"}
WEIGHT_MARKERS = {"raw": "o", "ema": "s", "swa": "D"}


def styled(plot):
    """Draw ``plot`` under matplotlib's default style plus STYLE, whatever the user's rcParams, so that the
    figures' bytes depend only on the data."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with matplotlib.style.context(["default", STYLE]):
            return plot(*args, **kwargs)
    return wrapper


def _subplots(*args, figsize, layout=None, **kwargs):
    """A pyplot-free figure: no backend switch, nothing left open, inline display stays the user's."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*args, **kwargs)


def figure_bytes(fig) -> bytes:
    """PNG bytes of ``fig``: fixed dpi, no 'Software' (version) or date metadata, so equal figures give
    equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def figure_path(workspace, name: str) -> Path:
    return _ws(workspace) / "reports" / "figures" / f"{name}.png"


def save_figure(fig, workspace, name: str, show: bool = True) -> Path:
    """Save ``fig`` as reports/figures/NAME.png, show it inline (under IPython) and close it.

    The plot_* functions call this and return None: a value left as a cell's last expression would become
    compared text/plain output (nbval runs cells without history, so a trailing ';' does not hide it)."""
    data = figure_bytes(fig)
    path = figure_path(workspace, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if show:
        _display_png(data)
    return path


def _display_png(data: bytes) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=data, format="png"))


def _row_color(name: str):
    return ROW_COLORS.get(name, "black")


def _row_style(variant: str, weights: str) -> dict:
    return dict(color=_row_color(label(variant, "raw")), linestyle=WEIGHT_STYLES.get(weights, "-"))


def _image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16") else im.convert("RGB"))


def _imshow(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _image_grid(panels: list[list[tuple[np.ndarray, str]]], suptitle: str, width: float = 3.2):
    nrows, ncols = len(panels), max(len(r) for r in panels)
    h, w = panels[0][0][0].shape[:2]
    fig, axes = _subplots(nrows, ncols, figsize=(width * ncols, (width * h / w + 0.45) * nrows + 0.4),
                             squeeze=False)
    for i, row in enumerate(panels):
        for j in range(ncols):
            if j < len(row):
                _imshow(axes[i][j], *row[j])
            else:
                axes[i][j].axis("off")
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


@styled
def plot_samples(workspace, respacing: int, show: bool = True) -> None:
    """The sample grids of every Table 1 row at T' (variants as rows, weights as columns)."""
    weights = weights_kinds(workspace)
    panels = [[(_image(sample_grid_path(workspace, v, w, respacing)), f"{label(v, w)}  (T'={respacing})")
               for w in weights] for v in variants(workspace)]
    fig = _image_grid(panels, f"Samples at T'={respacing} (rows: training variant; columns: raw / EMA / SWA weights)")
    save_figure(fig, workspace, f"samples_T{respacing}", show)


@styled
def plot_quant_samples(workspace, weights: str = "raw", show: bool = True) -> None:
    """Samples of each variant at full precision and with quantized weights (same seeds)."""
    panels, respacing = [], None
    for v in variants(workspace):
        q = load_quant(workspace, v)
        respacing = q["respacing"]
        bits = sorted((int(b) for b in q["rows"][weights] if b != "32"), reverse=True)
        row = [(_image(sample_grid_path(workspace, v, weights, respacing)), f"{label(v, weights)}  32-bit")]
        row += [(_image(quant_grid_path(workspace, v, weights, respacing, b)), f"{label(v, weights)}  {b}-bit")
                for b in bits]
        panels.append(row)
    fig = _image_grid(panels, f"Samples with and without weight quantization (T'={respacing}, same seeds)")
    save_figure(fig, workspace, f"quant_samples_{weights}", show)


@styled
def plot_fid_vs_paper(workspace, show: bool = True) -> None:
    """Measured FID per Table 1 row (dots, one panel per T'); the paper's FIDs are in the row labels. At a
    small profile the ORDER of the rows is what can be compared with the paper."""
    table = table1(workspace)
    ts = [int(c.split("=")[1]) for c in table.columns if c.startswith("measured T'=")]
    names = list(table.index)
    variant_of = {label(v, w): (v, w) for v, w in rows(workspace)}
    fig, axes = _subplots(1, len(ts), figsize=(4.2 * len(ts) + 1.6, 0.32 * len(names) + 1.4), squeeze=False,
                             sharey=True)
    y = np.arange(len(names))
    for ax, t in zip(axes[0], ts):
        for k, name in enumerate(names):
            v, w = variant_of.get(name, (name, "raw"))
            ax.plot([table.loc[name, f"measured T'={t}"]], [y[k]], marker=WEIGHT_MARKERS.get(w, "o"),
                    color=_row_color(label(v, "raw")), linestyle="none")
        ax.set_title(f"T'={t}")
        ax.set_xlabel("measured FID (lower is better)")
    paper_columns = ["paper T'=%d" % t for t in ts]
    paper = [" / ".join(fmt(table.loc[n, c], "paper") for c in paper_columns) for n in names]
    axes[0][0].set_yticks(y, [f"{n}  [paper {p}]" for n, p in zip(names, paper)])
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Table 1: measured FID per row (paper {table.attrs['dataset']} FID at T'="
                 + "/".join(str(t) for t in ts) + " in brackets)")
    fig.tight_layout()
    save_figure(fig, workspace, "fid_vs_paper", show)


@styled
def plot_training_loss(workspace, show: bool = True) -> None:
    """Training loss (hybrid) and L_simple (mse) from log.csv: main runs solid, SWA phases dashed."""
    fig, axes = _subplots(1, 2, figsize=(10, 3.6))
    for v in variants(workspace):
        color = _row_color(label(v, "raw"))
        for phase, style in (("train", "-"), ("swa", "--")):
            try:
                log = load_training_log(workspace, v, phase)
            except ArtifactMissing:
                if phase == "train":
                    raise
                continue
            for ax, column in zip(axes, ("loss", "mse")):
                if column in log:
                    ax.plot(log["step"], log[column], style, color=color, marker=".",
                            label=f"{label(v, 'raw')} {'SWA phase' if phase == 'swa' else 'training'}")
    for ax, title in zip(axes, ("training loss (L_simple + L_vlb)", "L_simple (eps MSE)")):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, workspace, "training_loss", show)


@styled
def plot_loss_curves(workspace, show: bool = True) -> None:
    """Loss under weight perturbation L(theta + a d) along filter-normalised random directions (mean over
    directions), every Table 1 row on one plot; right: the rise L(theta + a d) - L(theta)."""
    entries = _flatness_entries(workspace)
    fig, axes = _subplots(1, 2, figsize=(11, 4.0))
    for (v, w) in rows(workspace):
        entry = entries.get(label(v, w))
        if not entry or not entry.get("curve"):
            continue
        curve = entry["curve"]
        alphas, losses = np.asarray(curve["alphas"]), np.asarray(curve["losses"], dtype=float).mean(axis=0)
        axes[0].plot(alphas, losses, label=label(v, w), **_row_style(v, w))
        axes[1].plot(alphas, losses - curve["base_loss"], label=label(v, w), **_row_style(v, w))
    axes[0].set_title("loss under weight perturbation L(theta + a d)")
    axes[1].set_title("rise over the minimum L(theta + a d) - L(theta)")
    for ax in axes:
        ax.set_xlabel("a (filter-normalised direction d)")
    axes[0].set_ylabel("loss (L_simple)")
    axes[1].legend(ncol=3)
    fig.tight_layout()
    save_figure(fig, workspace, "loss_curves_1d", show)


@styled
def plot_loss_surfaces(workspace, show: bool = True) -> None:
    """2-D loss surfaces (ADM vs ADM+SAM in the paper) as contour plots with one shared colour scale."""
    entries = [(name, e["surface"]) for name, e in _flatness_entries(workspace).items() if e.get("surface")]
    if not entries:
        raise ArtifactMissing("metrics/flatness/*.json (a 'surface' entry)", "flatness@adm")
    losses = [np.asarray(s["losses"], dtype=float) for _, s in entries]
    lo, hi = min(float(x.min()) for x in losses), max(float(x.max()) for x in losses)
    levels = np.linspace(lo, hi if hi > lo else lo + 1e-12, 16)
    fig, axes = _subplots(1, len(entries), figsize=(4.4 * len(entries) + 1.2, 4.2), squeeze=False,
                             layout="constrained")
    cs = None
    for ax, (name, s), z in zip(axes[0], entries, losses):
        a, b = np.asarray(s["alphas"], dtype=float), np.asarray(s["betas"], dtype=float)
        cs = ax.contourf(b, a, z, levels=levels, cmap="viridis")   # z[i, j] = L(alpha_i, beta_j)
        ax.contour(b, a, z, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
        ax.plot([0], [0], marker="x", color="red")
        ax.set_title(f"{name}: L(theta + a d1 + b d2)")
        ax.set_xlabel("b")
        ax.set_ylabel("a")
        ax.grid(False)
    fig.colorbar(cs, ax=list(axes[0]), label="loss (L_simple), shared scale")
    fig.suptitle("2-D loss surfaces around the minimum (same directions seed, same data)")
    save_figure(fig, workspace, "loss_surfaces_2d", show)


@styled
def plot_hessian(workspace, show: bool = True) -> None:
    """Hessian top eigenvalue and trace (with Hutchinson standard error) per Table 1 row."""
    table = flatness_table(workspace)
    names = list(table.index)
    variant_of = {label(v, w): v for v, w in rows(workspace)}
    colors = [_row_color(label(variant_of[n], "raw")) if n in variant_of else "grey" for n in names]
    fig, axes = _subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(names))
    axes[0].bar(x, table["Hessian top eig"], color=colors)
    axes[0].set_title("Hessian top eigenvalue (power iteration)")
    axes[1].bar(x, table["Hessian trace"], yerr=table["trace std err"], color=colors, capsize=3)
    axes[1].set_title("Hessian trace (Hutchinson, +- std err)")
    for ax in axes:
        ax.set_xticks(x, names, rotation=45, ha="right")
    fig.tight_layout()
    save_figure(fig, workspace, "hessian", show)


def _exposure_entries(workspace) -> list[tuple[str, str, dict]]:
    data = {v: load_exposure(workspace, v) for v in variants(workspace)}
    return [(v, w, data[v][w]) for v, w in rows(workspace) if w in data[v]]


@styled
def plot_noise_norms(workspace, show: bool = True) -> None:
    """Norm of the predicted noise per sampling step: on the model's own chain (sampling) vs on forward-noised
    real images (training), one panel per Table 1 row; sampling runs left to right (t = T to 0)."""
    entries = _exposure_entries(workspace)
    ncols = len(weights_kinds(workspace))
    nrows = -(-len(entries) // ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False, sharex=True,
                             sharey=True)
    for k, (v, w, e) in enumerate(entries):
        ax = axes[k // ncols][k % ncols]
        ax.plot(e["t"], e["sampling_norm"], color="tab:red", label="sampling chain")
        ax.plot(e["t"], e["training_norm"], color="tab:blue", linestyle="--", label="training (forward process)")
        ax.set_title(f"{label(v, w)}: gap {fmt(e['gap_aggregate'], 'gap', sign=True)} ({e.get('aggregate', 'mean')})")
    axes[0][0].invert_xaxis()  # shared x: every panel runs from t = T to t = 0
    for ax in axes[-1]:
        ax.set_xlabel("t (sampling runs left to right)")
    for row in axes:
        row[0].set_ylabel("mean ||eps_theta(x_t, t)||")
    for k in range(len(entries), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    axes[0][0].legend()
    fig.suptitle("Predicted-noise norm: sampling vs training (exposure bias)")
    fig.tight_layout()
    save_figure(fig, workspace, "noise_norms", show)


@styled
def plot_exposure_gap(workspace, show: bool = True) -> None:
    """The gap (sampling minus training norm) per step, every Table 1 row on one plot."""
    fig, ax = _subplots(figsize=(7.5, 4.0))
    for v, w, e in _exposure_entries(workspace):
        ax.plot(e["t"], e["gap"], label=label(v, w), **_row_style(v, w))
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.invert_xaxis()
    ax.set_xlabel("t (sampling runs left to right)")
    ax.set_ylabel("sampling norm - training norm")
    ax.set_title("Exposure gap of the predicted-noise norm per step")
    ax.legend(ncol=3)
    fig.tight_layout()
    save_figure(fig, workspace, "exposure_gap", show)


@styled
def plot_rho_sweep(workspace, show: bool = True) -> None:
    """FID and MC sharpness against SAM's rho (rho = 0: plain Adam, the ADM run)."""
    table = rho_table(workspace)
    rhos = table.index.to_numpy(dtype=float)
    positive = rhos[rhos > 0]
    fig, axes = _subplots(1, 2, figsize=(10, 3.6))
    for ax, column in zip(axes, ("FID", "MC sharpness")):
        ax.plot(rhos, table[column], marker="o", color="tab:purple")
        if len(positive):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set_xticks(rhos, [f"{r:g}" for r in rhos])
        ax.set_xlabel("rho")
        ax.set_title(f"{column} vs rho")
    axes[1].set_title(f"MC sharpness (sigma={table.attrs.get('sigma')}) vs rho")
    fig.suptitle(f"rho sweep at {table.attrs.get('steps')} training steps (T'={table.attrs.get('respacing')})")
    fig.tight_layout()
    save_figure(fig, workspace, "rho_sweep", show)


# ------------------------------------------------------------------------------------------------ claims
class NotEvaluable(Exception):
    """The measurement a claim needs was not configured (e.g. no 8-bit run); not a missing file."""


def _fid(workspace, row: str, respacing: int) -> float:
    fid = load_fid(workspace)["rows"]
    keys = {label(*r): f"{r[0]}/{r[1]}" for r in ROWS}
    key = keys.get(row, row)
    if key not in fid or f"T{respacing}" not in fid[key]:
        raise NotEvaluable(f"no FID for {row} at T'={respacing} in metrics/fid.json")
    return round_value(fid[key][f"T{respacing}"]["fid"], "fid")


def _less(a: float, b: float) -> bool:
    return a < b


def _claim_fid_pair(better: str, worse: str, respacings):
    def check(ws):
        parts, ok = [], True
        for t in respacings:
            a, b = _fid(ws, better, t), _fid(ws, worse, t)
            ok &= _less(a, b)
            parts.append(f"T'={t}: {better} {fmt(a, 'fid')} vs {worse} {fmt(b, 'fid')}")
        return "; ".join(parts), ok
    paper = "CIFAR-10 " + "; ".join(f"T'={t}: {better} {paper_fid(better, t):.2f} vs {worse} "
                                    f"{paper_fid(worse, t):.2f}" for t in respacings)
    where = " and ".join(f"T'={t}" for t in respacings)
    rule = f"FID({better}) < FID({worse}) at {where}, FIDs rounded to {DECIMALS['fid']} decimals (tie fails)"
    return paper, rule, check


def _claim_sam_beats_indirect(ws):
    sam = _fid(ws, "+SAM", 20)
    others = {r: _fid(ws, r, 20) for r in ("+EMA", "+SWA", "+IP")}
    text = f"T'=20: +SAM {fmt(sam, 'fid')} vs " + ", ".join(f"{r} {fmt(v, 'fid')}" for r, v in others.items())
    return text, all(_less(sam, v) for v in others.values())


def _claim_best_is_sam(ws):
    fid = load_fid(ws)["rows"]
    parts, ok = [], True
    for t in RESPACINGS:
        values = {label(*r): round_value(fid[f"{r[0]}/{r[1]}"][f"T{t}"]["fid"], "fid") for r in ROWS
                  if f"{r[0]}/{r[1]}" in fid and f"T{t}" in fid[f"{r[0]}/{r[1]}"]}
        if len(values) < 2:
            raise NotEvaluable(f"fewer than two Table 1 rows at T'={t} in metrics/fid.json")
        best = min(values.values())
        winners = [r for r, v in values.items() if v == best]
        ok &= len(winners) == 1 and winners[0].startswith("+SAM")
        parts.append(f"T'={t}: best {'/'.join(winners)} {fmt(best, 'fid')}")
    return "; ".join(parts), ok


def _claim_mc_sharpness(ws):
    entries = _flatness_entries(ws)
    missing = [r for r in FLATNESS_ROWS if r not in entries]
    if missing:
        raise NotEvaluable(f"no flatness entry for {', '.join(missing)}")
    parts, ok = [], True
    for s in sigmas(ws):
        values = {r: round_value(entries[r]["lpf"][s]["mc_sharpness"], "sharpness") for r in FLATNESS_ROWS
                  if s in entries[r].get("lpf", {})}
        if "+SAM" not in values or len(values) < 2:
            raise NotEvaluable(f"MC sharpness at sigma={s} missing for some rows")
        ok &= all(_less(values["+SAM"], v) for r, v in values.items() if r != "+SAM")
        parts.append(f"sigma={s}: " + ", ".join(f"{r} {fmt(v, 'sharpness')}" for r, v in values.items()))
    if not parts:
        raise NotEvaluable("no LPF sigma measured")
    return "; ".join(parts), ok


def _claim_curve(ws):
    entries = _flatness_entries(ws)
    values = {r: round_value(_curve_rise(entries[r]), "sharpness") for r in FLATNESS_ROWS if r in entries}
    if "+SAM" not in values or any(not math.isfinite(v) for v in values.values()):
        raise NotEvaluable("1-D loss curves missing for some rows")
    ok = all(_less(values["+SAM"], v) for r, v in values.items() if r != "+SAM")
    return "mean rise " + ", ".join(f"{r} {fmt(v, 'sharpness')}" for r, v in values.items()), ok


def _claim_surface(ws):
    entries = _flatness_entries(ws)
    values = {r: round_value(_surface_rise(entries[r]), "sharpness") for r in ("ADM", "+SAM") if r in entries}
    if len(values) < 2 or any(not math.isfinite(v) for v in values.values()):
        raise NotEvaluable("2-D surfaces of ADM and +SAM not both measured (flatness.surface_variants/weights)")
    return (f"mean rise over the grid: ADM {fmt(values['ADM'], 'sharpness')}, +SAM {fmt(values['+SAM'], 'sharpness')}",
            _less(values["+SAM"], values["ADM"]))


def _claim_quant(ws):
    out = {}
    for row, (variant, weights) in (("ADM", ("adm", "raw")), ("+SAM", ("sam", "raw"))):
        q = load_quant(ws, variant)
        by_bits = q["rows"].get(weights, {})
        if "8" not in by_bits or "32" not in by_bits:
            raise NotEvaluable(f"no 8-bit / 32-bit FID for {row} in metrics/quant/{variant}.json")
        f32, f8 = round_value(by_bits["32"]["fid"], "fid"), round_value(by_bits["8"]["fid"], "fid")
        out[row] = (f32, f8, round_value(f8 - f32, "fid"))
    text = "; ".join(f"{r} {fmt(a, 'fid')} -> {fmt(b, 'fid')} ({fmt(d, 'fid', sign=True)})"
                     for r, (a, b, d) in out.items())
    return text, _less(out["+SAM"][2], out["ADM"][2])


def _claim_exposure(ws):
    vals = {}
    for row, (variant, weights) in (("ADM", ("adm", "raw")), ("+SAM", ("sam", "raw"))):
        e = load_exposure(ws, variant).get(weights)
        if e is None:
            raise NotEvaluable(f"no exposure entry for {row}")
        vals[row] = (round_value(e["gap_aggregate"], "gap"), e.get("aggregate", "mean"))
    text = ", ".join(f"{r} {fmt(g, 'gap', sign=True)} ({agg} over steps)" for r, (g, agg) in vals.items())
    return text, _less(vals["+SAM"][0], vals["ADM"][0])


def _claim_rho(ws):
    table = rho_table(ws)
    if len(table) < 2:
        raise NotEvaluable("fewer than two rho values in metrics/rho_sweep.json")
    values = [round_value(v, "sharpness") for v in table["MC sharpness"]]
    ok = all(b < a for a, b in zip(values, values[1:]))
    text = (f"sigma={table.attrs.get('sigma')}, {table.attrs.get('steps')} steps: "
            + ", ".join(f"rho={r:g} {fmt(v, 'sharpness')}" for r, v in zip(table.index, values)))
    return text, ok


def _claim_specs():
    """(id, group, claim, paper evidence, decision rule, check(workspace) -> (measured text, holds))."""
    specs = []
    for cid, better, worse, ts, text in [
            ("sam_T20", "+SAM", "ADM", (20,), "+SAM improves FID over ADM at T'=20"),
            ("sam_T100", "+SAM", "ADM", (100,), "+SAM improves FID over ADM at T'=100"),
            ("sam_ema", "+SAM+EMA", "+EMA", RESPACINGS, "SAM adds to EMA: +SAM+EMA beats +EMA"),
            ("sam_swa", "+SAM+SWA", "+SWA", RESPACINGS, "SAM adds to SWA: +SAM+SWA beats +SWA"),
            ("ema", "+EMA", "ADM", RESPACINGS, "EMA (indirect flatness) improves FID over ADM"),
            ("swa", "+SWA", "ADM", RESPACINGS, "SWA (indirect flatness) improves FID over ADM"),
            ("ip", "+IP", "ADM", RESPACINGS, "Input perturbation improves FID over ADM")]:
        paper, rule, check = _claim_fid_pair(better, worse, ts)
        specs.append((cid, "fid", text, paper, rule, check))
    specs += [
        ("sam_vs_indirect", "fid", "+SAM alone beats each indirect method (+EMA, +SWA, +IP) at T'=20",
         "CIFAR-10 T'=20: +SAM 9.01 vs +EMA 10.63, +SWA 11.00, +IP 20.11",
         f"FID(+SAM) < FID of each of +EMA, +SWA, +IP at T'=20, rounded to {DECIMALS['fid']} decimals",
         _claim_sam_beats_indirect),
        ("best_is_sam", "fid", "The best FID at each T' belongs to a +SAM row",
         "CIFAR-10 T'=20: +SAM+EMA 7.00; T'=100: +SAM+SWA 2.96",
         f"the unique lowest rounded FID among the nine rows is a +SAM row at T'=20 and at T'=100",
         _claim_best_is_sam),
        ("mc_sharpness", "flatness", "+SAM is flatter than ADM and the indirect methods (lowest MC sharpness)",
         "SAM flattens diffusion models more than EMA, SWA and IP (loss under weight perturbation, every method)",
         "MC sharpness LPF_sigma - L of +SAM < that of each of ADM, +EMA, +SWA, +IP at EVERY measured sigma, "
         f"rounded to {SIGNIFICANT['sharpness']} significant figures", _claim_mc_sharpness),
        ("curve_rise", "flatness", "Loss under weight perturbation rises least for +SAM",
         "figure: loss under weight perturbation (CIFAR-10, every method), SAM flattest",
         "mean over a and directions of L(theta + a d) - L(theta) on the 1-D curves: +SAM < each of ADM, +EMA, "
         f"+SWA, +IP, rounded to {SIGNIFICANT['sharpness']} significant figures", _claim_curve),
        ("surface", "flatness", "ADM+SAM's 2-D loss surface is flatter than ADM's",
         "figure: loss surface of ADM vs ADM+SAM",
         "mean over the 2-D grid of L - L(theta): +SAM < ADM (same directions seed and data), "
         f"rounded to {SIGNIFICANT['sharpness']} significant figures", _claim_surface),
        ("quant_8bit", "quant", "8-bit weight quantization hurts +SAM less than ADM",
         "CIFAR-10 T'=20: ADM 34.47 -> 48.02 (+13.55); +SAM 9.01 -> 8.94 (-0.07)",
         "FID(8-bit) - FID(32-bit) of +SAM < that of ADM (raw weights, quant.respacing), FIDs rounded to "
         f"{DECIMALS['fid']} decimals", _claim_quant),
        ("exposure", "exposure", "+SAM has less exposure bias than ADM",
         "CIFAR-10 gap of the predicted-noise norm: ADM +11.39, +SAM +3.32",
         "exposure gap (sampling minus training norm, reduced over steps by exposure.aggregate) of +SAM < that "
         f"of ADM (raw weights), rounded to {SIGNIFICANT['gap']} significant figures", _claim_exposure),
        ("rho", "rho", "A larger rho gives a flatter model (lower MC sharpness)",
         "diffusion models are inherently flat: SAM needs a large rho (README: 0.1) to flatten them further",
         "MC sharpness strictly decreases along the sorted rho values of the sweep (rho = 0 is the ADM run), "
         f"rounded to {SIGNIFICANT['sharpness']} significant figures", _claim_rho),
    ]
    return specs


CLAIM_GROUPS = ("fid", "flatness", "quant", "exposure", "rho")


def claims(workspace, group: str | None = None) -> pd.DataFrame:
    """Every paper claim (or those of ``group``) evaluated on the workspace's artifacts.

    Columns: group, claim, paper (the paper's evidence), measured (the rounded numbers compared), rule (the
    explicit comparison) and verdict: "reproduced" when the rule holds, "not reproduced" when it does not,
    "not evaluated" when the measurement it needs was not configured. A missing artifact raises
    :class:`ArtifactMissing`.
    """
    if group is not None and group not in CLAIM_GROUPS:
        raise ValueError(f"group must be one of {CLAIM_GROUPS}, got {group!r}")
    records = []
    for cid, grp, text, paper, rule, check in _claim_specs():
        if group is not None and grp != group:
            continue
        try:
            measured, holds = check(workspace)
            verdict = "reproduced" if holds else "not reproduced"
        except NotEvaluable as err:
            measured, verdict = f"({err})", "not evaluated"
        records.append(dict(id=cid, group=grp, claim=text, paper=paper, measured=measured, rule=rule,
                            verdict=verdict))
    return pd.DataFrame(records).set_index("id")


def print_claims(df: pd.DataFrame, workspace=None, name: str = "claims") -> None:
    """Each claim as a plain-text block (and, given ``workspace``, reports/tables/NAME.csv)."""
    if workspace is not None:
        path = _ws(workspace) / "reports" / "tables" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(path)
    for cid, r in df.iterrows():
        print(f"[{r['verdict'].upper()}] {r['claim']}  ({cid})")
        print(f"    paper:    {r['paper']}")
        print(f"    measured: {r['measured']}")
        print(f"    rule:     {r['rule']}")


def print_verdicts(df: pd.DataFrame) -> None:
    """Plain sentences from the verdicts: what reproduced at this profile and what did not."""
    counts = df["verdict"].value_counts()
    print(f"{counts.get('reproduced', 0)} of {len(df)} claims reproduced at this profile "
          f"({counts.get('not reproduced', 0)} not reproduced, {counts.get('not evaluated', 0)} not evaluated).")
    for _, r in df.iterrows():
        if r["verdict"] == "reproduced":
            print(f"- Reproduced: {r['claim']}.")
        elif r["verdict"] == "not reproduced":
            print(f"- NOT reproduced at this profile: {r['claim']} (measured: {r['measured']}).")
        else:
            print(f"- Not evaluated: {r['claim']} {r['measured']}.")


def print_extractor_note(workspace) -> None:
    """What the FIDs are computed with (and, for the CPU FeatureNet, how well it classifies)."""
    fid = load_fid(workspace)
    print(f"FID features: {fid.get('extractor')}, {fid.get('num_samples')} samples per row and T'.")
    if fid.get("extractor") == "featurenet":
        acc = load_featurenet(workspace)
        print(f"FeatureNet (trained by the pipeline on the data set): validation accuracy "
              f"{fmt(acc.get('val_acc', float('nan')), 'accuracy')}, training accuracy "
              f"{fmt(acc.get('train_acc', float('nan')), 'accuracy')}. Its FIDs compare rows with each other, "
              "never with the paper's Inception FIDs.")


def is_paper_profile(workspace) -> bool:
    p = load_params(workspace)
    return (p.get("fid", {}).get("extractor") == "inception" and p.get("sample", {}).get("num", 0) >= 50000
            and p.get("data", {}).get("name") in ("cifar10", "image_folder"))


def print_profile_note(workspace) -> None:
    """One generated paragraph saying what the workspace's numbers can and cannot be compared with."""
    p = load_params(workspace)
    data, sample, fid, train = p.get("data", {}), p.get("sample", {}), p.get("fid", {}), p.get("train", {})
    size = data.get("image_size")
    print(f"Profile: {data.get('name')} {size}x{size}, {train.get('steps')} training steps, "
          f"{sample.get('num')} samples per row, FID with {fid.get('extractor')} features "
          f"(paper column: {paper_dataset(workspace)}).")
    if is_paper_profile(workspace):
        print("This is a paper-scale profile: measured FIDs are on the paper's scale.")
    else:
        print("This is not the paper's setting: absolute values are not comparable with the paper; "
              "only the direction of each effect (and the ranking of the rows) is tested.")


# ------------------------------------------------------------------------------------- reproduction choices
CHOICES = {
    "table1_fid": ["data.name", "data.image_size", "model.num_channels", "train.steps", "train.batch_size",
                   "optim.lr", "optim.rho", "optim.adaptive", "variants", "train.ema_rate", "train.ema_warmup",
                   "swa.start_step", "swa.steps", "swa.window", "swa.lr_min", "sample.num", "sample.respacings",
                   "sample.eps_scale", "fid.extractor", "fid.reference_size"],
    "quantization": ["quant.bits", "quant.per_channel", "quant.layer_types", "quant.respacing", "sample.num",
                     "fid.extractor"],
    "flatness": ["flatness.num_triples", "flatness.t_min", "flatness.t_max", "flatness.hybrid_loss",
                 "flatness.sigmas", "flatness.draws", "flatness.filter_relative", "flatness.curve_span",
                 "flatness.curve_points", "flatness.curve_directions", "flatness.surface_variants",
                 "flatness.surface_points", "flatness.hessian_iters", "flatness.hessian_samples", "optim.rho"],
    "exposure": ["exposure.num", "exposure.respacing", "exposure.aggregate", "sample.eps_scale"],
    "rho_sweep": ["optim.rho", "rho_sweep.rhos", "rho_sweep.steps", "rho_sweep.sigma", "rho_sweep.num_samples",
                  "rho_sweep.respacing", "flatness.draws", "fid.extractor"],
    "summary": ["data.name", "train.steps", "sample.num", "fid.extractor", "optim.rho", "optim.adaptive",
                "swa.window", "quant.per_channel", "flatness.sigmas", "flatness.hybrid_loss", "exposure.aggregate"],
}


def _comments(text: str) -> dict:
    """'section.key' -> the trailing comment of that line in params.yaml (block style, 2-space indents)."""
    out, section = {}, None
    for line in text.splitlines():
        m = re.match(r"^(\s*)([A-Za-z_][\w]*):(.*)$", line)
        if not m:
            continue
        indent, key, rest = m.groups()
        comment = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        if not indent:
            section = key
            out[key] = comment
        elif len(indent) == 2 and section:
            out[f"{section}.{key}"] = comment
    return out


def choices(workspace, keys) -> pd.DataFrame:
    """The current values of ``keys`` ("section.key") in params.yaml with their comments there."""
    params, comments = load_params(workspace), _comments((_ws(workspace) / "params.yaml").read_text())
    records = []
    for key in keys:
        value = params
        for part in key.split("."):
            value = value.get(part, "(unset)") if isinstance(value, dict) else "(unset)"
        records.append({"parameter": key, "value": json.dumps(value) if isinstance(value, (dict, list)) else
                        str(value), "note in params.yaml": comments.get(key, "")})
    return pd.DataFrame(records).set_index("parameter")


def print_choices(workspace, notebook: str) -> None:
    """Print the params.yaml choices behind ``notebook`` ("reproduction choice" marks what the paper does
    not publish)."""
    for key, r in choices(workspace, CHOICES[notebook]).iterrows():
        note = f"  # {r['note in params.yaml']}" if r["note in params.yaml"] else ""
        print(f"{key} = {r['value']}{note}")
