"""Every paper claim of DESIGN.md with its measured value, the explicit rule that decides it and the verdict;
the printed profile notes and the params.yaml reproduction choices behind each notebook."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd

from flatlib import layout, vocabulary
from flatlib.vocabulary import FLATNESS_ROWS, IP_ROWS, PAPER_RESPACINGS, PAPER_ROWS, ROW_OF, VARIANT_OF, label
from flatlib.schema import params_comments
from flatlib.report.artifacts import (IMPORTED, exposure_entries, flatness_entries, fmt, fmt_interval,
                                      load_featurenet, load_fid, load_import_record, load_params, plateau_table,
                                      load_quant, paper_dataset, workspace_path)
from flatlib.report.display import show, table_view, verdict_view
from flatlib.report.paper import paper_fid
from flatlib.report.tables import NO_RHO_SWEEP, flatness_values, rho_values, save_table, sigmas
from flatlib.measure.stats import combine, estimate, rule_text, verdict


# ------------------------------------------------------------------------------------------------ claims
class NotEvaluable(Exception):
    """The measurement a claim needs was not configured (e.g. no 8-bit run); not a missing file."""


#: stands for the rho sweep's extra runs among the rows a claim uses
RHO_RUNS = "rho sweep runs"


def unmeasured_rows(workspace) -> dict[str, str]:
    """Table 1 row -> why this profile does not measure it: no such variant, weights an import lacks, or
    weights not in sample.weights."""
    params, why = load_params(workspace), {}
    for row, (variant, weights) in ROW_OF.items():
        if variant not in params.variants:
            why[row] = f"no {variant} variant"
        elif weights not in params.weights_of(variant) and variant in params.imports:
            why[row] = f"{variant} is imported with {'/'.join(params.imports[variant].files)} weights only"
        elif weights not in params.weights_of(variant):
            why[row] = f"{weights} is not in sample.weights"
    return why


def _require_rows(workspace, rows_) -> None:
    """NotEvaluable, naming each of ``rows_`` this profile does not measure and why."""
    why = unmeasured_rows(workspace)
    absent = [f"no {row} ({why[row]})" for row in rows_ if row in why]
    if absent:
        raise NotEvaluable(f"not evaluable with this profile's rows: {'; '.join(absent)}")


def _fid(workspace, row: str, respacing: int) -> np.ndarray:
    """FID of a Table 1 row at T' as array[seed, sample set]."""
    fid = load_fid(workspace)["rows"]
    key = "/".join(ROW_OF.get(row, (row,)))
    if key not in fid or f"T{respacing}" not in fid[key]:
        raise NotEvaluable(f"no FID for {row} at T'={respacing} in metrics/fid/")
    return fid[key][f"T{respacing}"]["fid"]


def _lower(name_a: str, a, name_b: str, b, kind: str, confidence: float) -> tuple[str, str]:
    """The paired comparison "A lower than B": (its text, its verdict by flatlib.measure.stats.verdict)."""
    diff = estimate(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), confidence)
    text = (f"{name_a} {fmt(estimate(a, confidence).mean, kind)} vs {name_b} {fmt(estimate(b, confidence).mean, kind)}"
            f" (difference {fmt_interval(diff.mean, diff.half_width, kind, sign=True)})")
    return text, verdict(diff)


def _all_lower(parts: list[tuple[str, str]]) -> tuple[str, str]:
    """A compound claim from its parts (flatlib.measure.stats.combine)."""
    return "; ".join(t for t, _ in parts), combine(v for _, v in parts)


def _claim_fid_pair(better: str, worse: str, respacings):
    def check(ws, confidence):
        _require_rows(ws, (better, worse))
        return _all_lower([(f"T'={t}: " + text, v) for t in respacings for text, v in
                           [_lower(better, _fid(ws, better, t), worse, _fid(ws, worse, t), "fid", confidence)]])
    paper = "CIFAR-10 " + "; ".join(f"T'={t}: {better} {paper_fid(better, t):.2f} vs {worse} "
                                    f"{paper_fid(worse, t):.2f}" for t in respacings)
    where = " and ".join(f"T'={t}" for t in respacings)
    return paper, f"FID({better}) - FID({worse}) < 0 at {where}", check, (better, worse)


