"""Every claim of the paper as the paper states it (its source and the provenance of its number), its measured
parts, and the outcome decided by flatlib.measure.stats (pooled variance model, multiplicity over the family of the
paper's claims, four outcomes, the plain paired t-interval as sensitivity check, KID beside FID); the printed
profile notes and the params.yaml reproduction choices behind each notebook."""
from __future__ import annotations

import dataclasses
import html
import json
import math

import numpy as np
import pandas as pd

from flatlib import layout, vocabulary
from flatlib.vocabulary import (CHECKPOINT_WEIGHTS, FLATNESS_ROWS, IP_ROWS, NOT_EVALUATED, OUTCOMES,
                                PAPER_RESPACINGS, PLATEAUED, ROW_OF, VARIANT_OF, label)
from flatlib.schema import params_comments
from flatlib.report.artifacts import (IMPORTED, AtCheckpoints, NotEvaluable, exposure_entries, flatness_entries,
                                      fmt, fmt_interval, load_featurenet, load_fid, load_import_record, load_params,
                                      plateau_table, floor_text, load_quant, metric_label, num_parameters,
                                      paper_dataset, seed_values, workspace_path)
from flatlib.report.display import SECTIONS, Shown, show, table_view, verdict_view
from flatlib.report.paper import PAPER_EXPOSURE_GAP, PAPER_QUANT_8BIT, PAPER_UNET_PARAMS, paper_fid
from flatlib.report.tables import NO_RHO_SWEEP, flatness_values, rho_values, save_table, sigmas
from flatlib.measure.stats import Part, base_outcome, decide, kind_of, rule_text


# ------------------------------------------------------------------------------------------------ claims
#: stands for the rho sweep's extra runs among the rows a claim uses
RHO_RUNS = "rho sweep runs"
#: the families of claims corrected for multiplicity apart (flatlib.measure.stats.decide)
PAPER, ADDED = "paper", "added"


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
        elif isinstance(workspace, AtCheckpoints) and workspace.reads(variant) and weights not in CHECKPOINT_WEIGHTS:
            why[row] = f"no {weights} weights at a saved checkpoint"
    return why


def _require_rows(workspace, rows_) -> None:
    """NotEvaluable, naming each of ``rows_`` this profile does not measure and why."""
    why = unmeasured_rows(workspace)
    absent = [f"no {row} ({why[row]})" for row in rows_ if row in why]
    if absent:
        raise NotEvaluable(f"not evaluable with this profile's rows: {'; '.join(absent)}")


