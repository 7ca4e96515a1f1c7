"""Issue 21 items 3-5 in the report, from stage length (metrics/length/V/seedS.json, flatlib.stages.length):

- **verdicts against training length**: every FID and flatness claim decided again, by the same rule
  (flatlib.report.claims.evaluate over an :class:`~flatlib.report.artifacts.AtCheckpoints` view), on the raw and
  EMA weights at each fraction of training in ``length.fractions``, beside the final verdict; a verdict that
  changes between the last fraction and the end is marked. A claim with an SWA row is not evaluable before the
  SWA phase, so it has no outcome at a fraction;
- **the equal-progress control for SAM**: the claims comparing SAM rows with ADM rows, with ADM at the checkpoint
  whose held-out loss is SAM's final one (SAM at its final step): does each SAM verdict survive?
- **the raw weights' iterate noise**: per variant and T', the spread of raw-weight FID over the last
  ``length.last_k`` checkpoints of a run beside the spread of the final raw FID between training seeds, and the
  raw FID as the mean over those checkpoints beside the final iterate's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from flatlib.measure.stats import base_outcome, estimate
from flatlib.report.artifacts import (EQUAL_PROGRESS, HALF_WIDTH, AtCheckpoints, fmt, load_fid, load_length,
                                      load_params, seed_values, with_kinds)
from flatlib.report.claims import CHECKPOINT_GROUPS, _decisive, _relative, evaluate
from flatlib.report.display import Shown, show
from flatlib.report.figures import plot_length_effects
from flatlib.report.tables import show_table
from flatlib.vocabulary import NOT_EVALUATED, PAPER_RESPACINGS, VARIANT_OF, label

#: the final step's column of the length table (Table 1's verdicts)
FINAL = "1"


def _trained(workspace) -> list[str]:
    params = load_params(workspace)
    return [v for v in params.variants if v not in params.imports]


def length_steps(workspace) -> dict[str, int]:
    """fraction ("0.5", ..., and :data:`FINAL`) -> the checkpoint step measured (of the first trained run: every
    run saves at the same steps)."""
    variants = _trained(workspace)
    if not variants:
        return {}
    record = load_length(workspace, variants[0], load_params(workspace).seeds[0])
    return {**record["fractions"], FINAL: record["final_step"]}


#: why a claim has no outcome at a saved checkpoint (printed once under the tables)
NOT_AT_CHECKPOINTS = (f"{NOT_EVALUATED.capitalize()} at a saved checkpoint: a claim with an SWA row (the SWA phase "
                      "follows the final step) or a measure taken at the final step only (the 1-D and 2-D loss "
                      "landscapes)")


def _cell(ev, cid: str) -> str:
    """A claim's outcome with the relative effect of its deciding part (:data:`NOT_EVALUATED` without one)."""
    if cid in ev.why:
        return NOT_EVALUATED
    parts, main = ev.parts[cid], ev.main[cid]
    j = _decisive(parts, main)
    return f"{main.outcome} ({_relative(parts[j], main.intervals[j])})"


def _evaluations(workspace) -> dict[str, object]:
    """fraction -> the claims' Evaluation at that length (:data:`FINAL`: Table 1's)."""
    return {**{f: evaluate(AtCheckpoints(str(workspace), f)) for f in length_steps(workspace) if f != FINAL},
            FINAL: evaluate(workspace)}


def _column(fraction: str, step: int) -> str:
    return f"{float(fraction):.0%} (step {step})"


def length_verdicts(workspace) -> pd.DataFrame:
    """One row per FID and flatness claim: its outcome (and decisive part's relative effect) at each measured
    fraction of training and at the end, and "changes" where the outcome word at the last fraction differs from the
    final one (both evaluated)."""
    steps, evs = length_steps(workspace), _evaluations(workspace)
    if not steps:
        return pd.DataFrame().assign(**{"claim": []}).set_index("claim")
    specs = evs[FINAL].specs
    ids = [cid for cid, spec in specs.items() if spec.group in CHECKPOINT_GROUPS]
    table = pd.DataFrame({_column(f, steps[f]): [_cell(ev, cid) for cid in ids] for f, ev in evs.items()}, index=ids)
    table.index.name = "claim"
    last = [f for f in steps if f != FINAL][-1:]
    if last:
        before, end = evs[last[0]], evs[FINAL]
        table[f"changes {float(last[0]):.0%} -> 100%"] = [
            "CHANGES" if cid in before.main and cid in end.main and
            base_outcome(before.main[cid].outcome) != base_outcome(end.main[cid].outcome) else "" for cid in ids]
    return table