def _claim_sam_beats_indirect(ws, confidence):
    _require_rows(ws, ("+SAM", "+EMA", "+SWA", "+IP"))
    sam = _fid(ws, "+SAM", 20)
    return _all_lower([_lower("+SAM", sam, r, _fid(ws, r, 20), "fid", confidence) for r in ("+EMA", "+SWA", "+IP")])


def _claim_best_is_sam(ws, confidence):
    fid = load_fid(ws)["rows"]
    parts = []
    for t in PAPER_RESPACINGS:
        values = {label(*r): fid[f"{r[0]}/{r[1]}"][f"T{t}"]["fid"] for r in PAPER_ROWS
                  if f"{r[0]}/{r[1]}" in fid and f"T{t}" in fid[f"{r[0]}/{r[1]}"]}
        sam = [v for r, v in values.items() if r.startswith("+SAM")]
        other = [v for r, v in values.items() if not r.startswith("+SAM")]
        if not sam:
            _require_rows(ws, [r for r in ROW_OF if r.startswith("+SAM")])
        if not sam or not other:
            raise NotEvaluable(f"no +SAM row or no other row at T'={t} in metrics/fid/")
        text, v = _lower("best +SAM row", np.minimum.reduce(sam), "best other row", np.minimum.reduce(other), "fid",
                         confidence)
        parts.append((f"T'={t}: {text}", v))
    return _all_lower(parts)


def _flatness_values(ws, rows_=FLATNESS_ROWS) -> dict[str, dict]:
    _require_rows(ws, rows_)
    entries = flatness_entries(ws)
    return {r: flatness_values(entries[r]) for r in rows_}


def _sam_lowest(ws, confidence, measure: str, kind: str = "sharpness", rows_=FLATNESS_ROWS):
    values = _flatness_values(ws, rows_)
    if any(measure not in values[r] for r in rows_):
        raise NotEvaluable(f"{measure} not measured for every row")
    return _all_lower([_lower("+SAM", values["+SAM"][measure], r, values[r][measure], kind, confidence)
                       for r in rows_ if r != "+SAM"])


def _claim_mc_sharpness(ws, confidence):
    parts = [(f"sigma={s}: " + text, v) for s in sigmas(ws)
             for text, v in [_sam_lowest(ws, confidence, f"MC sharp s={s}")]]
    if not parts:
        raise NotEvaluable("no LPF sigma measured")
    return _all_lower(parts)


def _claim_curve(ws, confidence):
    return _sam_lowest(ws, confidence, "1-D curve rise")


def _claim_surface(ws, confidence):
    return _sam_lowest(ws, confidence, "2-D surface rise", rows_=("ADM", "+SAM"))


def _quant_delta(ws, row: str) -> np.ndarray:
    """dFID = FID(8-bit) - FID(32-bit) of a Table 1 row, per seed and sample set."""
    _require_rows(ws, [row])
    variant, weights = ROW_OF[row]
    by_bits = load_quant(ws, variant)["rows"].get(weights, {})
    if "8" not in by_bits or "32" not in by_bits:
        raise NotEvaluable(f"no 8-bit / 32-bit FID for {row} in metrics/quant/{variant}/")
    return by_bits["8"]["fid"] - by_bits["32"]["fid"]


def _claim_quant(ws, confidence):
    return _lower("+SAM dFID(8-bit)", _quant_delta(ws, "+SAM"), "ADM dFID(8-bit)", _quant_delta(ws, "ADM"), "fid",
                  confidence)


def _exposure_gaps(ws, rows_) -> dict[str, np.ndarray]:
    """The exposure gap (exposure.aggregate) of each of ``rows_``, per seed."""
    _require_rows(ws, rows_)
    return {label(v, w): np.asarray([e["gap_aggregate"] for e in entries]) for v, w, entries in exposure_entries(ws)
            if label(v, w) in rows_}


def _claim_exposure(ws, confidence):
    gaps = _exposure_gaps(ws, ("ADM", "+SAM"))
    return _lower("+SAM gap", gaps["+SAM"], "ADM gap", gaps["ADM"], "gap", confidence)