def _seed_values(scores: dict, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """artifacts.seed_values, NotEvaluable where ``metric`` was not measured (fid.kid: false)."""
    try:
        return seed_values(scores, metric)
    except KeyError:
        raise NotEvaluable(f"{metric} not measured (fid.kid: false?)") from None


def _fid(workspace, row: str, respacing: int, metric: str = "fid") -> tuple[np.ndarray, np.ndarray]:
    """FID (or ``metric``: "kid_mean") of a Table 1 row at T': (array[seed], array[seed, sample set])."""
    fid = load_fid(workspace)["rows"]
    key = "/".join(ROW_OF.get(row, (row,)))
    if key not in fid or f"T{respacing}" not in fid[key]:
        raise NotEvaluable(f"no FID for {row} at T'={respacing} in metrics/fid/")
    return _seed_values(fid[key][f"T{respacing}"], metric)


def _paper_rel(a: float, b: float) -> float:
    return (a - b) / b


def _fid_part(ws, a: str, b: str, t: int, metric: str) -> Part:
    (va, sa), (vb, sb) = _fid(ws, a, t, metric), _fid(ws, b, t, metric)
    paper = _paper_rel(paper_fid(a, t), paper_fid(b, t)) if metric == "fid" else float("nan")
    return Part(f"T'={t}: {a} vs {b}", kind_of(metric_label(ws, metric), a, b), va, vb, sa, sb, paper_rel=paper)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim as the paper states it: its source (paper table, figure or section; or "added: ..."), the paper's
    evidence and its provenance, the family it is corrected in, the comparison, and ``parts(workspace, metric)``
    -> [flatlib.measure.stats.Part] (``metric``: "fid" or "kid_mean" for the FID-based claims)."""
    id: str
    group: str
    claim: str
    source: str
    paper: str
    provenance: str
    family: str
    rule: str
    parts: object
    used: tuple
    fid_based: bool = False


TABLE1 = "paper table (Table 1, project page)"
SECONDARY = "secondary summary of the paper (not read from a paper table)"
NO_NUMBER = "no number (direction only)"


def _fid_pair(cid, better, worse, ts, text) -> Claim:
    def parts(ws, metric):
        _require_rows(ws, (better, worse))
        return [_fid_part(ws, better, worse, t, metric) for t in ts]
    paper = "CIFAR-10 " + "; ".join(f"T'={t}: {better} {paper_fid(better, t):.2f} vs {worse} "
                                    f"{paper_fid(worse, t):.2f}" for t in ts)
    where = " and ".join(f"T'={t}" for t in ts)
    return Claim(cid, "fid", text, "Table 1", paper, TABLE1, PAPER, f"FID({better}) - FID({worse}) < 0 at {where}",
                 parts, (better, worse), fid_based=True)


def _sam_beats_indirect(ws, metric):
    _require_rows(ws, ("+SAM", "+EMA", "+SWA", "+IP"))
    return [_fid_part(ws, "+SAM", r, 20, metric) for r in ("+EMA", "+SWA", "+IP")]


#: the paper's best row at each T' against its best row without SAM (Table 1, CIFAR-10): fixed by the paper, so
#: the comparison is neither chosen from our noisy values nor a restatement of sam_ema / sam_swa
BEST_ROWS = {20: ("+SAM+EMA", "+IP+SWA"), 100: ("+SAM+SWA", "+IP+SWA")}


def _best_is_sam(ws, metric):
    _require_rows(ws, {r for pair in BEST_ROWS.values() for r in pair})
    return [_fid_part(ws, a, b, t, metric) for t, (a, b) in BEST_ROWS.items()]


def _flatness_values(ws, rows_=FLATNESS_ROWS) -> dict[str, dict]:
    _require_rows(ws, rows_)
    entries = flatness_entries(ws)
    return {r: flatness_values(entries[r]) for r in rows_}


def _flatter(ws, measure: str, pairs, prefix: str = "") -> list[Part]:
    """A lower ``measure`` for A than for B, for each (A, B) of ``pairs`` (no paper number: direction only)."""
    values = _flatness_values(ws, sorted({r for pair in pairs for r in pair}))
    if any(measure not in values[r] for pair in pairs for r in pair):
        raise NotEvaluable(f"{measure} not measured for every row")
    return [Part(f"{prefix}{a} vs {b}", kind_of(measure, a, b), values[a][measure], values[b][measure])
            for a, b in pairs]


def _every_sigma(ws, pairs, prefix: str = "") -> list[Part]:
    parts = [p for s in sigmas(ws) for p in _flatter(ws, f"MC sharp s={s}", pairs, f"{prefix}sigma={s}: ")]
    if not parts:
        raise NotEvaluable("no LPF sigma measured")
    return parts


def _mc_sharpness(ws, metric):
    return _every_sigma(ws, [("+SAM", r) for r in FLATNESS_ROWS if r != "+SAM"])


def _indirect_flat(ws, metric):
    return _every_sigma(ws, [("+EMA", "ADM"), ("+SWA", "ADM")])


def _curve(ws, metric):
    return _flatter(ws, "1-D curve rise", [("+SAM", r) for r in FLATNESS_ROWS if r != "+SAM"])


def _surface(ws, metric):
    return _flatter(ws, "2-D surface rise", [("+SAM", "ADM")])


def _quant(ws, row: str, metric: str):
    """(8-bit minus 32-bit per seed, the same per seed and sample set, 32-bit per seed) of a Table 1 row."""
    _require_rows(ws, [row])
    variant, weights = ROW_OF[row]
    by_bits = load_quant(ws, variant)["rows"].get(weights, {})
    if "8" not in by_bits or "32" not in by_bits:
        raise NotEvaluable(f"no 8-bit / 32-bit FID for {row} in metrics/quant/{variant}/")
    (q, qs), (f, fs) = _seed_values(by_bits["8"], metric), _seed_values(by_bits["32"], metric)
    return q - f, qs - fs, f


def _quant_part(ws, a: str, b: str, metric: str, paper_rel: float = float("nan")) -> Part:
    """dFID(8-bit) of A minus that of B, relative to B's 32-bit FID (as the paper's 34.47 -> 48.02 reads)."""
    (da, sa, _), (db, sb, fb) = _quant(ws, a, metric), _quant(ws, b, metric)
    return Part(f"{a} vs {b} dFID(8-bit)", kind_of(f"{metric_label(ws, metric)} change under 8-bit weights", a, b),
                da, db, sa, sb, scale=float(np.mean(fb)), paper_rel=paper_rel)


PAPER_QUANT_REL = ((PAPER_QUANT_8BIT["+SAM"][8] - PAPER_QUANT_8BIT["+SAM"][32])
                   - (PAPER_QUANT_8BIT["ADM"][8] - PAPER_QUANT_8BIT["ADM"][32])) / PAPER_QUANT_8BIT["ADM"][32]


def _quant_8bit(ws, metric):
    return [_quant_part(ws, "+SAM", "ADM", metric, PAPER_QUANT_REL if metric == "fid" else float("nan"))]


def _exposure_gaps(ws, rows_) -> dict[str, np.ndarray]:
    """The exposure gap (exposure.aggregate) of each of ``rows_``, per seed."""
    _require_rows(ws, rows_)
    return {label(v, w): np.asarray([e["gap_aggregate"] for e in entries]) for v, w, entries in exposure_entries(ws)
            if label(v, w) in rows_}


def _exposure(ws, metric):
    gaps = _exposure_gaps(ws, ("ADM", "+SAM"))
    return [Part("+SAM gap vs ADM gap", kind_of("exposure gap", "+SAM", "ADM"), gaps["+SAM"], gaps["ADM"],
                 paper_rel=_paper_rel(PAPER_EXPOSURE_GAP["+SAM"], PAPER_EXPOSURE_GAP["ADM"]))]


def _ip_vs_adm(ws) -> list[tuple[str, str, str]]:
    """(weights, IP row, ADM row) for each weights kind this profile measures for both the ip and the adm
    variant (raw: +IP vs ADM, ema: +IP+EMA vs +EMA, swa: +IP+SWA vs +SWA)."""
    why = unmeasured_rows(ws)
    kinds = [w for w in vocabulary.WEIGHT_KINDS if label("ip", w) not in why and label("adm", w) not in why]
    if not kinds:
        _require_rows(ws, [label(v, w) for w in vocabulary.WEIGHT_KINDS for v in ("ip", "adm")])
    return [(w, label("ip", w), label("adm", w)) for w in kinds]


def _ip_flatness(ws, metric):
    return _every_sigma(ws, [(ip, adm) for _, ip, adm in _ip_vs_adm(ws)])


def _ip_quant(ws, metric):
    return [_quant_part(ws, ip, adm, metric) for _, ip, adm in _ip_vs_adm(ws)]


def _ip_exposure(ws, metric):
    pairs = _ip_vs_adm(ws)
    gaps = _exposure_gaps(ws, [row for _, ip, adm in pairs for row in (ip, adm)])
    return [Part(f"{ip} gap vs {adm} gap", kind_of("exposure gap", ip, adm), gaps[ip], gaps[adm])
            for _, ip, adm in pairs]


def rho_per_parameter(workspace) -> str:
    """rho as a per-parameter radius, rho / sqrt(number of parameters), here and in the paper's UNet: rho is an
    absolute L2 radius, so the same rho perturbs each weight of a small model more."""
    p = load_params(workspace)
    n = num_parameters(workspace)
    rho = p.variant_rho("sam") if "sam" in p.variants else p.optim.rho
    ours, paper = rho / n ** 0.5, 0.1 / PAPER_UNET_PARAMS ** 0.5
    return (f"rho {rho:g} in this {n:,}-parameter UNet is {ours:.3g} per parameter (rho / sqrt(#params)); the "
            f"paper's 0.1 in its ~52.5M-parameter UNet is {paper:.3g}: ours is {ours / paper:.1f}x larger per "
            f"parameter, the paper-equivalent rho here is {0.1 * (n / PAPER_UNET_PARAMS) ** 0.5:.3g}")


def _rho(ws, metric):
    values = rho_values(ws)
    if not values:
        raise NotEvaluable(NO_RHO_SWEEP)
    positive = [r for r in values if r > 0]
    if 0.0 not in values or len(positive) < 2:
        raise NotEvaluable("the sweep needs rho = 0 and at least two positive rho values")
    usual, barely = positive[0], load_params(ws).verdict.barely
    mc = {r: values[r]["MC sharpness"] for r in values}
    return ([Part(f"usual rho={usual:g} vs rho=0 (changes MC sharpness by less than {barely:.0%})",
                  "MC sharpness (rho sweep): raw vs raw", mc[usual], mc[0.0], direction=1, threshold=-barely)]
            + [Part(f"rho={r:g} vs usual rho={usual:g}", "MC sharpness (rho sweep): raw vs raw", mc[r], mc[usual])
               for r in positive[1:]])


#: the rows the IP-vs-ADM claims compare, weights kind by weights kind
IP_PAIRS = ", ".join(f"{w}: {label('ip', w)} vs {label('adm', w)}" for w in vocabulary.WEIGHT_KINDS)
LOSS_FIGURE = "figure: loss under weight perturbation (CIFAR-10, every method)"


def claim_specs() -> list[Claim]:
    """Every claim, the paper's first (family PAPER), then the suite's additions (family ADDED)."""
    specs = [_fid_pair(*args) for args in [
        ("sam_T20", "+SAM", "ADM", (20,), "+SAM improves FID over ADM at T'=20"),
        ("sam_T100", "+SAM", "ADM", (100,), "+SAM improves FID over ADM at T'=100"),
        ("sam_ema", "+SAM+EMA", "+EMA", PAPER_RESPACINGS, "SAM adds to EMA: +SAM+EMA beats +EMA"),
        ("sam_swa", "+SAM+SWA", "+SWA", PAPER_RESPACINGS, "SAM adds to SWA: +SAM+SWA beats +SWA"),
        ("ema", "+EMA", "ADM", PAPER_RESPACINGS, "EMA (indirect flatness) improves FID over ADM"),
        ("swa", "+SWA", "ADM", PAPER_RESPACINGS, "SWA (indirect flatness) improves FID over ADM"),
        ("ip", "+IP", "ADM", PAPER_RESPACINGS, "Input perturbation improves FID over ADM"),
        ("ip_ema", "+IP+EMA", "+EMA", PAPER_RESPACINGS, "IP adds to EMA: +IP+EMA beats +EMA")]]
    specs += [
        Claim("sam_vs_indirect", "fid", "+SAM alone beats each indirect method (+EMA, +SWA, +IP) at T'=20", "Table 1",
              "CIFAR-10 T'=20: +SAM 9.01 vs +EMA 10.63, +SWA 11.00, +IP 20.11", TABLE1, PAPER,
              "FID(+SAM) - FID(X) < 0 at T'=20 for each X of +EMA, +SWA, +IP", _sam_beats_indirect,
              ("+SAM", "+EMA", "+SWA", "+IP"), fid_based=True),
        Claim("best_is_sam", "fid", "The best FID at each T' belongs to a +SAM row", "Table 1 (best row per T')",
              "CIFAR-10 T'=20: +SAM+EMA 7.00 vs the best row without SAM, +IP+SWA 9.04; T'=100: +SAM+SWA 2.96 vs "
              "+IP+SWA 3.07", TABLE1, PAPER,
              "the paper's best row minus its best row without SAM < 0: FID(+SAM+EMA) - FID(+IP+SWA) at T'=20, "
              "FID(+SAM+SWA) - FID(+IP+SWA) at T'=100 (rows fixed by the paper's table, not picked from ours)",
              _best_is_sam, tuple(r for pair in BEST_ROWS.values() for r in pair), fid_based=True),
        Claim("mc_sharpness", "flatness", "SAM flattens more than ADM and each indirect method (EMA, SWA, IP)",
              LOSS_FIGURE, "SAM flattens diffusion models more than EMA, SWA and IP", NO_NUMBER, PAPER,
              "MC sharpness LPF_sigma - L of +SAM minus that of X < 0 for each X of ADM, +EMA, +SWA, +IP, at every "
              "measured sigma", _mc_sharpness, FLATNESS_ROWS),
        Claim("indirect_flat", "flatness", "EMA and SWA flatten indirectly: +EMA and +SWA are flatter than ADM",
              LOSS_FIGURE, "EMA and SWA are indirect flattening methods (flatter than ADM, less than SAM)", NO_NUMBER,
              PAPER, "MC sharpness of +EMA minus ADM < 0 and of +SWA minus ADM < 0 at every measured sigma",
              _indirect_flat, ("ADM", "+EMA", "+SWA")),
        Claim("curve_rise", "flatness", "Loss under weight perturbation rises least for +SAM", LOSS_FIGURE,
              "SAM's curve is the flattest", NO_NUMBER, PAPER,
              "mean over a and directions of L(theta + a d) - L(theta) on the 1-D curves: +SAM minus X < 0 for each X "
              "of ADM, +EMA, +SWA, +IP", _curve, FLATNESS_ROWS),
        Claim("surface", "flatness", "ADM+SAM's 2-D loss surface is flatter than ADM's",
              "figure: loss surface of ADM vs ADM+SAM", "ADM+SAM's surface is flatter", NO_NUMBER, PAPER,
              "mean over the 2-D grid of L - L(theta) (same directions seed and data): +SAM minus ADM < 0",
              _surface, ("ADM", "+SAM")),
        Claim("quant_8bit", "quant", "8-bit weight quantization hurts +SAM less than ADM",
              "quantization result (CIFAR-10, T'=20)", "ADM 34.47 -> 48.02 (+13.55); +SAM 9.01 -> 8.94 (-0.07)",
              SECONDARY, PAPER,
              "dFID = FID(8-bit) - FID(32-bit) (same image seeds; raw weights, quant.respacing): dFID(+SAM) - "
              "dFID(ADM) < 0; relative to ADM's 32-bit FID", _quant_8bit, ("ADM", "+SAM"), fid_based=True),
        Claim("exposure", "exposure", "+SAM has less exposure bias than ADM",
              "exposure-bias figure (predicted-noise norm, CIFAR-10)", "gap ADM +11.39, +SAM +3.32", SECONDARY, PAPER,
              "exposure gap (sampling minus training norm, reduced over steps by exposure.aggregate) of +SAM minus "
              "that of ADM < 0 (raw weights)", _exposure, ("ADM", "+SAM")),
        Claim("rho", "rho", "Diffusion models are inherently flat: the usual rho barely flattens them, a larger rho "
              "is needed", "paper's rho discussion",
              "the usual rho (0.05) barely changes a diffusion model's flatness; a larger rho (README: 0.1) is needed",
              SECONDARY, PAPER,
              "MC sharpness at the sweep's smallest rho changes by less than verdict.barely relative to rho = 0 "
              "(one-sided), and each larger rho of the sweep minus the smallest < 0", _rho, ("ADM", "+SAM", RHO_RUNS)),
        Claim("ip_flatness", "flatness", "+IP is flatter than ADM (lower MC sharpness), with the same weights averaging",
              "added: the paper groups IP with the indirect methods, tested here like +EMA/+SWA", NO_NUMBER,
              NO_NUMBER, ADDED,
              f"MC sharpness of the ip variant minus that of the adm variant < 0 at every measured sigma, for each "
              f"weights kind measured for both ({IP_PAIRS})", _ip_flatness, IP_ROWS),
        Claim("ip_quant", "quant", "8-bit weight quantization hurts +IP less than ADM", "added: DDPM-IP claim",
              "no IP number (the paper's flatter-is-more-robust argument applied to IP)", NO_NUMBER, ADDED,
              f"dFID(8-bit) of the ip variant minus that of the adm variant < 0, for each weights kind measured for "
              f"both ({IP_PAIRS})", _ip_quant, IP_ROWS, fid_based=True),
        Claim("ip_exposure", "exposure", "+IP has less exposure bias than ADM", "added: DDPM-IP claim",
              "no IP number: DDPM-IP introduced IP to reduce exposure bias", NO_NUMBER, ADDED,
              f"exposure gap of the ip variant minus that of the adm variant < 0, for each weights kind measured for "
              f"both ({IP_PAIRS})", _ip_exposure, IP_ROWS),
    ]
    return specs


CLAIM_GROUPS = tuple(SECTIONS)
#: the claims' groups stage length measures at saved checkpoints (FID and MC sharpness; issue 21)
CHECKPOINT_GROUPS = ("fid", "flatness")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Every claim's parts and its decisions: ``main`` (the pooled, floored variance model), ``plain`` (per-comparison
    paired t-intervals: the sensitivity check) and ``kid`` (the FID-based claims with KID in place of FID)."""
    specs: dict
    parts: dict
    why: dict
    main: dict
    plain: dict
    kid: dict


