"""How the notebooks show results: tables as HTML (a pandas Styler) with a plain-text twin, the claims as one
verdict table with a mark per verdict, and matplotlib Figures as PNG.

A shown table is a :class:`Shown`: JupyterLab renders its ``text/html``; its ``text/plain`` is the same table as
monospace text, which is what CI compares (nbval compares text/plain and text/html, never image/png). Both are
deterministic: the Styler's element ids come from the table's name, not a random uuid.
"""
from __future__ import annotations

import html
import math

import pandas as pd

from flatlib.report.artifacts import fmt, format_table

#: the mark and background colour of each verdict (flatlib.stats.verdict, and "not evaluated")
VERDICT_MARKS = {"reproduced": "✅ reproduced", "contradicted": "❌ contradicted",
                 "inconclusive": "❔ inconclusive", "not evaluated": "➖ not evaluated"}
VERDICT_COLORS = {"reproduced": "#e3f4e1", "contradicted": "#fbe3e1", "inconclusive": "#fdf5d9",
                  "not evaluated": "#eeeeee"}
#: columns holding the paper's numbers (shaded, italic) and long text (wrapped; every other cell never wraps)
PAPER_PREFIX = "paper"
TEXT_COLUMNS = ("claim", "measured", "paper", "rule", "runs", "note in params.yaml", "value")
TABLE_STYLE = [
    {"selector": "", "props": "border-collapse: collapse; font-size: 12px; margin-bottom: 0.3em"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold; padding: 4px 0"},
    {"selector": "th, td", "props": "white-space: nowrap; padding: 2px 8px; border-bottom: 1px solid #ddd"},
    {"selector": "th.col_heading", "props": "text-align: center; border-bottom: 2px solid #888"},
    {"selector": "td", "props": "text-align: right; font-family: monospace"},
]


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


def _styler(cells: pd.DataFrame, name: str, title: str | None) -> "pd.io.formats.style.Styler":
    """A Styler of an all-text DataFrame with the suite's table style, element ids derived from ``name``."""
    styler = cells.style.set_uuid(name.replace(" ", "_")).set_table_styles(TABLE_STYLE)
    if title:
        styler = styler.set_caption(html.escape(title))
    paper = [c for c in cells.columns if str(c).startswith(PAPER_PREFIX) and str(c) not in TEXT_COLUMNS]
    if paper:
        styler = styler.set_properties(subset=paper, **{"background-color": "#f2f2f2", "font-style": "italic",
                                                        "color": "#555"})
    text = [c for c in cells.columns if str(c) in TEXT_COLUMNS]
    if text:
        styler = styler.set_properties(subset=text, **{"white-space": "normal", "text-align": "left",
                                                       "font-family": "inherit", "min-width": "12em"})
    return styler


def table_view(df: pd.DataFrame, name: str, title: str | None = None, note: str | None = None) -> Shown:
    """``df`` (full precision, ``attrs["kinds"]``) as a :class:`Shown`: each "mean ± half-width" pair in one
    column, every number rounded as printed (flatlib.report.artifacts), the paper's columns shaded; ``note``
    (e.g. what ± means) under it."""
    kinds = df.attrs.get("kinds", {})
    merged = format_table(df)
    cells = pd.DataFrame({c: [_cell_text(v, None if isinstance(v, str) else kinds.get(c)) for v in merged[c]]
                          for c in merged.columns}, index=merged.index)
    text = "\n".join(part for part in (title, cells.to_string(), note) if part)
    body = _styler(cells, name, title).to_html()
    if note:
        body += f'<p style="font-size: 11px; color: #555; margin-top: 0">{html.escape(note)}</p>'
    return Shown(body, text)


def empty_view(note: str, title: str | None = None) -> Shown:
    """An empty table's explanation."""
    text = "\n".join(part for part in (title, f"({note})") if part)
    return Shown(f"<p><b>{html.escape(title or '')}</b> <i>({html.escape(note)})</i></p>", text)


def verdict_mark(verdict: str) -> str:
    return VERDICT_MARKS.get(verdict, verdict)


def verdict_view(df: pd.DataFrame, name: str) -> Shown:
    """The claims (``flatlib.report.claims``) as one table: verdict with its mark, claim, the test (rule),
    the measured evidence (means, paired difference and interval), the paper's evidence, seeds and runs; each
    row tinted by its verdict. Its text is one block per claim."""
    blocks = []
    for cid, r in df.iterrows():
        blocks.append("\n".join((f"{verdict_mark(r['verdict'])}: {r['claim']}  ({cid})",
                                 f"    paper:    {r['paper']}", f"    measured: {r['measured']}",
                                 f"    claim:    {r['rule']}",
                                 f"    runs:     {r['seeds']} training seed{'s' if r['seeds'] != 1 else ''}; "
                                 f"{r['runs']}")))
    cells = pd.DataFrame({"verdict": df["verdict"].map(verdict_mark), "claim": df["claim"], "rule": df["rule"],
                          "measured": df["measured"], "paper": df["paper"], "seeds": df["seeds"].astype(str),
                          "runs": df["runs"]}, index=df.index.rename(None))
    colors = df["verdict"].map(lambda v: f"background-color: {VERDICT_COLORS.get(v, '#ffffff')}")
    styler = _styler(cells, name, None).apply(lambda column: colors.to_numpy(), axis=0)
    styler = styler.set_properties(subset=["verdict"], **{"font-weight": "bold", "text-align": "left",
                                                          "font-family": "inherit"})
    return Shown(styler.to_html(), "\n".join(blocks))