def length_effects(workspace) -> pd.DataFrame:
    """The figure's data: per claim part and length, the step, the relative paired effect (A - B) / scale with its
    interval and the claim's outcome there (long format)."""
    steps, records = length_steps(workspace), []
    for fraction, ev in (_evaluations(workspace).items() if steps else ()):
        for cid, parts in ev.parts.items():
            if ev.specs[cid].group not in CHECKPOINT_GROUPS:
                continue
            for part, iv in zip(parts, ev.main[cid].intervals):
                records.append({"claim": cid, "part": part.name, "step": steps[fraction],
                                "relative": iv.mean / part.scale, "relative low": iv.low / part.scale,
                                "relative high": iv.high / part.scale, "outcome": ev.main[cid].outcome})
    return pd.DataFrame(records, columns=["claim", "part", "step", "relative", "relative low", "relative high",
                                          "outcome"])


def _compares_sam_with_adm(spec) -> bool:
    variants = {VARIANT_OF.get(row) for row in spec.used}
    return {"sam", "adm"} <= variants


def equal_progress(workspace) -> pd.DataFrame:
    """The claims comparing a SAM row with an ADM row: the final verdict beside the verdict with ADM at its
    equal-progress checkpoint (held-out loss closest to SAM's final one; SAM final), whether the outcome word
    survives, and ADM's checkpoint per seed."""
    if "adm" not in _trained(workspace) or "sam" not in _trained(workspace):
        return pd.DataFrame().assign(**{"claim": []}).set_index("claim")
    final, control = evaluate(workspace), evaluate(AtCheckpoints(str(workspace), EQUAL_PROGRESS, ("adm",)))
    records = [{"claim": cid, "final": _cell(final, cid), "ADM at SAM's held-out loss": _cell(control, cid),
                "survives": ("-" if cid in control.why or cid in final.why else
                             "yes" if base_outcome(control.main[cid].outcome) == base_outcome(final.main[cid].outcome)
                             else "NO")}
               for cid, spec in final.specs.items() if _compares_sam_with_adm(spec) and spec.group in CHECKPOINT_GROUPS]
    return pd.DataFrame(records).set_index("claim")


def equal_progress_steps(workspace) -> pd.DataFrame:
    """Per seed: SAM's final held-out loss, the ADM checkpoint picked and its held-out loss."""
    params = load_params(workspace)
    records = [{"seed": s, "SAM final held-out loss": r["target"], "ADM checkpoint": r["step"],
                "ADM held-out loss there": r["eval_mse"], "final step": rec["final_step"]}
               for s in params.seeds for rec in [load_length(workspace, "adm", s)] for r in [rec[EQUAL_PROGRESS]]]
    return with_kinds(pd.DataFrame(records).set_index("seed"),
                      {"SAM final held-out loss": "loss", "ADM held-out loss there": "loss"})


def _last_k_fid(workspace, variant: str, respacing: int) -> np.ndarray:
    """array[seed, checkpoint]: raw-weight FID (on all samples of a seed) at each of the last K checkpoints; the
    final one is Table 1's."""
    final, _ = seed_values(load_fid(workspace)["rows"][f"{variant}/raw"][f"T{respacing}"])
    out = []
    for seed, last in zip(load_params(workspace).seeds, final):
        record = load_length(workspace, variant, seed)
        out.append([last if step == record["final_step"] else
                    record["rows"][str(step)]["raw"]["fid"][f"T{respacing}"]["fid_all"] for step in record["last_k"]])
    return np.asarray(out, dtype=float)