def evaluate(workspace) -> Evaluation:
    """Every claim evaluated together: the variance model pools over every claim's parts of one kind, and the
    multiplicity correction runs over each family of claims (flatlib.measure.stats.decide). Under an
    :class:`AtCheckpoints` view only the claims of :data:`CHECKPOINT_GROUPS` (the same rule, over the claims
    evaluable there)."""
    cfg = load_params(workspace).verdict
    specs = {c.id: c for c in claim_specs()}
    parts, kid_parts, why = {}, {}, {}
    for cid, spec in specs.items():
        if isinstance(workspace, AtCheckpoints) and spec.group not in CHECKPOINT_GROUPS:
            why[cid] = "measured at the final step only"
            continue
        try:
            parts[cid] = spec.parts(workspace, "fid")
        except NotEvaluable as err:
            why[cid] = str(err)
            continue
        if spec.fid_based:
            try:
                kid_parts[cid] = spec.parts(workspace, "kid_mean")
            except NotEvaluable:
                pass
    families = {cid: spec.family for cid, spec in specs.items()}
    return Evaluation(specs, parts, why, decide(parts, families, cfg), decide(parts, families, cfg, False, False),
                      decide(kid_parts, families, cfg))


def _decisive(parts: list[Part], decision) -> int:
    """The part that decided the claim: the weakest part for it, or the strongest against it."""
    signs = [p.direction * (iv.mean - p.threshold * p.scale) for p, iv in zip(parts, decision.intervals)]
    ps = [iv.p if math.isfinite(iv.p) else 1.0 for iv in decision.intervals]
    against = [j for j, s in enumerate(signs) if s < 0]
    if decision.side == "against" and against:
        return min(against, key=lambda j: ps[j])
    return max(range(len(parts)), key=lambda j: ps[j])