def _ip_vs_adm(ws) -> list[tuple[str, str, str]]:
    """(weights, IP row, ADM row) for each weights kind this profile measures for both the ip and the adm
    variant (raw: +IP vs ADM, ema: +IP+EMA vs +EMA, swa: +IP+SWA vs +SWA)."""
    why = unmeasured_rows(ws)
    kinds = [w for w in vocabulary.WEIGHT_KINDS if label("ip", w) not in why and label("adm", w) not in why]
    if not kinds:
        _require_rows(ws, [label(v, w) for w in vocabulary.WEIGHT_KINDS for v in ("ip", "adm")])
    return [(w, label("ip", w), label("adm", w)) for w in kinds]


def _claim_ip_flatness(ws, confidence):
    pairs = _ip_vs_adm(ws)
    values = _flatness_values(ws, [row for _, ip, adm in pairs for row in (ip, adm)])
    return _all_lower([(f"{w}, sigma={s}: " + text, v) for w, ip, adm in pairs for s in sigmas(ws)
                       for text, v in [_lower(ip, values[ip][f"MC sharp s={s}"], adm, values[adm][f"MC sharp s={s}"],
                                              "sharpness", confidence)]])


def _claim_ip_quant(ws, confidence):
    return _all_lower([(f"{w}: " + text, v) for w, ip, adm in _ip_vs_adm(ws) for text, v in
                       [_lower(f"{ip} dFID(8-bit)", _quant_delta(ws, ip), f"{adm} dFID(8-bit)", _quant_delta(ws, adm),
                               "fid", confidence)]])


def _claim_ip_exposure(ws, confidence):
    pairs = _ip_vs_adm(ws)
    gaps = _exposure_gaps(ws, [row for _, ip, adm in pairs for row in (ip, adm)])
    return _all_lower([(f"{w}: " + text, v) for w, ip, adm in pairs
                       for text, v in [_lower(f"{ip} gap", gaps[ip], f"{adm} gap", gaps[adm], "gap", confidence)]])


def _claim_rho(ws, confidence):
    values = rho_values(ws)
    if not values:
        raise NotEvaluable(NO_RHO_SWEEP)
    if len(values) < 2:
        raise NotEvaluable("fewer than two rho values in metrics/rho_sweep/")
    rhos = list(values)
    return _all_lower([_lower(f"rho={b:g}", values[b]["MC sharpness"], f"rho={a:g}", values[a]["MC sharpness"],
                              "sharpness", confidence) for a, b in zip(rhos, rhos[1:])])


#: the rows the IP-vs-ADM claims compare, weights kind by weights kind
IP_PAIRS = ", ".join(f"{w}: {label('ip', w)} vs {label('adm', w)}" for w in vocabulary.WEIGHT_KINDS)


