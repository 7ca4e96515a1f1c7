"""The scoreboard: "did the paper hold?" answered in one block, generated from the claims
(flatlib.report.claims, the summary's verdict table): one sentence, the outcome counts of the paper's claims apart
from the added ones, the scale of the run, and one row per claim (claim | paper | measured effect ± interval |
outcome) grouped by the paper's sections, each linking to the verdict on the page with its evidence.

The summary notebook shows it first; :mod:`flatlib.stages.publish` copies its HTML to the top of docs/index.html and its
Markdown between the README's scoreboard markers, so the three never disagree.
"""
from __future__ import annotations

import html

import pandas as pd

from flatlib.report.artifacts import load_params, metric_label, num_parameters, num_training_images
from flatlib.report.claims import ADDED, PAPER, claims, counts, counts_text, is_paper_profile, scale
from flatlib.report.display import SECTIONS, VERDICT_COLORS, Shown, claim_anchor, show, verdict_mark
from flatlib.measure.stats import base_outcome
from flatlib.vocabulary import NOT_EVALUATED

#: the notebook (docs page) holding each group's evidence
PAGES = {"fid": "table1_fid", "flatness": "flatness", "quant": "quantization", "exposure": "exposure",
         "rho": "rho_sweep"}


def scale_note(workspace) -> str:
    """The scale caveat: data, model, steps, seeds, metric."""
    p = load_params(workspace)
    trained = set(p.variants) - set(p.imports)
    training = (f"{p.train.steps:,} training steps at batch {p.train.batch_size}" if trained
                else "imported weights (nothing trained here)")
    return (f"At {scale(workspace)} ({num_training_images(workspace):,} training images), a "
            f"{num_parameters(workspace):,}-parameter UNet, {training}, {len(p.seeds)} training "
            f"seed{'s' if len(p.seeds) != 1 else ''}, {p.sample.sets * p.sample.num:,} samples per row and T', "
            f"{metric_label(workspace)}. "
            + ("The paper's setting: its numbers are comparable." if is_paper_profile(workspace) else
               "Not the paper's setting (CIFAR-10 32x32, a ~52.5M-parameter UNet, 200k steps, FID on Inception "
               "features of 50k samples): absolute values are not comparable, only the direction and relative "
               "size of each effect."))


def answer(df: pd.DataFrame, workspace) -> str:
    """One sentence: did the paper's claims hold at this scale, and where."""
    paper = df[df["family"] == PAPER]
    words = paper["verdict"].map(base_outcome)
    c = counts(df, PAPER)
    decided = c["reproduced"] + c["contradicted"]
    word = ("Yes" if c["reproduced"] == len(paper) else "No" if c["reproduced"] == 0 and c["contradicted"] else
            "Undecided" if decided == 0 else "Partly")

    def where(outcome: str) -> str:
        hits = paper[words == outcome].groupby("group", sort=False).size()
        return "; ".join(f"{SECTIONS[g]} {n} of {int((paper['group'] == g).sum())}" for g, n in hits.items())

    parts = [f"{c['reproduced']} of the paper's {len(paper)} claims reproduce"
             + (f" ({where('reproduced')})" if c["reproduced"] else "")]
    if c["contradicted"]:
        parts.append(f"{c['contradicted']} are contradicted ({where('contradicted')})")
    rest = len(paper) - decided - c[NOT_EVALUATED]
    if rest:
        parts.append(f"{rest} are undecided (weaker than the paper or inconclusive)")
    return f"Did the paper hold at {scale(workspace)}? {word}: " + ", ".join(parts[:-1]) + (
        " and " if len(parts) > 1 else "") + parts[-1] + "."


def _rows(df: pd.DataFrame):
    """(group, [(claim id, row)]) per section of the paper, the paper's claims before the added ones."""
    for group in SECTIONS:
        rows = df[df["group"] == group]
        rows = pd.concat([rows[rows["family"] == PAPER], rows[rows["family"] != PAPER]])
        if len(rows):
            yield group, list(rows.iterrows())