def _pct(x: float) -> str:
    return fmt(100 * x, "percent", sign=True) + "%" if math.isfinite(x) else "-"


def _relative(part: Part, iv) -> str:
    """The part's relative effect (A - B) / scale with its interval, in percent."""
    return fmt_interval(iv.mean / part.scale, iv.half_width / part.scale, "percent", sign=True, percent=True)


def _part_text(part: Part, iv, kind: str) -> str:
    paper = f"; paper {_pct(part.paper_rel)}" if math.isfinite(part.paper_rel) else ""
    return (f"{part.name}: {fmt(np.mean(part.a), kind)} vs {fmt(np.mean(part.b), kind)}, difference "
            f"{fmt_interval(iv.mean, iv.half_width, kind, sign=True)} (relative {_relative(part, iv)}{paper})")


def _kind_of_claim(spec: Claim) -> str:
    return {"fid": "fid", "quant": "fid", "exposure": "gap"}.get(spec.group, "sharpness")


def claims(workspace, group: str | None = None) -> pd.DataFrame:
    """Every claim (or those of ``group``; all are evaluated together, see :func:`evaluate`).

    Columns: group, claim, source (the paper's table, figure or section, or "added: ..."), family (paper / added),
    paper (the paper's evidence) and provenance, rule, measured (every part: means, the paired difference with its
    interval, the relative effect beside the paper's), decisive part (the part that decided the outcome: the
    weakest part for the claim, the strongest against it), effect (its relative effect (A - B) / B with its
    interval, in percent) and paper effect (the paper's), p and p adjusted (flatlib.measure.stats.decide), verdict (the
    four-valued outcome; "not evaluated" when the measurement was not configured), plain t (the outcome under
    per-comparison paired t-intervals), fragile, KID (the FID-based claims' outcome with KID) and FID vs KID,
    seeds, runs (how many training runs the claim uses plateaued, their change per doubling of steps, the others'
    status).
    """
    if group is not None and group not in CLAIM_GROUPS:
        raise ValueError(f"group must be one of {CLAIM_GROUPS}, got {group!r}")
    params = load_params(workspace)
    ev, plateaus = evaluate(workspace), plateau_table(workspace)
    records = []
    for cid, spec in ev.specs.items():
        if group is not None and spec.group != group:
            continue
        record = dict(id=cid, group=spec.group, claim=spec.claim, source=spec.source, family=spec.family,
                      paper=spec.paper, provenance=spec.provenance, rule=spec.rule, seeds=len(params.seeds),
                      runs=_runs_note(plateaus, spec.used))
        if cid in ev.why:
            records.append(dict(record, measured=f"({ev.why[cid]})", effect="-",
                                **{"paper effect": "-", "decisive part": "-"}, p=math.nan,
                                **{"p adjusted": math.nan}, verdict=NOT_EVALUATED, **{"plain t": NOT_EVALUATED},
                                fragile=False, KID="", **{"FID vs KID": ""}))
            continue
        parts, main, plain = ev.parts[cid], ev.main[cid], ev.plain[cid]
        j = _decisive(parts, main)
        iv = main.intervals[j]
        kid = ev.kid[cid].outcome if cid in ev.kid else ""
        per_parameter = [rho_per_parameter(workspace)] if cid == "rho" else []
        record.update(
            measured="; ".join([_part_text(p, i, _kind_of_claim(spec)) for p, i in zip(parts, main.intervals)]
                               + per_parameter),
            effect=_relative(parts[j], iv), **{"decisive part": parts[j].name},
            **{"paper effect": _pct(parts[j].paper_rel)}, p=main.p, **{"p adjusted": main.p_adjusted},
            verdict=main.outcome, **{"plain t": plain.outcome},
            fragile=base_outcome(main.outcome) != base_outcome(plain.outcome), KID=kid,
            **{"FID vs KID": ("differ" if kid and base_outcome(kid) != base_outcome(main.outcome) else
                              "agree" if kid else "")})
        records.append(record)
    return pd.DataFrame(records).set_index("id")