def _claim_specs():
    """(id, group, claim, paper evidence, decision rule, check(workspace, confidence) -> (measured text,
    verdict), the Table 1 rows it uses (and RHO_RUNS))."""
    specs = []
    for cid, better, worse, ts, text in [
            ("sam_T20", "+SAM", "ADM", (20,), "+SAM improves FID over ADM at T'=20"),
            ("sam_T100", "+SAM", "ADM", (100,), "+SAM improves FID over ADM at T'=100"),
            ("sam_ema", "+SAM+EMA", "+EMA", PAPER_RESPACINGS, "SAM adds to EMA: +SAM+EMA beats +EMA"),
            ("sam_swa", "+SAM+SWA", "+SWA", PAPER_RESPACINGS, "SAM adds to SWA: +SAM+SWA beats +SWA"),
            ("ema", "+EMA", "ADM", PAPER_RESPACINGS, "EMA (indirect flatness) improves FID over ADM"),
            ("swa", "+SWA", "ADM", PAPER_RESPACINGS, "SWA (indirect flatness) improves FID over ADM"),
            ("ip", "+IP", "ADM", PAPER_RESPACINGS, "Input perturbation improves FID over ADM"),
            ("ip_ema", "+IP+EMA", "+EMA", PAPER_RESPACINGS, "IP adds to EMA: +IP+EMA beats +EMA")]:
        paper, rule, check, used = _claim_fid_pair(better, worse, ts)
        specs.append((cid, "fid", text, paper, rule, check, used))
    specs += [
        ("sam_vs_indirect", "fid", "+SAM alone beats each indirect method (+EMA, +SWA, +IP) at T'=20",
         "CIFAR-10 T'=20: +SAM 9.01 vs +EMA 10.63, +SWA 11.00, +IP 20.11",
         "FID(+SAM) - FID(X) < 0 at T'=20 for each X of +EMA, +SWA, +IP", _claim_sam_beats_indirect,
         ("+SAM", "+EMA", "+SWA", "+IP")),
        ("best_is_sam", "fid", "The best FID at each T' belongs to a +SAM row",
         "CIFAR-10 T'=20: +SAM+EMA 7.00; T'=100: +SAM+SWA 2.96",
         "min FID over the +SAM rows - min FID over the other rows < 0 (per seed and sample set) at T'=20 and "
         "at T'=100", _claim_best_is_sam, tuple(label(*r) for r in PAPER_ROWS)),
        ("mc_sharpness", "flatness", "+SAM is flatter than ADM and the indirect methods (lowest MC sharpness)",
         "SAM flattens diffusion models more than EMA, SWA and IP (loss under weight perturbation, every method)",
         "MC sharpness LPF_sigma - L of +SAM minus that of X < 0 for each X of ADM, +EMA, +SWA, +IP, at every "
         "measured sigma", _claim_mc_sharpness, FLATNESS_ROWS),
        ("curve_rise", "flatness", "Loss under weight perturbation rises least for +SAM",
         "figure: loss under weight perturbation (CIFAR-10, every method), SAM flattest",
         "mean over a and directions of L(theta + a d) - L(theta) on the 1-D curves: +SAM minus X < 0 for each X "
         "of ADM, +EMA, +SWA, +IP", _claim_curve, FLATNESS_ROWS),
        ("surface", "flatness", "ADM+SAM's 2-D loss surface is flatter than ADM's",
         "figure: loss surface of ADM vs ADM+SAM",
         "mean over the 2-D grid of L - L(theta) (same directions seed and data): +SAM minus ADM < 0",
         _claim_surface, ("ADM", "+SAM")),
        ("ip_flatness", "flatness", "+IP is flatter than ADM (lower MC sharpness), with the same weights averaging",
         "the paper counts IP, with EMA and SWA, among the methods that flatten indirectly (loss under weight "
         "perturbation, every method)",
         f"MC sharpness of the ip variant minus that of the adm variant < 0 at every measured sigma, for each weights "
         f"kind measured for both ({IP_PAIRS})", _claim_ip_flatness, IP_ROWS),
        ("quant_8bit", "quant", "8-bit weight quantization hurts +SAM less than ADM",
         "CIFAR-10 T'=20: ADM 34.47 -> 48.02 (+13.55); +SAM 9.01 -> 8.94 (-0.07)",
         "dFID = FID(8-bit) - FID(32-bit) (same image seeds; raw weights, quant.respacing): dFID(+SAM) - "
         "dFID(ADM) < 0", _claim_quant, ("ADM", "+SAM")),
        ("ip_quant", "quant", "8-bit weight quantization hurts +IP less than ADM",
         "no IP number: the paper's argument (a flatter model is more robust to weight quantization: ADM +13.55, "
         "+SAM -0.07) applied to IP",
         f"dFID(8-bit) of the ip variant minus that of the adm variant < 0, for each weights kind measured for both "
         f"({IP_PAIRS})", _claim_ip_quant, IP_ROWS),
        ("exposure", "exposure", "+SAM has less exposure bias than ADM",
         "CIFAR-10 gap of the predicted-noise norm: ADM +11.39, +SAM +3.32",
         "exposure gap (sampling minus training norm, reduced over steps by exposure.aggregate) of +SAM minus "
         "that of ADM < 0 (raw weights)", _claim_exposure, ("ADM", "+SAM")),
        ("ip_exposure", "exposure", "+IP has less exposure bias than ADM",
         "no IP number: DDPM-IP introduced IP to reduce exposure bias, and the paper ties less exposure bias to "
         "flatness (gap ADM +11.39, +SAM +3.32)",
         f"exposure gap of the ip variant minus that of the adm variant < 0, for each weights kind measured for both "
         f"({IP_PAIRS})", _claim_ip_exposure, IP_ROWS),
        ("rho", "rho", "A larger rho gives a flatter model (lower MC sharpness)",
         "diffusion models are inherently flat: SAM needs a large rho (README: 0.1) to flatten them further",
         "MC sharpness at the next larger rho minus that at rho < 0 for every consecutive pair of the sweep "
         "(rho = 0 is the ADM run)", _claim_rho, ("ADM", "+SAM", RHO_RUNS)),
    ]
    return specs


