"""Every paper claim of DESIGN.md with its measured value, the explicit rule that decides it and the verdict;
the printed profile notes and the params.yaml reproduction choices behind each notebook."""
from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd

from flatlib import layout
from flatlib.layout import FLATNESS_ROWS, PAPER_ROWS, label
from flatlib.params import params_comments
from flatlib.report.artifacts import (DECIMALS, SIGNIFICANT, flatness_entries, fmt, load_exposure, load_featurenet,
                                      load_fid, load_params, load_quant, mean_rise, paper_dataset, round_value,
                                      workspace_path)
from flatlib.report.paper import RESPACINGS, paper_fid
from flatlib.report.tables import rho_table, sigmas


# ------------------------------------------------------------------------------------------------ claims
class NotEvaluable(Exception):
    """The measurement a claim needs was not configured (e.g. no 8-bit run); not a missing file."""


def _fid(workspace, row: str, respacing: int) -> float:
    fid = load_fid(workspace)["rows"]
    keys = {label(*r): f"{r[0]}/{r[1]}" for r in PAPER_ROWS}
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
        values = {label(*r): round_value(fid[f"{r[0]}/{r[1]}"][f"T{t}"]["fid"], "fid") for r in PAPER_ROWS
                  if f"{r[0]}/{r[1]}" in fid and f"T{t}" in fid[f"{r[0]}/{r[1]}"]}
        if len(values) < 2:
            raise NotEvaluable(f"fewer than two Table 1 rows at T'={t} in metrics/fid.json")
        best = min(values.values())
        winners = [r for r, v in values.items() if v == best]
        ok &= len(winners) == 1 and winners[0].startswith("+SAM")
        parts.append(f"T'={t}: best {'/'.join(winners)} {fmt(best, 'fid')}")
    return "; ".join(parts), ok


def _claim_mc_sharpness(ws):
    entries = flatness_entries(ws)
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
    entries = flatness_entries(ws)
    values = {r: round_value(mean_rise(entries[r], "curve"), "sharpness") for r in FLATNESS_ROWS if r in entries}
    if "+SAM" not in values or any(not math.isfinite(v) for v in values.values()):
        raise NotEvaluable("1-D loss curves missing for some rows")
    ok = all(_less(values["+SAM"], v) for r, v in values.items() if r != "+SAM")
    return "mean rise " + ", ".join(f"{r} {fmt(v, 'sharpness')}" for r, v in values.items()), ok


def _claim_surface(ws):
    entries = flatness_entries(ws)
    values = {r: round_value(mean_rise(entries[r], "surface"), "sharpness") for r in ("ADM", "+SAM") if r in entries}
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


#: L_simple of a model that predicts zero noise is E||eps||^2 / d = 1; a run still at 0.9 or above has not
#: learned, and its "flatness" (a near-constant function) says nothing about rho.
UNTRAINED_LOSS = 0.9


def _claim_rho(ws):
    table = rho_table(ws)
    if len(table) < 2:
        raise NotEvaluable("fewer than two rho values in metrics/rho_sweep.json")
    values = [round_value(v, "sharpness") for v in table["MC sharpness"]]
    untrained = [(r, loss) for r, loss in table["base loss"].items() if loss >= UNTRAINED_LOSS]
    ok = all(b < a for a, b in zip(values, values[1:])) and not untrained
    text = (f"sigma={table.attrs.get('sigma')}, {table.attrs.get('steps')} steps: "
            + ", ".join(f"rho={r:g} {fmt(v, 'sharpness')}" for r, v in zip(table.index, values))
            + "".join(f"; rho={r:g} did not learn (base loss {fmt(loss, 'loss')})" for r, loss in untrained))
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
         f"rounded to {SIGNIFICANT['sharpness']} significant figures, and every run has learned (base loss "
         f"below {UNTRAINED_LOSS}; predicting zero noise scores 1)", _claim_rho),
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
        path = workspace_path(workspace, layout.TABLES / f"{name}.csv")
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
    return p.fid.extractor == "inception" and p.sample.num >= 50000 and p.data.name in ("cifar10", "image_folder")


def print_profile_note(workspace) -> None:
    """One generated paragraph saying what the workspace's numbers can and cannot be compared with."""
    p = load_params(workspace)
    size = p.data.image_size
    print(f"Profile: {p.data.name} {size}x{size}, {p.train.steps} training steps, "
          f"{p.sample.num} samples per row, FID with {p.fid.extractor} features "
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


def choices(workspace, keys) -> pd.DataFrame:
    """The current values of ``keys`` ("section.key") in params.yaml with their comments there."""
    params = dataclasses.asdict(load_params(workspace))
    comments = params_comments(workspace_path(workspace, "params.yaml"))
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
