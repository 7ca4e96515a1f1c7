"""The notebooks' tables as pandas DataFrames (full precision); ``show_table`` shows them rounded and
writes ``reports/tables/NAME.csv``."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from flatlib import layout, vocabulary
from flatlib.vocabulary import label
from flatlib.report.artifacts import (HALF_WIDTH, exposure_entries, flatness_entries, load_fid, load_params,
                                      load_quant, load_rho_sweep, mean_rise, paper_dataset, round_value, rows,
                                      table_values,
                                      variants, with_kinds, workspace_path)
from flatlib.report.display import empty_view, show, table_view
from flatlib.measure.stats import Estimate, estimate
from flatlib.report.paper import (PAPER_EXPOSURE_GAP, PAPER_QUANT_8BIT, PAPER_TABLE1, paper_fid)


# ------------------------------------------------------------------------------------------------ tables
def paper_table1() -> pd.DataFrame:
    """The paper's Table 1: nine rows x (CIFAR-10, LSUN Tower, FFHQ) x T' in (20, 100)."""
    data = {f"{d} T'={t}": [PAPER_TABLE1[r][d][i] for r in PAPER_TABLE1] for d in vocabulary.PAPER_DATASETS
            for i, t in enumerate(vocabulary.PAPER_RESPACINGS)}
    df = pd.DataFrame(data, index=pd.Index(list(PAPER_TABLE1), name="method"))
    return with_kinds(df, {c: "paper" for c in df.columns})


def _ranks(values) -> np.ndarray:
    return pd.Series(values, dtype=float).rank(method="average").to_numpy()


def _put(record: dict, kinds: dict, column: str, values, kind: str, confidence: float) -> Estimate:
    """record[column] = mean of ``values`` (per seed, or per seed and sample set), record[column ±] = the
    half-width of its interval (flatlib.measure.stats.estimate); both printed as one "mean ± half-width" column."""
    est = estimate(values, confidence)
    record[column], record[column + HALF_WIDTH] = est.mean, est.half_width
    kinds[column] = kinds[column + HALF_WIDTH] = kind
    return est


def interval_note(workspace) -> str:
    """What the ± of every table means, printed under each table."""
    params = load_params(workspace)
    unit = (f"{len(params.seeds)} training seeds" if len(params.seeds) > 1 else
            f"{params.sample.sets} sample sets of the single training seed (sampling noise only)"
            if params.sample.sets > 1 else "nothing: a single measurement, no interval")
    return f"± = half-width of the {params.verdict.confidence:.0%} t-interval over {unit}."


def table1(workspace, dataset: str | None = None) -> pd.DataFrame:
    """Table 1 reproduced: per row and T', the paper's FID beside the measured one (mean ± interval over
    training seeds of the FID on all samples of a seed; artifacts.table_values), and both ranks (1 = best, measured on the means).

    Measured FIDs use the workspace's extractor and sample count (``load_fid``); only the ranks are
    comparable with the paper unless the run used Inception features on 50,000 samples.
    """
    dataset = dataset or paper_dataset(workspace)
    fid, confidence = load_fid(workspace)["rows"], load_params(workspace).verdict.confidence
    index = [r for r in rows(workspace) if f"{r[0]}/{r[1]}" in fid]
    respacings = sorted({int(k[1:]) for r in index for k in fid[f"{r[0]}/{r[1]}"]})
    records, kinds = [{} for _ in index], {}
    for t in respacings:
        for record, r in zip(records, index):
            record[f"paper T'={t}"] = paper_fid(label(*r), t, dataset)
            _put(record, kinds, f"measured T'={t}", table_values(fid[f"{r[0]}/{r[1]}"][f"T{t}"]), "fid", confidence)
        paper_ranks = _ranks([rec[f"paper T'={t}"] for rec in records])
        measured_ranks = _ranks([round_value(rec[f"measured T'={t}"], "fid") for rec in records])
        for record, a, b in zip(records, paper_ranks, measured_ranks):
            record[f"paper rank T'={t}"], record[f"measured rank T'={t}"] = a, b
        kinds.update({f"paper T'={t}": "paper", f"paper rank T'={t}": "rank", f"measured rank T'={t}": "rank"})
    df = pd.DataFrame(records, index=pd.Index([label(*r) for r in index], name="method"))
    df.attrs["dataset"] = dataset
    return with_kinds(df, kinds)


def rank_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation between the paper's and the measured (mean) FIDs of ``table1``, per T'."""
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
    return with_kinds(df, {"Spearman rho": "corr", "rows": "int"})


