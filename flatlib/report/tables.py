"""The notebooks' tables as pandas DataFrames (full precision); ``show_table`` prints them rounded and
writes ``reports/tables/NAME.csv``."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from flatlib import layout
from flatlib.layout import label
from flatlib.report.artifacts import (flatness_entries, load_exposure, load_fid, load_quant, load_rho_sweep,
                                      mean_rise, paper_dataset, round_value, rows, table_text, variants,
                                      with_kinds, workspace_path)
from flatlib.report.paper import (DATASETS, PAPER_EXPOSURE_GAP, PAPER_QUANT_8BIT, PAPER_TABLE1, RESPACINGS,
                                  paper_fid)


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
    return with_kinds(df, kinds)


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
    return with_kinds(df, {"Spearman rho": "corr", "rows": "int"})


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
    return with_kinds(df, kinds)


def sigmas(workspace) -> list[str]:
    """The LPF/MC sigmas measured (JSON keys, e.g. "0.01"), ascending."""
    found = {s for entry in flatness_entries(workspace).values() for s in entry.get("lpf", {})}
    return sorted(found, key=float)


def flatness_table(workspace) -> pd.DataFrame:
    """Per row: base loss L(theta), LPF_sigma and MC sharpness (LPF - L, with the LPF's standard error) per
    sigma, mean rise of the 1-D loss curve, Hessian top eigenvalue (and whether power iteration converged)
    and Hutchinson trace."""
    records, kinds = [], {"base loss": "loss", "1-D curve rise": "sharpness", "Hessian top eig": "hessian",
                          "Hessian trace": "hessian", "trace std err": "hessian"}
    for name, entry in flatness_entries(workspace).items():
        lpf = entry.get("lpf", {})
        rec = {"method": name, "base loss": next(iter(lpf.values()))["base_loss"] if lpf else float("nan")}
        for s in sorted(lpf, key=float):
            rec[f"LPF s={s}"] = lpf[s]["lpf"]
            rec[f"MC sharp s={s}"] = lpf[s]["mc_sharpness"]
            rec[f"LPF std err s={s}"] = lpf[s].get("std_err", float("nan"))
            kinds.update({f"LPF s={s}": "loss", f"MC sharp s={s}": "sharpness", f"LPF std err s={s}": "sharpness"})
        rec["1-D curve rise"] = mean_rise(entry, "curve")
        top = entry.get("hessian_top_eigenvalue") or {}
        rec["Hessian top eig"] = top.get("eigenvalue", float("nan"))
        rec["converged"] = top.get("converged", "-") if top else "-"
        trace = entry.get("hessian_trace") or {}
        rec["Hessian trace"] = trace.get("trace", float("nan"))
        rec["trace std err"] = trace.get("std_err", float("nan"))
        records.append(rec)
    return with_kinds(pd.DataFrame(records).set_index("method"), kinds)


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
    return with_kinds(df, {f"gap ({agg})": "gap", "gap mean": "gap", "gap max": "gap", "sampling norm": "norm",
                       "training norm": "norm", "unit noise norm": "norm"})


def rho_table(workspace) -> pd.DataFrame:
    """Per rho (0 = the ADM run, the SAM run's rho, the extra SAM runs): FID, base loss, LPF, MC sharpness,
    all at ``rho_sweep.steps`` training steps and ``rho_sweep.sigma``."""
    data = load_rho_sweep(workspace)
    records = [{"rho": float(rho), "FID": r["fid"], "base loss": r["base_loss"], "LPF": r["lpf"],
                "MC sharpness": r["mc_sharpness"]} for rho, r in data["rows"].items()]
    df = pd.DataFrame(records).sort_values("rho").set_index("rho")
    df.attrs.update(steps=data.get("steps"), sigma=data.get("sigma"), respacing=data.get("respacing"))
    return with_kinds(df, {"FID": "fid", "base loss": "loss", "LPF": "loss", "MC sharpness": "sharpness"})


def _csv_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def show_table(df: pd.DataFrame, workspace, name: str, title: str | None = None) -> None:
    """Print ``df`` rounded as plain text and write it at full precision to reports/tables/NAME.csv."""
    path = workspace_path(workspace, layout.TABLES / f"{_csv_safe(name)}.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path)
    if title:
        print(title)
    print(table_text(df))
