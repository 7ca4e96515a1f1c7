"""Presentation layer: the notebooks' tables, figures and claim verdicts, computed from pipeline artifacts.

Every function takes the WORKSPACE (the repository root a ``dvc repro`` ran in; the notebooks pass
``workspace = ".."``) and reads only what the DVC stages wrote there (paths: :mod:`flatlib.layout`) and the
typed params (:mod:`flatlib.schema`). The notebooks stay short and call this package; nothing here trains,
samples or measures. :mod:`flatlib.stages.publish` renders the executed notebooks as the committed HTML report.

Modules
    paper       the paper's numbers (Table 1, quantization, exposure gap)
    artifacts   rounding rules; loaders (a missing file raises ArtifactMissing, naming the DVC stage that
                writes it)
    tables      pandas DataFrames at full precision; ``show_table`` shows them rounded and writes
                ``reports/tables/NAME.csv``
    display     how results are shown: HTML tables (inline styles) with a plain-text twin, the verdict table
    figures     ``plot_*``: each saves ``reports/figures/NAME.png`` with deterministic bytes and returns the Figure
    scoreboard  ``show_scoreboard``: the answer, the counts, the scale and one row per claim (the summary notebook
                shows it first; flatlib.stages.publish copies it to docs/index.html and the README)
    length      verdicts against training length, the equal-progress control for SAM, the raw weights' iterate
                noise (issue 21; stage length's saved checkpoints)
    claims      ``claims(workspace, group)``: every paper claim with its paired difference, interval and
                four-valued outcome (flatlib.measure.stats), the forest plot's data; profile notes and the params.yaml reproduction choices
                behind each notebook

The names below are what the notebooks use. Shown text is what CI compares (nbval compares text/plain,
text/html and stream outputs, never image/png), so every number is shown rounded (means ± interval half-widths over
training seeds). Nothing printed holds a timing or an absolute path.
"""
from flatlib.report.claims import (claims, print_extractor_note, print_profile_note, show_choices,  # noqa: F401
                                   show_verdicts)
from flatlib.report.figures import (plot_claims_forest, plot_exposure_gap, plot_fid_vs_paper, plot_hessian,  # noqa: F401
                                    plot_loss_curves, plot_loss_surfaces, plot_noise_norms, plot_quant_fid,
                                    plot_length_effects, plot_quant_samples, plot_rho_sweep, plot_samples, plot_training_loss)
from flatlib.report.length import show_training_length  # noqa: F401
from flatlib.report.artifacts import check_workspace, plateau_table, respacings  # noqa: F401
from flatlib.report.scoreboard import show_scoreboard  # noqa: F401
from flatlib.report.tables import (exposure_table, flatness_table, paper_table1, quant_table,  # noqa: F401
                                   interval_note, rank_agreement, rho_table, show_table, table1)
