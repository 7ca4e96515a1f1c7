"""The DVC notebooks stage: executes every notebook of :data:`flatlib.layout.NOTEBOOK_NAMES` with papermill into
reports/ (the executed notebooks, and the tables and figures they save under reports/tables and reports/figures),
the one output folder the stage declares. One stage for the six notebooks: each costs a kernel start either way,
and a stage instance more would cost DVC's bookkeeping on top (issue 21's budget).

    python -m flatlib.stages.notebooks               # in the repository root, after the summary stage

The notebooks run with ``--cwd notebooks`` and the parameter ``workspace = ".."`` (the repository root), as a
reader's JupyterLab runs them.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from flatlib import layout
from flatlib.cli import cli_parser
from flatlib.errors import add_debug_flag, cli_errors


def execute(workspace: Path, kernel: str = "python3") -> None:
    """Execute each notebook into a fresh reports/ (nothing stale survives a notebook renamed or removed)."""
    import papermill

    reports = workspace / layout.REPORTS
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir(parents=True)
    for name in layout.NOTEBOOK_NAMES:
        print(f"notebooks: {name}", flush=True)
        papermill.execute_notebook(workspace / layout.NOTEBOOKS / f"{name}.ipynb",
                                   workspace / layout.report_notebook(name), parameters=dict(workspace=".."),
                                   kernel_name=kernel, progress_bar=False, cwd=workspace / layout.NOTEBOOKS)


def build_parser():
    parser = cli_parser("python -m flatlib.stages.notebooks", __doc__)
    parser.add_argument("--workspace", default=".", help="the repository root the pipeline ran in")
    parser.add_argument("--kernel", default="python3", help="the Jupyter kernel that runs the notebooks")
    add_debug_flag(parser)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with cli_errors("stages.notebooks", args.debug):
        execute(Path(args.workspace), args.kernel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