def claim_parts(workspace) -> pd.DataFrame:
    """One row per part of every evaluated claim: the compared rows' seed means, the difference with its interval
    (pooled model and plain t), the relative effect (A - B) / scale with its interval, the paper's relative effect,
    the part's p and which variance decided its width; with the claim's outcome (the forest plot's data)."""
    ev, records = evaluate(workspace), []
    for cid, parts in ev.parts.items():
        for part, iv, plain in zip(parts, ev.main[cid].intervals, ev.plain[cid].intervals):
            records.append({"claim": cid, "family": ev.specs[cid].family, "part": part.name, "kind": part.kind,
                            "A": float(np.mean(part.a)), "B": float(np.mean(part.b)), "difference": iv.mean,
                            "half-width": iv.half_width, "df": iv.df, "plain half-width": plain.half_width,
                            "scale": part.scale, "relative": iv.mean / part.scale,
                            "relative low": iv.low / part.scale, "relative high": iv.high / part.scale,
                            "paper relative": part.paper_rel, "threshold": part.threshold, "p": iv.p,
                            "variance": iv.how, "outcome": ev.main[cid].outcome})
    return pd.DataFrame(records)


def claim_seed_values(workspace) -> pd.DataFrame:
    """Per training seed, the two compared values and their difference of every part of every evaluated claim."""
    ev, seeds_ = evaluate(workspace), load_params(workspace).seeds
    return pd.DataFrame([{"claim": cid, "part": part.name, "seed": seed, "A": a, "B": b, "A - B": a - b}
                         for cid, parts in ev.parts.items() for part in parts
                         for seed, a, b in zip(seeds_, part.a, part.b)])


