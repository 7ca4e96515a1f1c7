"""The published report: the executed notebooks (reports/NAME.ipynb) as static HTML pages under docs/, an index
page and one stylesheet, and the key figures as PNG under docs/figures/ (what the README shows). Small (figures downscaled to at
most MAX_WIDTH pixels and reduced to a 256-colour palette) and with deterministic bytes: the pipeline's last
stage writes them and git keeps them, so a fresh clone shows the default run's results without running anything.

    python -m flatlib.stages.publish          # in the repository root, after the notebooks stages
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from flatlib import atomic, layout, vocabulary
from flatlib.cli import cli_parser
from flatlib.schema import load_params

#: the figures copied to docs/figures/ (reports/figures/NAME.png, those the run produced), and the sample grids of
#: every T' of ``sample.respacings`` (:func:`key_figures`)
KEY_FIGURES = ("fid_vs_paper", "training_loss", "loss_curves_1d", "loss_surfaces_2d", "hessian", "noise_norms",
               "exposure_gap", "quant_fid", "quant_samples_raw", "rho_sweep")


def key_figures(workspace: Path) -> list[str]:
    """:data:`KEY_FIGURES` with the sample grid of each T' the workspace's params.yaml samples at."""
    params = load_params(workspace / "params.yaml")
    return [KEY_FIGURES[0], *(f"samples_T{t}" for t in vocabulary.measured_respacings(params)), *KEY_FIGURES[1:]]
MAX_WIDTH = 1100
CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.5em 3em; color: #222; line-height: 1.45; }
nav { padding: 0.8em 0; border-bottom: 1px solid #ccc; margin-bottom: 1em; font-size: 14px; }
nav a { margin-right: 1.2em; }
nav a.current { font-weight: bold; color: #222; text-decoration: none; }
.jp-InputArea pre, .highlight pre { background: #f6f8fa; padding: 0.5em 0.8em; border-radius: 4px; font-size: 12px;
       overflow-x: auto; margin: 0.4em 0; }
main pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-OutputArea-output pre { font-size: 12px; margin: 0.3em 0; }
.jp-OutputArea-output img { max-width: 100%; height: auto; }
.jp-OutputArea-output { overflow-x: auto; }
.jp-InputPrompt, .jp-OutputPrompt { display: none; }
"""
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="style.css">
</head>
<body>
<nav>{nav}</nav>
<main>
{body}
</main>
</body>
</html>
"""


def shrink_png(data: bytes, max_width: int = MAX_WIDTH) -> bytes:
    """``data`` (PNG) at most ``max_width`` pixels wide and with a 256-colour palette: a third of the bytes,
    deterministic for the same input."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert("RGB")
        if image.width > max_width:
            image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
        image = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=True)
        return out.getvalue()


def _title(notebook) -> str:
    """The notebook's first markdown heading (its title)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "flatlib report"


def _nav(titles: dict[str, str], current: str) -> str:
    links = [(layout.DOCS / "index.html", "index", "Overview")] + [
        (layout.docs_page(name), name, title.split(":")[0]) for name, title in titles.items()]
    return " ".join(f'<a href="{path.name}"{" class=current" if name == current else ""}>{html.escape(text)}</a>'
                    for path, name, text in links)


def _normalize(notebook) -> None:
    """Every PNG output of ``notebook`` through :func:`shrink_png` (in place); papermill's run metadata (times)
    dropped and every cell id replaced by its position (papermill gives the cell it injects a random id each
    run, and the page shows the ids as anchors)."""
    notebook.metadata.pop("papermill", None)
    for index, cell in enumerate(notebook.cells):
        cell.id = f"cell-{index}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        for output in cell.get("outputs", []):
            png = output.get("data", {}).get("image/png")
            if png:
                output["data"]["image/png"] = base64.b64encode(shrink_png(base64.b64decode(png))).decode()


def stylesheet() -> str:
    """docs/style.css: the pages' layout and the code highlighting (pygments), shared by every page."""
    from pygments.formatters import HtmlFormatter

    return CSS.lstrip() + HtmlFormatter().get_style_defs(".highlight") + "\n"


def render_page(notebook, titles: dict[str, str], name: str) -> str:
    """The HTML page of an executed notebook (an nbformat node; its images are shrunk in place): nbconvert's
    basic template inside the suite's page (navigation, a small stylesheet)."""
    from nbconvert import HTMLExporter

    _normalize(notebook)
    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(notebook)
    return PAGE.format(title=html.escape(titles[name]), nav=_nav(titles, name), body=body)


def render_index(titles: dict[str, str]) -> str:
    """The index page: one link per notebook page, the headline figure."""
    items = "\n".join(f'<li><a href="{layout.docs_page(name).name}">{html.escape(title)}</a></li>'
                      for name, title in titles.items())
    figure = ('<p><img src="figures/fid_vs_paper.png" alt="Table 1: measured FID beside the paper" '
              'style="max-width: 100%"></p>' if "table1_fid" in titles else "")
    body = (f"<h1>flatlib: the default run's report</h1>\n<p>Executed notebooks of <code>dvc repro</code> "
            f"(rendered by <code>python -m flatlib.stages.publish</code>):</p>\n<ul>\n{items}\n</ul>\n{figure}")
    return PAGE.format(title="flatlib report", nav=_nav(titles, "index"), body=body)


def publish(workspace: Path = Path(".")) -> list[Path]:
    """Write docs/ from the workspace's executed notebooks and figures; returns the files written."""
    import nbformat

    notebooks = {name: nbformat.read(workspace / layout.report_notebook(name), as_version=4)
                 for name in layout.NOTEBOOK_NAMES if (workspace / layout.report_notebook(name)).is_file()}
    if not notebooks:
        raise FileNotFoundError(f"no executed notebook under {workspace / layout.REPORTS}: run `dvc repro` first")
    titles = {name: _title(notebook) for name, notebook in notebooks.items()}
    written = []
    for name, notebook in notebooks.items():
        written.append(_write(workspace / layout.docs_page(name), render_page(notebook, titles, name).encode()))
    written.append(_write(workspace / layout.DOCS / "index.html", render_index(titles).encode()))
    written.append(_write(workspace / layout.DOCS / "style.css", stylesheet().encode()))
    for name in key_figures(workspace):
        figure = workspace / layout.FIGURES / f"{name}.png"
        if figure.is_file():
            written.append(_write(workspace / layout.DOCS_FIGURES / figure.name, shrink_png(figure.read_bytes())))
    return written


def _write(path: Path, data: bytes) -> Path:
    atomic.write_bytes(path, data)  # the parent folders too
    return path


def build_parser():
    parser = cli_parser("python -m flatlib.stages.publish", __doc__)
    parser.add_argument("--workspace", type=Path, default=Path("."),
                        help="the repository root the pipeline ran in (reads reports/, writes docs/)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    written = publish(args.workspace)
    total = sum(p.stat().st_size for p in written)
    print(f"published {len(written)} files under {args.workspace / layout.DOCS} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
