"""How the notebooks show results: tables as HTML with a plain-text twin, the claims as one verdict table with a
mark per verdict, and matplotlib Figures as PNG.

A shown table is a :class:`Shown`: JupyterLab renders its ``text/html``; its ``text/plain`` is the same table as
monospace text, which is what CI compares (nbval compares text/plain and text/html, never image/png). The HTML
carries its styling in inline ``style`` attributes, not in a ``<style>`` block as pandas' Styler writes it:
JupyterLab strips ``<style>`` from the outputs of a notebook it does not trust (every notebook executed by
papermill, until the user trusts it), and keeps inline styles. Same table, same bytes.
"""
from __future__ import annotations

import html
import math

import pandas as pd

from flatlib.report.artifacts import fmt, format_table
from flatlib.measure.stats import base_outcome

#: the mark and background colour of each verdict (flatlib.measure.stats.verdict, and "not evaluated")
VERDICT_MARKS = {"reproduced": "✔", "contradicted": "✘", "weaker than the paper": "≪", "inconclusive": "?",
                 "not evaluated": "–"}
VERDICT_COLORS = {"reproduced": "#e3f4e1", "contradicted": "#fbe3e1", "weaker than the paper": "#e6ecf7",
                  "inconclusive": "#fdf5d9", "not evaluated": "#eeeeee"}
#: columns holding the paper's numbers (shaded, italic) and long text (wrapped, left; every other cell: a number,
#: right-aligned, never wrapped)
PAPER_PREFIX = "paper"
TEXT_COLUMNS = ("claim", "measured", "paper", "rule", "runs", "note in params.yaml", "value", "source", "effect")
TABLE = {"border-collapse": "collapse", "font-size": "12px", "margin-bottom": "0.3em"}
CAPTION = {"caption-side": "top", "text-align": "left", "font-weight": "bold", "padding": "4px 0"}
HEADER = {"white-space": "nowrap", "padding": "2px 8px", "text-align": "center", "border-bottom": "2px solid #888"}
ROW_HEADER = {"white-space": "nowrap", "padding": "2px 8px", "text-align": "left", "border-bottom": "1px solid #ddd"}
NUMBER_CELL = {"white-space": "nowrap", "text-align": "right", "font-family": "monospace", "padding": "2px 8px",
               "border-bottom": "1px solid #ddd"}
TEXT_CELL = {"white-space": "normal", "text-align": "left", "padding": "2px 8px", "border-bottom": "1px solid #ddd",
             "min-width": "10em", "max-width": "36em"}
PAPER_CELL = {"background-color": "#f2f2f2", "font-style": "italic", "color": "#555"}
VERDICT_CELL = {"font-weight": "bold", "text-align": "left", "white-space": "nowrap", "font-family": "inherit"}


class Shown:
    """A result for a notebook cell: ``html`` for JupyterLab, ``text`` for plain-text frontends and CI, and
    optionally ``markdown`` (what GitHub renders; the README's copy of the scoreboard)."""

    def __init__(self, html_: str, text: str, markdown: str | None = None):
        self.html, self.text, self.markdown = html_, text, markdown

    def _repr_html_(self) -> str:
        return self.html

    def _repr_markdown_(self) -> str | None:
        return self.markdown

    def __repr__(self) -> str:
        return self.text