CLAIM_GROUPS = ("fid", "flatness", "quant", "exposure", "rho")


NOT_CONVERGED = "NOT converged"


def _runs_note(table: pd.DataFrame, used) -> str:
    """"all N converged" or the runs a claim uses that did not reach their plateau (``table``: plateau_table);
    then the imported ones."""
    variants_ = {VARIANT_OF.get(r, r) for r in used}
    wanted = table[[run in variants_ or (RHO_RUNS in used and run.startswith("sam rho=")) for run, _ in table.index]]
    imported = [f"{run} seed {seed}" for (run, seed), ok in wanted["converged"].items() if ok == IMPORTED]
    trained = wanted[wanted["converged"].map(lambda ok: ok != IMPORTED)]
    bad = [f"{run} seed {seed}" for (run, seed), ok in trained["converged"].items() if not ok]
    note = f"all {len(trained)} converged" if not bad else f"{NOT_CONVERGED}: " + ", ".join(bad)
    if not imported:
        return note
    return (f"{note}; " if len(trained) else "") + "imported (not trained here): " + ", ".join(imported)


def claims(workspace, group: str | None = None) -> pd.DataFrame:
    """Every paper claim (or those of ``group``) evaluated on the workspace's artifacts.

    Columns: group, claim, paper (the paper's evidence), measured (means and the paired difference with its
    interval), rule (the comparison), verdict by the rule of flatlib.measure.stats (reproduced / contradicted /
    inconclusive; "not evaluated" when the measurement it needs was not configured), seeds, and runs (whether
    every training run the claim uses reached its plateau). A missing artifact raises
    :class:`ArtifactMissing`.
    """
    if group is not None and group not in CLAIM_GROUPS:
        raise ValueError(f"group must be one of {CLAIM_GROUPS}, got {group!r}")
    params = load_params(workspace)
    confidence, records = params.verdict.confidence, []
    plateaus = plateau_table(workspace)  # read once: every claim's runs note filters it
    for cid, grp, text, paper, rule, check, used in _claim_specs():
        if group is not None and grp != group:
            continue
        try:
            measured, decided = check(workspace, confidence)
        except NotEvaluable as err:
            measured, decided = f"({err})", "not evaluated"
        records.append(dict(id=cid, group=grp, claim=text, paper=paper, measured=measured, rule=rule,
                            verdict=decided, seeds=len(params.seeds), runs=_runs_note(plateaus, used)))
    return pd.DataFrame(records).set_index("id")


def show_verdicts(df: pd.DataFrame, workspace, name: str = "claims") -> None:
    """The verdict counts and the rule that decided them, then every claim in one verdict table (its mark, the
    test, the evidence, the runs it was judged on); written at full length to reports/tables/NAME.csv."""
    save_table(df, workspace, name)
    counts = df["verdict"].value_counts()
    print(f"{len(df)} claims: {counts.get('reproduced', 0)} reproduced, {counts.get('contradicted', 0)} "
          f"contradicted, {counts.get('inconclusive', 0)} inconclusive"
          + (f", {counts['not evaluated']} not evaluated" if counts.get("not evaluated") else "") + ".")
    print(f"Rule: {rule_text(load_params(workspace).verdict.confidence)}.")
    unconverged = [cid for cid, r in df.iterrows() if NOT_CONVERGED in r["runs"] and r["verdict"] != "not evaluated"]
    if unconverged:
        print(f"Judged on runs that did not reach their loss plateau (see the runs column): {', '.join(unconverged)}.")
    show(verdict_view(df))


def print_extractor_note(workspace) -> None:
    """What the FIDs are computed with (and, for the CPU FeatureNet, how well it classifies)."""
    fid = load_fid(workspace)
    print(f"FID features: {fid.get('extractor')}, {fid.get('sets')} sample sets of {fid.get('num_samples')} samples "
          "per row, T' and training seed (the same image seeds for every model).")
    if fid.get("extractor") == "featurenet":
        acc = load_featurenet(workspace)
        print(f"FeatureNet (trained by the pipeline on the data set): validation accuracy "
              f"{fmt(acc.get('val_acc', float('nan')), 'accuracy')}, training accuracy "
              f"{fmt(acc.get('train_acc', float('nan')), 'accuracy')}. Its FIDs compare rows with each other, "
              "never with the paper's Inception FIDs.")


