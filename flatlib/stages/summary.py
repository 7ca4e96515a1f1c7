"""The DVC summary stage. From the per-seed measurements and the training runs' records (both under metrics/:
metrics/train/ holds each run's log and metrics, flatlib.layout.run_record) it writes

- ``results/summary.json``: the headline numbers as one flat JSON object (``dvc metrics show``, ``dvc exp show``):
  FID at each T' of ADM, +EMA, +SAM and +SAM+EMA, and for ADM and +SAM the MC sharpness (largest measured sigma),
  the FID change under 8-bit weights and the exposure gap, each the mean over training seeds; then how many of the
  paper's claims flatlib.report.claims finds reproduced, contradicted, weaker than the paper, inconclusive and not
  evaluated, the same for the suite's added claims (``added_*``) and the number of fragile verdicts;
- ``results/plots/*.csv``: the data of dvc.yaml's ``plots`` (``dvc plots show``), long format with a ``row``
  column that the template colours by;
- ``results/claims.csv`` (one row per part of every claim: difference, interval, relative effect beside the
  paper's, p, which variance decided the width, the claim's outcome) and ``results/claims_per_seed.csv`` (per
  training seed the two compared values of every part and their difference).

A row the profile does not measure (an import's missing weights, no SAM variant) is left out, never an error.

    python -m flatlib.stages.summary                # in the repository root, after the measurement stages
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from flatlib import atomic, layout
from flatlib.cli import cli_parser
from flatlib.errors import MissingInputError, add_debug_flag, cli_errors
from flatlib.measure import records
from flatlib.vocabulary import NOT_EVALUATED, OUTCOMES, label
from flatlib.report import claims, exposure_table, flatness_table, quant_table, table1
from flatlib.report.claims import ADDED, PAPER, claim_parts, claim_seed_values, counts
from flatlib.report.artifacts import (ArtifactMissing, respacings, exposure_entries, flatness_entries, load_params,
                                      load_training_log, mean_columns)

#: summary key suffix -> Table 1 row whose FID is a headline number
FID_ROWS = {"adm": "ADM", "ema": "+EMA", "sam": "+SAM", "sam_ema": "+SAM+EMA"}
#: summary key suffix -> row compared on flatness, quantization and exposure (the paper's ADM vs SAM)
COMPARED_ROWS = {"adm": "ADM", "sam": "+SAM"}


def _put(out: dict, key: str, df: pd.DataFrame, row: str, column: str | None) -> None:
    """out[key] = df.loc[row, column] where that cell exists and is a finite number."""
    if column in df.columns and row in df.index and math.isfinite(value := float(df.loc[row, column])):
        out[key] = value


def headline(workspace) -> dict[str, float | int]:
    """The flat summary: ``fid{T'}_{row}``, ``sharp_{row}`` (MC sharpness), ``dfid8_{row}`` (FID change under
    8-bit weights), ``gap_{row}`` (exposure gap), means over training seeds; one count per outcome of the paper's
    claims, of the added claims (``added_``), and of the fragile verdicts."""
    out = {}
    fid = table1(workspace)
    for t in respacings(workspace):
        for key, row in FID_ROWS.items():
            _put(out, f"fid{t}_{key}", fid, row, f"measured T'={t}")
    flatness, exposure = flatness_table(workspace), exposure_table(workspace)
    largest_sigma = max(mean_columns(flatness, "MC sharp s="), key=lambda c: float(c.split("=")[1]), default=None)
    tables = {"sharp": (flatness, largest_sigma), "dfid8": (quant_table(workspace), "dFID 8-bit"),
              "gap": (exposure, next(iter(mean_columns(exposure, "gap (")), None))}
    for name, (df, column) in tables.items():
        for key, row in COMPARED_ROWS.items():
            _put(out, f"{name}_{key}", df, row, column)
    verdicts = claims(workspace)
    for family, prefix in ((PAPER, ""), (ADDED, "added_")):
        out.update({prefix + word.replace(" ", "_"): n for word, n in counts(verdicts, family).items()})
    out["fragile"] = int(verdicts["fragile"].sum())
    return out


def scorecard(summary: dict) -> str:
    """The README's scorecard line from results/summary.json: the paper's claims, then the added ones apart."""
    def line(prefix: str) -> str:
        return ", ".join(f"{summary[prefix + word.replace(' ', '_')]} {word}" for word in OUTCOMES + (NOT_EVALUATED,)
                         if summary.get(prefix + word.replace(" ", "_")) or word in ("reproduced", "contradicted"))
    paper = sum(summary[w.replace(" ", "_")] for w in OUTCOMES + (NOT_EVALUATED,))
    added = sum(summary["added_" + w.replace(" ", "_")] for w in OUTCOMES + (NOT_EVALUATED,))
    return (f"**The paper's {paper} claims: {line('')}.** Added claims (not the paper's; {added}): {line('added_')}. "
            f"Fragile verdicts: {summary['fragile']}.")


# ------------------------------------------------------------------------------------------------ plot data
def training_loss(workspace) -> pd.DataFrame:
    """step, row, seed, loss (training loss), eval_mse (held-out L_simple): every run trained here (imports have
    no log), train phase."""
    params = load_params(workspace)
    frames = [load_training_log(workspace, v, s).assign(row=label(v, "raw"), seed=s)
              for v in params.variants if v not in params.imports for s in params.seeds]
    columns = ["step", "row", "seed", "loss", "eval_mse"]
    return pd.concat([f.reindex(columns=columns) for f in frames]) if frames else pd.DataFrame(columns=columns)


def fid(workspace) -> pd.DataFrame:
    """T, row, fid: FID per Table 1 row and T' (mean over training seeds and sample sets)."""
    table = table1(workspace)
    records = [{"T": t, "row": row, "fid": table.loc[row, f"measured T'={t}"]}
               for t in respacings(workspace) if f"measured T'={t}" in table for row in table.index]
    return pd.DataFrame(records, columns=["T", "row", "fid"])


