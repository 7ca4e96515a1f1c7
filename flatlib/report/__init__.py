"""Presentation layer (a package: artifacts, tables, figures, claims): the notebooks' tables, figures and claim verdicts, computed from pipeline artifacts.

Every function takes the WORKSPACE (the repository root a ``dvc repro`` ran in; the notebooks pass
``workspace = ".."``) and reads only what the DVC stages wrote there (see :mod:`flatlib.pipeline`). The
notebooks stay short and call this module; nothing here trains, samples or measures.

API
    paper numbers   PAPER_TABLE1, PAPER_QUANT_8BIT, PAPER_EXPOSURE_GAP, paper_table1()
    loaders         load_params, load_fid, load_quant, load_flatness, load_exposure, load_rho_sweep,
                    load_featurenet, load_training_log, sample_grid_path, quant_grid_path
                    (a missing file raises ArtifactMissing, a FileNotFoundError naming the file and the
                    DVC stage that writes it)
    tables          table1, rank_agreement, quant_table, flatness_table, exposure_table, rho_table
                    (pandas DataFrames, full precision; ``show_table`` prints them rounded as plain text
                    and writes ``reports/tables/NAME.csv``)
    figures         plot_samples, plot_quant_samples, plot_fid_vs_paper, plot_training_loss,
                    plot_loss_curves, plot_loss_surfaces, plot_hessian, plot_noise_norms,
                    plot_exposure_gap, plot_rho_sweep (each saves ``reports/figures/NAME.png`` with
                    deterministic bytes, ``figure_path`` gives it, shows it inline under IPython and
                    returns None, so nothing but the image lands in the cell's output)
    claims          claims(workspace, group=None) -> DataFrame(claim, paper, measured, rule, verdict);
                    print_claims, print_verdicts, print_profile_note, print_choices

Printed text is what CI compares (nbval compares text/plain and stream outputs, never image/png), so
every number is printed rounded (DECIMALS / SIGNIFICANT) and every verdict is decided on those rounded
values: a claim "A < B" holds when the printed A is strictly below the printed B; a tie counts against
the claim. Nothing printed holds a timing or an absolute path.
"""
from flatlib.report.artifacts import (RESPACINGS, DATASETS, PAPER_TABLE1, PAPER_QUANT_8BIT, PAPER_EXPOSURE_GAP,
                                      ROWS, LABELS, FLATNESS_ROWS, DECIMALS, SIGNIFICANT, round_value, fmt,
                                      format_table, table_text, ArtifactMissing, load_params, load_fid, load_quant,
                                      load_flatness, load_exposure, load_rho_sweep, load_featurenet,
                                      load_training_log, sample_grid_path, quant_grid_path, variants, weights_kinds,
                                      label, rows, paper_dataset, paper_fid)  # noqa: F401
from flatlib.report.tables import (paper_table1, table1, rank_agreement, quant_table, sigmas, flatness_table,
                                   exposure_table, rho_table, show_table)  # noqa: F401
from flatlib.report.figures import (DPI, STYLE, ROW_COLORS, WEIGHT_STYLES, WEIGHT_MARKERS, styled, figure_bytes,
                                    figure_path, save_figure, plot_samples, plot_quant_samples, plot_fid_vs_paper,
                                    plot_training_loss, plot_loss_curves, plot_loss_surfaces, plot_hessian,
                                    plot_noise_norms, plot_exposure_gap, plot_rho_sweep)  # noqa: F401
from flatlib.report.claims import (NotEvaluable, CLAIM_GROUPS, claims, print_claims, print_verdicts,
                                   print_extractor_note, is_paper_profile, print_profile_note, CHOICES, choices,
                                   print_choices)  # noqa: F401