def counts(df: pd.DataFrame, family: str) -> dict[str, int]:
    """Outcome counts of one family's claims (the outcome word: "reproduced, 40x smaller" counts as reproduced)."""
    words = df.loc[df["family"] == family, "verdict"].map(base_outcome).value_counts()
    return {word: int(words.get(word, 0)) for word in OUTCOMES + (NOT_EVALUATED,)}


def counts_text(df: pd.DataFrame, family: str) -> str:
    c = counts(df, family)
    return ", ".join(f"{n} {word}" for word, n in c.items() if n or word in ("reproduced", "contradicted"))


NOT_PLATEAUED = "NOT plateaued"


def _runs_note(table: pd.DataFrame, used) -> str:
    """"all N plateaued" or "K of N plateaued", the range of the runs' change per doubling of steps, and each run the
    claim uses that did not plateau with its status (``table``: plateau_table; issue 21); then the imported ones."""
    variants_ = {VARIANT_OF.get(r, r) for r in used}
    wanted = table[[run in variants_ or (RHO_RUNS in used and run.startswith("sam rho=")) for run, _ in table.index]]
    imported = [f"{run} seed {seed}" for (run, seed), status in wanted["status"].items() if status == IMPORTED]
    trained = wanted[wanted["status"] != IMPORTED]
    bad = [f"{run} seed {seed} ({status})" for (run, seed), status in trained["status"].items() if status != PLATEAUED]
    note = f"all {len(trained)} plateaued" if not bad else f"{len(trained) - len(bad)} of {len(trained)} plateaued"
    doubling = trained["change per doubling"].dropna()
    if len(doubling):
        note += f" (change per doubling {doubling.min():+.1%} to {doubling.max():+.1%})"
    if bad:
        note += f"; {NOT_PLATEAUED}: " + ", ".join(bad)
    if not imported:
        return note
    return (f"{note}; " if len(trained) else "") + "imported (not trained here): " + ", ".join(imported)


