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
from flatlib.stats import base_outcome

#: the mark and background colour of each verdict (flatlib.stats.verdict, and "not evaluated")
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
    """A result for a notebook cell: ``html`` for JupyterLab, ``text`` for plain-text frontends and CI."""

    def __init__(self, html_: str, text: str):
        self.html, self.text = html_, text

    def _repr_html_(self) -> str:
        return self.html

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


def verdict_view(df: pd.DataFrame) -> Shown:
    """The claims (``flatlib.report.claims``) as one table: outcome with its mark (and "fragile"), claim, source,
    the decisive relative effect beside the paper's, p and adjusted p, the KID outcome, the test, the measured
    parts, the paper's evidence and its provenance, seeds and runs; each row tinted by its outcome. Its text is one
    block per claim."""
    def p_text(p):
        return f"{p:.3g}" if isinstance(p, float) and math.isfinite(p) else "-"

    def outcome(r):
        return verdict_mark(r["verdict"]) + (" (fragile)" if r["fragile"] else "")

    def kid(r):
        return f"{r['KID']}" + (" (differs from FID)" if r["FID vs KID"] == "differ" else "") if r["KID"] else "-"

    blocks = []
    for cid, r in df.iterrows():
        blocks.append("\n".join((f"{outcome(r)}: {r['claim']}  ({cid}; {r['source']})",
                                 f"    effect:   {r['effect']} (paper {r['paper effect']}); p {p_text(r['p'])}, "
                                 f"adjusted {p_text(r['p adjusted'])}; plain t: {r['plain t']}; KID: {kid(r)}",
                                 f"    paper:    {r['paper']} [{r['provenance']}]",
                                 f"    measured: {r['measured']}",
                                 f"    claim:    {r['rule']}",
                                 f"    runs:     {r['seeds']} training seed{'s' if r['seeds'] != 1 else ''}; "
                                 f"{r['runs']}")))
    cells = pd.DataFrame({"outcome": [outcome(r) for _, r in df.iterrows()], "claim": df["claim"],
                          "source": df["source"], "effect": df["effect"], "paper effect": df["paper effect"],
                          "p": df["p"].map(p_text), "p adjusted": df["p adjusted"].map(p_text),
                          "plain t": df["plain t"], "KID": [kid(r) for _, r in df.iterrows()], "rule": df["rule"],
                          "measured": df["measured"], "paper": df["paper"] + " [" + df["provenance"] + "]",
                          "seeds": df["seeds"].astype(str), "runs": df["runs"]}, index=df.index.rename(None))
    tints = [{"background-color": VERDICT_COLORS.get(base_outcome(v), "#ffffff")} for v in df["verdict"]]
    return Shown(_html_table(cells, None, tints, {"outcome": VERDICT_CELL}), "\n".join(blocks))