def is_paper_profile(workspace) -> bool:
    p = load_params(workspace)
    return p.fid.extractor == vocabulary.PAPER_EXTRACTOR and p.sample.num >= 50000 and p.paper_dataset is not None


def _import_notes(workspace) -> list[str]:
    """The imported rows (their files and the SHA-256 of the copies in the run folders) and the rows the imports
    leave unmeasured."""
    p = load_params(workspace)
    imported_rows = [
        f"{label(variant, weights)} = {imported.files[weights]} (sha256 "
        f"{load_import_record(workspace, variant, p.seeds[0], weights)['weights'][weights]['sha256'][:12]})"
        for variant, imported in p.imports.items() for weights in p.weights_of(variant)]
    notes = ["Imported, not trained here (one set of weights each, so one training seed: every verdict is "
             "inconclusive by the rule): " + "; ".join(imported_rows) + "."]
    unmeasured = [f"{row} ({why})" for row, why in unmeasured_rows(workspace).items() if VARIANT_OF[row] in p.imports]
    if unmeasured:
        notes.append("Rows not evaluable with these weights: " + "; ".join(unmeasured) + ".")
    return notes


def print_profile_note(workspace) -> None:
    """One generated paragraph saying what the workspace's numbers can and cannot be compared with: the
    profile, the imported weights (file, SHA-256) and the rows they leave unmeasured, the scale."""
    p = load_params(workspace)
    size = p.data.image_size
    training = f"{p.train.steps} training steps" if set(p.variants) - set(p.imports) else "nothing trained here"
    print(f"Profile: {p.data.name} {size}x{size}, {training}, training seeds {p.seeds}, "
          f"{p.sample.sets} x {p.sample.num} samples per row, FID with {p.fid.extractor} features "
          f"(paper column: {paper_dataset(workspace)}).")
    for note in _import_notes(workspace) if p.imports else ():
        print(note)
    if is_paper_profile(workspace):
        print("This is a paper-scale profile: measured FIDs are on the paper's scale.")
    else:
        print("This is not the paper's setting: absolute values are not comparable with the paper; "
              "only the direction of each effect (and the ranking of the rows) is tested.")


# ------------------------------------------------------------------------------------- reproduction choices
CHOICES = {
    "table1_fid": ["seeds", "data.name", "data.image_size", "data.holdout", "model.num_channels", "train.steps",
                   "train.batch_size", "train.plateau_window", "train.plateau_tol",
                   "optim.lr", "optim.rho", "optim.adaptive", "variants", "train.ema_rate", "train.ema_warmup",
                   "swa.start_step", "swa.steps", "swa.window", "swa.lr_min", "sample.num", "sample.sets",
                   "sample.respacings",
                   "sample.eps_scale", "fid.extractor", "fid.reference_size"],
    "quantization": ["quant.bits", "quant.per_channel", "quant.layer_types", "quant.respacing", "sample.num",
                     "fid.extractor"],
    "flatness": ["flatness.num_triples", "flatness.t_min", "flatness.t_max", "flatness.hybrid_loss",
                 "flatness.sigmas", "flatness.draws", "flatness.filter_relative", "flatness.curve_span",
                 "flatness.curve_points", "flatness.curve_directions", "flatness.surface_variants",
                 "flatness.surface_points", "flatness.hessian_iters", "flatness.hessian_samples", "optim.rho"],
    "exposure": ["exposure.num", "exposure.respacing", "exposure.aggregate", "sample.eps_scale"],
    "rho_sweep": ["optim.rho", "rho_sweep.rhos", "rho_sweep.sigma", "rho_sweep.respacing", "flatness.draws",
                  "fid.extractor"],
    "summary": ["seeds", "verdict.confidence", "data.name", "train.steps", "train.plateau_tol", "sample.num",
                "sample.sets", "fid.extractor", "optim.rho", "optim.adaptive",
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


def show_choices(workspace, notebook: str) -> None:
    """The params.yaml choices behind ``notebook`` as a table ("reproduction choice" marks what the paper does
    not publish)."""
    show(table_view(choices(workspace, CHOICES[notebook]), "Settings behind these numbers (params.yaml)"))