def quant_table(workspace) -> pd.DataFrame:
    """Per row: FID at 32 bits and each quantized width, the FID change dFID (paired per seed and sample set:
    quantized minus full precision, same image seeds), the relative weight error, and the paper's CIFAR-10
    T'=20 values (ADM and +SAM, 8 bits); means ± intervals over training seeds."""
    records, kinds, respacing = [], {}, None
    confidence = load_params(workspace).verdict.confidence
    for variant in variants(workspace):
        q = load_quant(workspace, variant)
        respacing = q.get("respacing", respacing)
        for weights, by_bits in q["rows"].items():
            bits = sorted((int(b) for b in by_bits), reverse=True)
            rec = {"method": label(variant, weights)}
            for b in bits:
                _put(rec, kinds, f"FID {b}-bit", table_values(by_bits[str(b)]), "fid", confidence)
            for b in bits[1:]:
                _put(rec, kinds, f"dFID {b}-bit", table_values(by_bits[str(b)]) - table_values(by_bits["32"]), "fid",
                     confidence)
                _put(rec, kinds, f"weight err {b}-bit", by_bits[str(b)]["weight_rel_error"], "weight_error",
                     confidence)
            paper = PAPER_QUANT_8BIT.get(rec["method"], {})
            rec["paper FID 32-bit"], rec["paper FID 8-bit"] = paper.get(32, float("nan")), paper.get(8, float("nan"))
            records.append(rec)
    kinds["paper FID 32-bit"] = kinds["paper FID 8-bit"] = "paper"
    order = {label(*r): i for i, r in enumerate(rows(workspace))}
    df = pd.DataFrame(records).set_index("method")
    df = df.loc[sorted(df.index, key=lambda m: order.get(m, len(order)))]
    df.attrs["respacing"] = respacing
    return with_kinds(df, kinds)


def sigmas(workspace) -> list[str]:
    """The LPF/MC sigmas measured (JSON keys, e.g. "0.01"), ascending."""
    found = {s for entries in flatness_entries(workspace).values() for s in entries[0].get("lpf", {})}
    return sorted(found, key=float)


def flatness_values(entries: list[dict]) -> dict[str, np.ndarray]:
    """Per-seed arrays of one row's flatness measures: "base loss", "MC sharp s=SIGMA", "LPF s=SIGMA",
    "1-D curve rise", "2-D surface rise", "Hessian top eig", "Hessian trace" (those measured)."""
    out = {}
    first = entries[0]
    lpf = first.get("lpf", {})
    if lpf:
        out["base loss"] = [next(iter(e["lpf"].values()))["base_loss"] for e in entries]
    for s in sorted(lpf, key=float):
        out[f"LPF s={s}"] = [e["lpf"][s]["lpf"] for e in entries]
        out[f"MC sharp s={s}"] = [e["lpf"][s]["mc_sharpness"] for e in entries]
    for landscape, name in (("curve", "1-D curve rise"), ("surface", "2-D surface rise")):
        if first.get(landscape):
            out[name] = [mean_rise(e, landscape) for e in entries]
    if first.get("hessian_top_eigenvalue"):
        out["Hessian top eig"] = [e["hessian_top_eigenvalue"]["eigenvalue"] for e in entries]
    if first.get("hessian_trace"):
        out["Hessian trace"] = [e["hessian_trace"]["trace"] for e in entries]
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


FLATNESS_KINDS = {"base loss": "loss", "LPF": "loss", "MC sharp": "sharpness", "1-D curve rise": "sharpness",
                  "2-D surface rise": "sharpness", "Hessian top eig": "hessian", "Hessian trace": "hessian"}


def flatness_table(workspace) -> pd.DataFrame:
    """Per row: base loss L(theta), LPF_sigma and MC sharpness (LPF - L) per sigma, mean rise of the 1-D loss
    curve (and of the 2-D surface where measured), Hessian top eigenvalue (with how many seeds' power
    iterations converged) and Hutchinson trace; means ± intervals over training seeds."""
    records, kinds = [], {}
    confidence = load_params(workspace).verdict.confidence
    for name, entries in flatness_entries(workspace).items():
        rec = {"method": name}
        for column, values in flatness_values(entries).items():
            _put(rec, kinds, column, values, FLATNESS_KINDS[column.split(" s=")[0]], confidence)
        tops = [e.get("hessian_top_eigenvalue") for e in entries]
        if all(tops):
            rec["power iteration converged"] = f"{sum(bool(t['converged']) for t in tops)}/{len(tops)}"
        records.append(rec)
    return with_kinds(pd.DataFrame(records).set_index("method"), kinds)