def verdict_heading(df: pd.DataFrame, workspace) -> str:
    """"5 claims under test (CPU scale: digits 8x8): 3 reproduced, 2 inconclusive": the page's result heading."""
    words = df["verdict"].map(base_outcome).value_counts()
    tally = ", ".join(f"{int(words[w])} {w}" for w in OUTCOMES + (NOT_EVALUATED,) if w in words)
    return f"{len(df)} claim{'s' if len(df) != 1 else ''} under test ({scale(workspace)}): {tally}"


def show_verdicts(df: pd.DataFrame, workspace, name: str = "claims") -> None:
    """A heading with the claims' outcome counts at the run's scale, the counts of the paper's claims apart from
    the added ones and the procedure that decided them, then every claim in one verdict table; written at full
    length to reports/tables/NAME.csv."""
    save_table(df, workspace, name)
    show(Shown(f"<h2>{html.escape(verdict_heading(df, workspace))}</h2>", verdict_heading(df, workspace)))
    for family, what in ((PAPER, "the paper's claims"), (ADDED, "added claims (not the paper's)")):
        if (df["family"] == family).any():
            print(f"{what.capitalize()} ({int((df['family'] == family).sum())}): {counts_text(df, family)}.")
    print(f"Procedure: {rule_text(load_params(workspace).verdict)}.")
    fragile = [cid for cid, r in df.iterrows() if r["fragile"]]
    if fragile:
        print(f"Fragile (the plain paired t-interval gives another outcome): {', '.join(fragile)}.")
    differ = [cid for cid, r in df.iterrows() if r["FID vs KID"] == "differ"]
    if differ:
        print(f"FID and KID outcomes differ: {', '.join(differ)}.")
    descending = [cid for cid, r in df.iterrows() if NOT_PLATEAUED in r["runs"] and r["verdict"] != NOT_EVALUATED]
    if descending:
        print(f"Judged on runs not shown to have plateaued (see the runs column): {', '.join(descending)}.")
    show(verdict_view(df))