def _measured(r) -> str:
    return "-" if r["verdict"] == NOT_EVALUATED else f"{r['effect']} ({r['decisive part']})"


def _html(df: pd.DataFrame, workspace, link_prefix: str) -> str:
    out = [f'<div class="scoreboard"><p class="answer">{html.escape(answer(df, workspace))}</p>',
           f'<p class="counts">The paper\'s claims ({int((df["family"] == PAPER).sum())}): '
           f'{html.escape(counts_text(df, PAPER))}. Added claims, not the paper\'s '
           f'({int((df["family"] == ADDED).sum())}): {html.escape(counts_text(df, ADDED))}.</p>',
           f'<p class="scale">{html.escape(scale_note(workspace))}</p>',
           '<table class="scoreboard-table stack"><caption>Every claim: the measured relative '
           'effect (A − B) / B of the part that decided it, with its interval, beside the paper\'s; '
           'each claim links to its evidence.</caption>',
           "<thead><tr><th>claim</th><th>paper</th><th>measured</th><th>outcome</th></tr></thead>"]
    for group, rows in _rows(df):
        out.append(f'<tbody><tr class="section"><th colspan="4">{html.escape(SECTIONS[group])}</th></tr>')
        for cid, r in rows:
            added = ' <span class="added">added</span>' if r["family"] != PAPER else ""
            out.append(
                f'<tr style="background-color: {VERDICT_COLORS.get(base_outcome(r["verdict"]), "#ffffff")}">'
                f'<td data-label="claim"><a href="{link_prefix}{PAGES[group]}.html#{claim_anchor(cid)}">'
                f'{html.escape(r["claim"])}</a>{added}</td>'
                f'<td data-label="paper">{html.escape(r["paper effect"])}</td>'
                f'<td data-label="measured">{html.escape(_measured(r))}</td>'
                f'<td data-label="outcome">{html.escape(verdict_mark(r["verdict"]))}</td></tr>')
        out.append("</tbody>")
    out.append("</table></div>")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(df: pd.DataFrame, workspace, link_prefix: str) -> str:
    lines = [f"**{answer(df, workspace)}**", "",
             f"The paper's claims ({int((df['family'] == PAPER).sum())}): **{counts_text(df, PAPER)}**. "
             f"Added claims, not the paper's ({int((df['family'] == ADDED).sum())}): {counts_text(df, ADDED)}.", "",
             scale_note(workspace), "",
             "| claim | paper | measured | outcome |", "|---|---|---|---|"]
    for group, rows in _rows(df):
        lines.append(f"| **{SECTIONS[group]}** | | | |")
        for cid, r in rows:
            added = " *(added)*" if r["family"] != PAPER else ""
            lines.append(f"| [{_cell(r['claim'])}]({link_prefix}{PAGES[group]}.html#{claim_anchor(cid)}){added} | "
                         f"{_cell(r['paper effect'])} | {_cell(_measured(r))} | {verdict_mark(r['verdict'])} |")
    return "\n".join(lines)


def _text(df: pd.DataFrame, workspace) -> str:
    lines = [answer(df, workspace), f"The paper's claims: {counts_text(df, PAPER)}. Added claims: "
             f"{counts_text(df, ADDED)}.", scale_note(workspace)]
    for group, rows in _rows(df):
        lines.append(f"{SECTIONS[group]}:")
        lines += [f"  {verdict_mark(r['verdict'])}: {r['claim']} ({cid}); paper {r['paper effect']}, measured "
                  f"{_measured(r)}" for cid, r in rows]
    return "\n".join(lines)


def scoreboard_view(df: pd.DataFrame, workspace) -> Shown:
    """The scoreboard as HTML (links relative to docs/), Markdown (links relative to the repository root: the
    README's copy) and text."""
    return Shown(_html(df, workspace, ""), _text(df, workspace), _markdown(df, workspace, "docs/"))


def show_scoreboard(workspace) -> None:
    show(scoreboard_view(claims(workspace), workspace))