def loss_curve(workspace) -> pd.DataFrame:
    """alpha, row, loss, rise: the 1-D loss under weight perturbation L(theta + alpha d) and its rise over
    L(theta), averaged over directions and training seeds."""
    frames = []
    for row, entries in flatness_entries(workspace).items():
        curves = [e["curve"] for e in entries if e.get("curve")]
        if curves:
            loss = np.mean([np.mean(c["losses"], axis=0) for c in curves], axis=0)
            frames.append(pd.DataFrame({"alpha": curves[0]["alphas"], "row": row, "loss": loss,
                                        "rise": loss - np.mean([c["base_loss"] for c in curves])}))
    return pd.concat(frames) if frames else pd.DataFrame(columns=["alpha", "row", "loss", "rise"])


def exposure_gap(workspace) -> pd.DataFrame:
    """t, row, gap, sampling_norm, training_norm: per sampling step (timestep t), the predicted-noise norm on the
    sampling chain and on forward-noised data and their gap, averaged over training seeds."""
    frames = []
    for variant, weights, entries in exposure_entries(workspace):
        means = {k: np.mean([e[k] for e in entries], axis=0) for k in ("gap", "sampling_norm", "training_norm")}
        frames.append(pd.DataFrame({"t": entries[0]["t"], "row": label(variant, weights), **means}))
    return pd.concat(frames) if frames else pd.DataFrame(columns=["t", "row", "gap", "sampling_norm", "training_norm"])


PLOT_DATA = {"training_loss": training_loss, "fid": fid, "loss_curve": loss_curve, "exposure_gap": exposure_gap}


def write(workspace) -> dict[str, float | int]:
    """Write the summary and every plot file into ``workspace``; return the summary."""
    workspace = Path(workspace)
    summary = headline(workspace)
    (workspace / layout.PLOTS).mkdir(parents=True, exist_ok=True)
    records.write("summary", workspace / layout.SUMMARY, summary)
    for name in layout.PLOT_NAMES:  # 6 significant digits: small files, short diffs
        data = PLOT_DATA[name](workspace)
        atomic.write_text(workspace / layout.plot_file(name), data.to_csv(index=False, float_format="%.6g"))
    for path, table in ((layout.CLAIM_PARTS, claim_parts), (layout.CLAIM_SEEDS, claim_seed_values)):
        atomic.write_text(workspace / path, table(workspace).to_csv(index=False, float_format="%.6g"))
    return summary


def build_parser():
    parser = cli_parser("python -m flatlib.stages.summary", __doc__)
    parser.add_argument("--workspace", default=".", help="the repository root the pipeline ran in")
    add_debug_flag(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with cli_errors("stages.summary", args.debug):
        try:
            write(args.workspace)
        except ArtifactMissing as err:  # a measurement stage has not run: one line, not a traceback
            raise MissingInputError(str(err)) from err
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