def iterate_noise(workspace) -> pd.DataFrame:
    """Per variant and T': the final raw FID and the mean over the last K checkpoints (mean ± interval over seeds),
    the sd between training seeds of the final raw FID, the sd between the last K iterates within a seed (pooled
    over seeds) and the iterate variance as a share of the between-seed variance."""
    params, records = load_params(workspace), []
    k = params.length.last_k
    for variant in _trained(workspace) if k > 1 and "raw" in params.sample.weights else ():
        for t in (t for t in params.length.respacings if t in PAPER_RESPACINGS):
            fids = _last_k_fid(workspace, variant, t)
            final, mean_k = estimate(fids[:, -1], params.verdict.confidence), estimate(fids.mean(axis=1),
                                                                                         params.verdict.confidence)
            seed_sd = float(np.std(fids[:, -1], ddof=1)) if len(fids) > 1 else float("nan")
            iterate_sd = float(np.sqrt(np.mean(np.var(fids, axis=1, ddof=1))))
            records.append({"row": label(variant, "raw"), "T'": t, "final": final.mean, "final" + HALF_WIDTH:
                            final.half_width, f"mean of last {fids.shape[1]}": mean_k.mean,
                            f"mean of last {fids.shape[1]}" + HALF_WIDTH: mean_k.half_width,
                            "sd between seeds": seed_sd, "sd between iterates": iterate_sd,
                            "iterate share": iterate_sd ** 2 / seed_sd ** 2})
    if not records:
        return pd.DataFrame().assign(row=[]).set_index("row")
    df = pd.DataFrame(records).set_index(["row", "T'"])
    return with_kinds(df, {c: "rel" if c == "iterate share" else "fid" for c in df.columns})


def show_length_verdicts(workspace) -> None:
    """The verdicts-against-length table, with the claims whose outcome changes between the last fraction and the
    end named."""
    df = length_verdicts(workspace)
    if df.empty:
        print("No training-length measurements (length.fractions: [] or no trained variant).")
        return
    changed = [cid for cid, flag in df.iloc[:, -1].items() if flag == "CHANGES"] if df.columns[-1].startswith(
        "changes") else []
    show_table(df, workspace, "length_verdicts", title="FID and flatness verdicts against training length (raw and "
               "EMA weights at saved checkpoints; the same rule over the claims evaluable there)")
    print(f"Outcome changes between the last fraction and the end: {', '.join(changed) if changed else 'none'}.")
    print(f"{NOT_AT_CHECKPOINTS}.")


def show_equal_progress(workspace) -> None:
    """The equal-progress control: ADM's checkpoints per seed, then each SAM-vs-ADM claim's verdict beside the final."""
    df = equal_progress(workspace)
    if df.empty:
        print("No equal-progress control (needs trained adm and sam variants).")
        return
    show_table(equal_progress_steps(workspace), workspace, "equal_progress_steps",
               title="ADM checkpoint whose held-out loss is closest to SAM's final one, per training seed")
    show_table(df, workspace, "equal_progress", title="SAM vs ADM at equal held-out loss (ADM at that checkpoint, "
               "SAM final)")
    lost = [cid for cid, r in df.iterrows() if r["survives"] == "NO"]
    print(f"SAM verdicts that do not survive equal progress: {', '.join(lost) if lost else 'none'}.")
    print(f"{NOT_AT_CHECKPOINTS}.")


def show_iterate_noise(workspace) -> None:
    """The iterate-noise table, and the rows whose final iterate's noise is at least half the between-seed
    variance (there the mean over the last K checkpoints is the steadier raw-weight value)."""
    df = iterate_noise(workspace)
    if df.empty:
        print("No iterate noise measured (length.last_k: 1, or no raw weights).")
        return
    show_table(df, workspace, "iterate_noise", title="Raw-weight FID: the final iterate against the last "
               "checkpoints (between-iterate vs between-seed spread)")
    dominated = [f"{row} T'={t} ({fmt(share, 'rel')})" for (row, t), share in df["iterate share"].items()
                 if share >= 0.5]
    print("Rows whose iterate variance is at least half the between-seed variance (read the mean over the last "
          f"checkpoints beside the final iterate): {', '.join(dominated) if dominated else 'none'}.")


def show_training_length(workspace):
    """Issue 21's checks of the verdicts in one notebook cell: the verdicts against training length, the
    equal-progress control for SAM and the raw weights' iterate noise; returns the figure of the paired effects
    against training step (shown as the cell's result)."""
    heading = "Do the verdicts hold at other training lengths, at equal progress, over the last iterates?"
    show(Shown(f"<h2>{heading}</h2>", heading))
    show_length_verdicts(workspace)
    show_equal_progress(workspace)
    show_iterate_noise(workspace)
    return plot_length_effects(workspace)