def exposure_table(workspace) -> pd.DataFrame:
    """Per row: the exposure gap (sampling minus training predicted-noise norm) reduced over steps as
    configured, the gap at the last step (t = 0) alone, the mean norms, the norm of unit-variance noise for
    scale, and the paper's gap (ADM, +SAM); means ± intervals over training seeds."""
    records, kinds, aggregates = [], {}, set()
    confidence = load_params(workspace).verdict.confidence
    for variant, weights, entries in exposure_entries(workspace):
        aggregates.update(e.get("aggregate", "mean") for e in entries)
        rec = {"method": label(variant, weights)}
        _put(rec, kinds, "gap", [e["gap_aggregate"] for e in entries], "gap", confidence)
        _put(rec, kinds, "gap at t=0", [e["gap"][-1] for e in entries], "gap", confidence)
        _put(rec, kinds, "sampling norm", [np.mean(e["sampling_norm"]) for e in entries], "norm", confidence)
        _put(rec, kinds, "training norm", [np.mean(e["training_norm"]) for e in entries], "norm", confidence)
        rec["unit noise norm"] = entries[0].get("unit_noise_norm", float("nan"))
        rec["paper gap"] = PAPER_EXPOSURE_GAP.get(rec["method"], float("nan"))
        records.append(rec)
    kinds["unit noise norm"], kinds["paper gap"] = "norm", "paper"
    df = pd.DataFrame(records).set_index("method")
    agg = "/".join(sorted(aggregates))
    df = df.rename(columns={"gap": f"gap ({agg})", "gap" + HALF_WIDTH: f"gap ({agg})" + HALF_WIDTH})
    kinds[f"gap ({agg})"] = kinds[f"gap ({agg})" + HALF_WIDTH] = "gap"
    df.attrs["aggregate"] = agg
    return with_kinds(df, kinds)


def rho_values(workspace) -> dict[float, dict[str, np.ndarray]]:
    """rho -> {"FID": array[seed, sample set], "base loss", "LPF", "MC sharpness": array[seed],
    "plateaued": array[seed] of bool (flatlib.training.trainer.plateau)}, rho ascending (0 = the ADM run)."""
    per_seed = load_rho_sweep(workspace)
    out = {}
    for rho in sorted(per_seed[0]["rows"] if per_seed else (), key=float):
        r = [d["rows"][rho] for d in per_seed]
        out[float(rho)] = {"FID": np.asarray([x["fid"] for x in r], dtype=float),
                           **{c: np.asarray([x[k] for x in r], dtype=float) for c, k in
                              (("base loss", "base_loss"), ("LPF", "lpf"), ("MC sharpness", "mc_sharpness"))},
                           "plateaued": np.asarray([bool((x.get("plateau") or {}).get("plateaued")) for x in r])}
    return out


#: why the rho sweep's tables and claim are empty when the profile runs no sweep
NO_RHO_SWEEP = "no rho sweep in this profile (rho_sweep.rhos: [])"


def rho_table(workspace) -> pd.DataFrame:
    """Per rho (0 = the ADM run, the SAM run's rho, the extra SAM runs; all trained alike, as long as the main
    runs): FID, base loss, LPF and MC sharpness (means ± intervals over training seeds) and how many seeds' runs
    plateaued. Without a sweep, no rows and ``attrs["note"]`` says so."""
    params = load_params(workspace)
    confidence, cfg = params.verdict.confidence, params.rho_sweep
    records, kinds = [], {}
    for rho, values in rho_values(workspace).items():
        rec = {"rho": rho}
        for column, kind in (("FID", "fid"), ("base loss", "loss"), ("LPF", "loss"), ("MC sharpness", "sharpness")):
            _put(rec, kinds, column, values[column], kind, confidence)
        rec["plateaued"] = f"{int(values['plateaued'].sum())}/{len(values['plateaued'])}"
        records.append(rec)
    df = (pd.DataFrame(records) if records else pd.DataFrame(columns=["rho"])).set_index("rho")
    df.attrs.update(sigma=cfg.sigma, respacing=cfg.respacing, steps=params.train.steps)
    if not records:
        df.attrs["note"] = NO_RHO_SWEEP
    return with_kinds(df, kinds)


def _csv_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def save_table(df: pd.DataFrame, workspace, name: str) -> None:
    """``df`` at full precision as reports/tables/NAME.csv."""
    path = workspace_path(workspace, layout.TABLES / f"{_csv_safe(name)}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)


def show_table(df: pd.DataFrame, workspace, name: str, title: str | None = None) -> None:
    """Show ``df`` rounded (means ± half-widths; HTML in JupyterLab, text elsewhere), or the ``attrs["note"]`` of
    an empty table, and write it at full precision to reports/tables/NAME.csv."""
    save_table(df, workspace, name)
    if df.empty and "note" in df.attrs:
        show(empty_view(df.attrs["note"], title))
        return
    note = interval_note(workspace) if any(str(c).endswith(HALF_WIDTH) for c in df.columns) else None
    show(table_view(df, title, note))