def show(result: Shown) -> None:
    """Display ``result`` under IPython (rich), print its text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(result)
    else:
        print(result.text)


def _cell_text(value, kind: str | None) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if kind is not None and not isinstance(value, bool):
        return fmt(value, kind)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _css(*styles: dict) -> str:
    merged = {}
    for style in styles:
        merged.update(style)
    return "; ".join(f"{k}: {v}" for k, v in merged.items())


def _html_table(cells: pd.DataFrame, title: str | None = None, row_styles: list[dict] | None = None,
                column_styles: dict | None = None) -> str:
    """An all-text DataFrame as an HTML table with inline styles: numbers right-aligned and never wrapped, long
    text (TEXT_COLUMNS) wrapped, the paper's columns shaded; ``row_styles[i]`` and ``column_styles[column]`` on
    top."""
    row_styles, column_styles = row_styles or [{}] * len(cells), column_styles or {}
    base = {c: TEXT_CELL if str(c) in TEXT_COLUMNS else
            {**NUMBER_CELL, **(PAPER_CELL if str(c).startswith(PAPER_PREFIX) else {})} for c in cells.columns}
    levels = cells.index.nlevels
    names = [n or "" for n in cells.index.names]
    out = [f'<table style="{_css(TABLE)}">']
    if title:
        out.append(f'<caption style="{_css(CAPTION)}">{html.escape(title)}</caption>')
    out.append("<thead><tr>" + "".join(f'<th style="{_css(HEADER)}">{html.escape(str(n))}</th>' for n in names)
               + "".join(f'<th style="{_css(HEADER)}">{html.escape(str(c))}</th>' for c in cells.columns)
               + "</tr></thead><tbody>")
    for (key, row), extra in zip(cells.iterrows(), row_styles):
        keys = key if levels > 1 else (key,)
        out.append("<tr>" + "".join(f'<th style="{_css(ROW_HEADER, extra)}">{html.escape(str(k))}</th>' for k in keys)
                   + "".join(f'<td style="{_css(base[c], extra, column_styles.get(c, {}))}">{html.escape(str(v))}</td>'
                             for c, v in row.items()) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def table_view(df: pd.DataFrame, title: str | None = None, note: str | None = None) -> Shown:
    """``df`` (full precision, ``attrs["kinds"]``) as a :class:`Shown`: each "mean ± half-width" pair in one
    column, every number rounded as printed (flatlib.report.artifacts), the paper's columns shaded; ``note``
    (e.g. what ± means) under it."""
    kinds = df.attrs.get("kinds", {})
    merged = format_table(df)
    cells = pd.DataFrame({c: [_cell_text(v, None if isinstance(v, str) else kinds.get(c)) for v in merged[c]]
                          for c in merged.columns}, index=merged.index)
    text = "\n".join(part for part in (title, cells.to_string(), note) if part)
    body = _html_table(cells, title)
    if note:
        body += f'<p style="font-size: 11px; color: #555; margin-top: 0">{html.escape(note)}</p>'
    return Shown(body, text)


def empty_view(note: str, title: str | None = None) -> Shown:
    """An empty table's explanation."""
    text = "\n".join(part for part in (title, f"({note})") if part)
    return Shown(f"<p><b>{html.escape(title or '')}</b> <i>({html.escape(note)})</i></p>", text)


def verdict_mark(verdict: str) -> str:
    """"✔ reproduced, 40x smaller": the mark of the outcome word, then the outcome text."""
    return f"{VERDICT_MARKS.get(base_outcome(verdict), '')} {verdict}".strip()


#: the claims' groups in the paper's order and their section headings (flatlib.report.claims.CLAIM_GROUPS)
SECTIONS = {"fid": "Table 1: FID", "flatness": "Flatness", "quant": "Weight quantization",
            "exposure": "Exposure bias", "rho": "SAM's radius rho"}
#: the verdict table's cells (inline: JupyterLab keeps inline styles; docs/style.css stacks them as cards on a phone)
VERDICT_TD = {"padding": "4px 8px", "border-bottom": "1px solid #ddd", "vertical-align": "top", "text-align": "left"}
KEY = {"font-size": "11px", "color": "#777", "font-family": "monospace", "margin-left": "0.4em"}


def claim_anchor(cid: str) -> str:
    """The id of a claim's row in its page's verdict table (the scoreboard links to it)."""
    return f"claim-{cid}"


def _p_text(p) -> str:
    return f"{p:.2g}" if isinstance(p, float) and math.isfinite(p) else "-"


def _outcome(r) -> str:
    return verdict_mark(r["verdict"]) + (" (fragile)" if r["fragile"] else "")


def _kid(r) -> str:
    return f"{r['KID']}" + (" (differs from FID)" if r["FID vs KID"] == "differ" else "") if r["KID"] else "-"