def print_extractor_note(workspace) -> None:
    """What the FIDs are computed with (and, for the CPU FeatureNet, how well it classifies)."""
    fid = load_fid(workspace)
    print(f"{metric_label(workspace)} ({fid.get('extractor')} features): per row, T' and training seed on all "
          f"{fid.get('sets', 1) * fid.get('num_samples', 0)} samples ({fid.get('sets')} sample sets of "
          f"{fid.get('num_samples')}, the same image seeds for every model; the sets measure the sampling noise).")
    print(floor_text(workspace))
    if fid.get("extractor") == "featurenet":
        acc = load_featurenet(workspace)
        print(f"FeatureNet (trained by the pipeline on the data set): validation accuracy "
              f"{fmt(acc.get('val_acc', float('nan')), 'accuracy')}, training accuracy "
              f"{fmt(acc.get('train_acc', float('nan')), 'accuracy')}. Its FIDs compare rows with each other, "
              "never with the paper's Inception FIDs.")


def is_paper_profile(workspace) -> bool:
    p = load_params(workspace)
    return p.fid.extractor == vocabulary.PAPER_EXTRACTOR and p.sample.num >= 50000 and p.paper_dataset is not None


#: fewer training steps than this make a run a smoke fixture: it tests that the pipeline runs, not the paper
SMOKE_STEPS = 100


def is_smoke(workspace) -> bool:
    p = load_params(workspace)
    return bool(set(p.variants) - set(p.imports)) and p.train.steps < SMOKE_STEPS


def scale(workspace) -> str:
    """"CPU scale: digits 8x8": the run's scale in a few words (what every outcome is qualified by)."""
    from flatlib.training.data import PACKAGED

    p = load_params(workspace)
    size = f"{p.data.name} {p.data.image_size}x{p.data.image_size}"
    if is_paper_profile(workspace):
        return f"paper scale: {size}"
    if is_smoke(workspace):
        return f"smoke scale: {size}"
    return f"{'CPU' if p.data.name in PACKAGED else 'reduced'} scale: {size}"


SMOKE_BANNER = ("**Smoke fixture, not results.** This notebook ran on a smoke profile ({steps} training steps, "
                "{samples} samples per row): it checks that the pipeline and the notebook run, and its numbers and "
                "verdicts mean nothing about the paper. The results of the default run are in `docs/` "
                "(`docs/index.html`).")


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
    profile, the imported weights (file, SHA-256) and the rows they leave unmeasured, the scale; on a smoke
    profile first a banner saying the notebook is a smoke fixture, not results."""
    p = load_params(workspace)
    if is_smoke(workspace):
        banner = SMOKE_BANNER.format(steps=p.train.steps, samples=p.sample.sets * p.sample.num)
        show(Shown(f'<p class="smoke-banner" style="border: 2px solid #c8332b; padding: 0.5em">'
                   f'{html.escape(banner.replace("**", "").replace("`", ""))}</p>', banner.replace("**", ""), banner))
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
                   "train.batch_size", "train.plateau_window", "train.plateau_tol", "train.plateau_level",
                   "optim.lr", "optim.rho", "optim.adaptive", "variants", "train.ema_rate", "train.ema_warmup",
                   "swa.start_step", "swa.steps", "swa.window", "swa.lr_min", "sample.num", "sample.sets",
                   "sample.respacings",
                   "sample.eps_scale", "fid.extractor", "fid.reference_size"],
    "quantization": ["quant.bits", "quant.per_channel", "quant.layer_types", "quant.respacing", "sample.num",
                     "fid.extractor"],
    "flatness": ["flatness.num_triples", "flatness.t_min", "flatness.t_max", "flatness.hybrid_loss",
                 "flatness.sigmas", "flatness.draws", "flatness.filter_relative", "flatness.curve_span",
                 "flatness.curve_points", "flatness.curve_directions", "flatness.surface_variants",
                 "flatness.surface_points", "flatness.hessian_iters", "flatness.hessian_tol",
                 "flatness.hessian_samples", "optim.rho"],
    "exposure": ["exposure.num", "exposure.respacing", "exposure.aggregate", "sample.eps_scale"],
    "rho_sweep": ["optim.rho", "rho_sweep.rhos", "verdict.barely", "rho_sweep.sigma", "rho_sweep.respacing", "flatness.draws",
                  "fid.extractor"],
    "summary": ["seeds", "verdict.confidence", "verdict.multiplicity", "verdict.barely", "length.fractions",
                "length.last_k", "fid.floor_draws", "data.name", "train.steps", "train.plateau_tol", "train.plateau_level", "sample.num",
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