def _decisive(r) -> str:
    """The decisive number: the effect that decided the outcome, with its interval, beside the paper's."""
    if r["effect"] == "-":
        return "-"
    paper = f"; paper {r['paper effect']}" if r["paper effect"] != "-" else ""
    return f"{r['decisive part']}: {r['effect']}{paper}"


def _evidence(r, constant: set) -> list[tuple[str, str]]:
    """The per-part evidence of a claim (folded in the table): what it tests, every measured part, p, the
    sensitivity checks, the paper's evidence, the runs (where they differ between claims)."""
    rows = [("claim tested", r["rule"]), ("measured", r["measured"]),
            ("p", f"{_p_text(r['p'])}, adjusted {_p_text(r['p adjusted'])}"),
            ("plain paired t", r["plain t"]), ("KID", _kid(r)), ("paper", f"{r['paper']} [{r['provenance']}]")]
    if "runs" not in constant:
        rows.append(("runs", r["runs"]))
    return rows


def _constant(df: pd.DataFrame) -> set:
    """The columns that say the same for every evaluated claim (moved into the caption)."""
    evaluated = df[df["verdict"] != "not evaluated"]
    return {c for c in ("seeds", "runs") if len(evaluated) and evaluated[c].nunique() == 1}


def verdict_view(df: pd.DataFrame) -> Shown:
    """The claims (``flatlib.report.claims``) as one table a reader scans, grouped by the paper's sections: the
    claim in words (its key a small anchor), its source, the decisive number (the effect that decided the outcome,
    with its interval, beside the paper's), the outcome with its mark; the per-part evidence folded in a
    ``<details>``; columns that are the same for every claim (seeds, runs) said once in the caption. Each row is
    tinted by its outcome and stacks as a card on a narrow screen (docs/style.css). Its text is one block per
    claim."""
    constant = _constant(df)
    evaluated = df[df["verdict"] != "not evaluated"]
    caption = [f"{int(evaluated['seeds'].iloc[0])} training seeds" if "seeds" in constant else "",
               f"runs: {evaluated['runs'].iloc[0]}" if "runs" in constant else ""]
    caption = "; ".join(c for c in caption if c)
    blocks = [caption] if caption else []
    td = _css(VERDICT_TD)
    out = [f'<table class="verdicts stack" style="{_css(TABLE)}">']
    if caption:
        out.append(f'<caption style="{_css(CAPTION)}">Every claim ({html.escape(caption)})</caption>')
    out.append("<thead><tr>" + "".join(f'<th style="{_css(HEADER)}">{h}</th>'
                                       for h in ("claim", "source", "decisive number", "outcome")) + "</tr></thead>")
    for group in [g for g in SECTIONS if (df["group"] == g).any()]:
        out.append(f'<tbody><tr class="section"><th colspan="4" style="{_css(ROW_HEADER)}">'
                   f'{html.escape(SECTIONS.get(group, group))}</th></tr>')
        for cid, r in df[df["group"] == group].iterrows():
            evidence = _evidence(r, constant)
            blocks.append("\n".join([f"{_outcome(r)}: {r['claim']}  ({cid}; {r['source']})",
                                      f"    decisive: {_decisive(r)}"]
                                     + [f"    {k + ':':<15} {v}" for k, v in evidence]))
            tint = VERDICT_COLORS.get(base_outcome(r["verdict"]), "#ffffff")
            folded = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in evidence)
            out.append(
                f'<tr id="{claim_anchor(cid)}" style="background-color: {tint}">'
                f'<td data-label="claim" style="{td}; min-width: 14em">{html.escape(r["claim"])}'
                f'<a class="claim-key" href="#{claim_anchor(cid)}" style="{_css(KEY)}">{html.escape(cid)}</a>'
                f'<details><summary>evidence</summary><dl>{folded}</dl></details></td>'
                f'<td data-label="source" style="{td}">{html.escape(r["source"])}</td>'
                f'<td data-label="decisive number" style="{td}">{html.escape(_decisive(r))}</td>'
                f'<td data-label="outcome" style="{td}; font-weight: bold; white-space: nowrap">'
                f'{html.escape(_outcome(r))}</td></tr>')
        out.append("</tbody>")
    out.append("</table>")
    return Shown("\n".join(out), "\n".join(blocks))
