"""The notebooks' figures: each ``plot_*`` saves ``reports/figures/NAME.png`` with deterministic bytes and
returns its matplotlib Figure (restyle it and show it again: ``fig.axes[0].set_title(...); fig``). Every figure
carries a caption that states what it shows and an alt text that describes it (:func:`save_figure`). Under IPython
a Figure is shown as PNG of the same bytes with the alt text and caption in its metadata (flatlib.stages.publish numbers
the captions); its text/plain is the caption."""
from __future__ import annotations

import functools
import io
from pathlib import Path

import matplotlib
import matplotlib.lines
import matplotlib.style
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from flatlib import layout, vocabulary
from flatlib.vocabulary import label
from flatlib.report.artifacts import (HALF_WIDTH, ArtifactMissing, exposure_entries, flatness_entries, fmt,
                                      load_fid_floor, load_params, load_quant, load_training_log,
                                      mean_columns, metric_label, num_parameters, quant_grid_path,
                                      rows,
                                      sample_grid_path, seeds, variants, weights_kinds, workspace_path)
from flatlib.measure.stats import estimate
from flatlib.report.paper import PAPER_TABLE1, PAPER_UNET_PARAMS
from flatlib.report.tables import exposure_table, flatness_table, quant_table, rho_table, table1


# ----------------------------------------------------------------------------------------------- figures
DPI = 100
STYLE = {"figure.dpi": DPI, "savefig.dpi": DPI, "font.family": "DejaVu Sans", "font.size": 9,
         "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 7, "xtick.labelsize": 8,
         "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.4,
         "axes.prop_cycle": matplotlib.cycler(color=matplotlib.colormaps["tab10"].colors),
         "image.interpolation": "nearest", "svg.hashsalt": "flatlib"}
#: one colour per Table 1 row, one line style per weights kind
ROW_COLORS = {name: matplotlib.colormaps["tab10"](i) for i, name in enumerate(PAPER_TABLE1)}
WEIGHT_STYLES = {"raw": "-", "ema": "--", "swa": ":"}
WEIGHT_MARKERS = {"raw": "o", "ema": "s", "swa": "D"}


def styled(plot):
    """Draw ``plot`` under matplotlib's default style plus STYLE, whatever the user's rcParams, so that the
    figures' bytes depend only on the data."""
    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with matplotlib.style.context(["default", STYLE]):
            return plot(*args, **kwargs)
    return wrapper


def _subplots(*args, figsize, layout=None, **kwargs):
    """A pyplot-free figure: no backend switch, nothing left open, inline display stays the user's."""
    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*args, **kwargs)


def figure_bytes(fig) -> bytes:
    """PNG bytes of ``fig``: fixed dpi and style, no 'Software' (version) or date metadata, so equal figures give
    equal bytes, whenever and wherever they are drawn."""
    buf = io.BytesIO()
    with matplotlib.style.context(["default", STYLE]):  # rcParams read at draw time (layout, hatches) as in plot_*
        for _ in range(2):  # a constrained layout settles over its first draws (two with multi-line tick labels)
            fig.draw_without_rendering()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def figure_path(workspace, name: str) -> Path:
    return workspace_path(workspace, layout.FIGURES / f"{name}.png")


def save_figure(fig: Figure, workspace, name: str, caption: str, alt: str) -> Figure:
    """Save ``fig`` as reports/figures/NAME.png and return it (the plot_* functions return it to the cell) with its
    ``caption`` (what it shows; shown under it) and ``alt`` text (what it looks like, for a reader who cannot
    see it)."""
    path = figure_path(workspace, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_bytes(fig))
    fig.flatlib_name, fig.flatlib_caption, fig.flatlib_alt = name, caption, alt
    return fig


def _png_with_metadata(fig: Figure):
    """The PNG of ``fig`` and its name (reports/figures/NAME.png), alt text and caption (IPython's image/png
    metadata)."""
    meta = {k: getattr(fig, f"flatlib_{k}") for k in ("name", "alt", "caption") if getattr(fig, f"flatlib_{k}", None)}
    return (figure_bytes(fig), meta) if meta else figure_bytes(fig)


def _caption_text(fig: Figure, printer, cycle) -> None:
    printer.text(getattr(fig, "flatlib_caption", None) or repr(fig))


def _register_png_formatter() -> None:
    """Under IPython, show every matplotlib Figure as the PNG of :func:`figure_bytes` with its alt text and caption
    as metadata, and its caption as text (pyplot-free figures have no inline backend to show them)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, _png_with_metadata)
        shell.display_formatter.formatters["text/plain"].for_type(Figure, _caption_text)


_register_png_formatter()


def _mean_band(ax, x, values, workspace, band: bool = True, **style) -> None:
    """The mean over training seeds of ``values[seed, i]`` as a line, its interval as a shaded band (unless not
    ``band``)."""
    values = np.asarray(values, dtype=float)
    confidence = load_params(workspace).verdict.confidence
    estimates = [estimate(values[:, i], confidence) for i in range(values.shape[1])]
    mean = np.asarray([e.mean for e in estimates])
    ax.plot(x, mean, **style)
    half = np.asarray([e.half_width for e in estimates])
    if band and np.isfinite(half).all():
        ax.fill_between(x, mean - half, mean + half, color=style.get("color"), alpha=0.15, linewidth=0)


def _row_color(name: str):
    return ROW_COLORS.get(name, "black")


def _row_style(variant: str, weights: str) -> dict:
    return dict(color=_row_color(label(variant, "raw")), linestyle=WEIGHT_STYLES.get(weights, "-"))


def _image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L") if im.mode in ("L", "I", "I;16") else im.convert("RGB"))


def _imshow(ax, image: np.ndarray, title: str) -> None:
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def _image_grid(panels: list[list[tuple[np.ndarray, str]]], suptitle: str, width: float = 3.2):
    nrows, ncols = len(panels), max(len(r) for r in panels)
    h, w = panels[0][0][0].shape[:2]
    fig, axes = _subplots(nrows, ncols, figsize=(width * ncols, (width * h / w + 0.45) * nrows + 0.4),
                             squeeze=False)
    for i, row in enumerate(panels):
        for j in range(ncols):
            if j < len(row):
                _imshow(axes[i][j], *row[j])
            else:
                axes[i][j].axis("off")
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


@styled
def plot_samples(workspace, respacing: int) -> Figure | None:
    """The sample grids of every Table 1 row at T' (variants as rows, the weights measured for each as columns)."""
    measured = rows(workspace)
    panels = [[(_image(sample_grid_path(workspace, v, w, respacing)), f"{label(v, w)}  (T'={respacing})")
               for w in weights_kinds(workspace) if (v, w) in measured] for v in variants(workspace)]
    fig = _image_grid(panels, f"Samples at T'={respacing}, training seed {seeds(workspace)[0]} (rows: training "
                              "variant; columns: raw / EMA / SWA weights)")
    seed = seeds(workspace)[0]
    return save_figure(
        fig, workspace, f"samples_T{respacing}",
        f"Samples at T' = {respacing} sampling steps of every Table 1 row (training seed {seed}, the same image "
        "seeds for every row): one grid per training variant (rows) and weights (columns).",
        f"Grids of generated {load_params(workspace).data.name} images, one per training variant and weights kind, "
        f"at T' = {respacing}.")


@styled
def plot_quant_samples(workspace, weights: str = "raw") -> Figure | None:
    """Samples of each variant at full precision and with quantized weights (same seeds): ``weights``, or the
    first kind measured for a variant that lacks them (an import); saved as quant_samples_{kinds shown}."""
    panels, respacing, shown = [], None, set()
    for v in variants(workspace):
        q, measured = load_quant(workspace, v), [w for variant, w in rows(workspace) if variant == v]
        respacing, w = q["respacing"], weights if weights in measured else measured[0]
        shown.add(w)
        bits = sorted((int(b) for b in q["rows"][w] if b != "32"), reverse=True)
        row = [(_image(sample_grid_path(workspace, v, w, respacing)), f"{label(v, w)}  32-bit")]
        row += [(_image(quant_grid_path(workspace, v, w, respacing, b)), f"{label(v, w)}  {b}-bit") for b in bits]
        panels.append(row)
    fig = _image_grid(panels, f"Samples with and without weight quantization (T'={respacing}, training seed "
                              f"{seeds(workspace)[0]}, same image seeds)")
    return save_figure(
        fig, workspace, "quant_samples_" + "_".join(sorted(shown)),
        f"Samples at T' = {respacing} with full-precision (32-bit) and quantized weights, the same image seeds, so "
        "any difference comes from the weights alone.",
        "Grids of generated images per training variant: full precision on the left, quantized weights to the "
        "right.")


@styled
def plot_fid_vs_paper(workspace) -> Figure | None:
    """Per T', the measured FID of every Table 1 row (mean ± interval over training seeds) beside the paper's
    FID of the same row (its own axis: different features, data and sample counts). At a small profile the
    ORDER of the rows is what can be compared with the paper."""
    table, floor = table1(workspace), load_fid_floor(workspace)
    ts = [int(c.split("=")[1]) for c in mean_columns(table, "measured T'=")]
    names = list(table.index)
    variant_of = {label(v, w): (v, w) for v, w in rows(workspace)}
    fig, axes = _subplots(1, 2 * len(ts), figsize=(3.2 * 2 * len(ts) + 1.2, 0.32 * len(names) + 2.0),
                          squeeze=False, sharey=True, gridspec_kw={"width_ratios": [3, 2] * len(ts)},
                          layout="constrained")
    y = np.arange(len(names))
    for k, t in enumerate(ts):
        measured, paper = axes[0][2 * k], axes[0][2 * k + 1]
        for i, name in enumerate(names):
            v, w = variant_of.get(name, (name, "raw"))
            style = dict(marker=WEIGHT_MARKERS.get(w, "o"), color=_row_color(label(v, "raw")), linestyle="none")
            half_width = table.loc[name, f"measured T'={t}" + HALF_WIDTH]
            measured.errorbar([table.loc[name, f"measured T'={t}"]], [y[i]], capsize=3,
                              xerr=[half_width] if np.isfinite(half_width) else None, **style)
            paper.plot([table.loc[name, f"paper T'={t}"]], [y[i]], fillstyle="none", **style)
        if floor is not None:
            measured.axvline(np.mean(floor["all"]["fid"]), color="black", ls="--", lw=0.9,
                             label=f"real-vs-real floor ({floor['counts']['all']} images)")
            fig.legend(*measured.get_legend_handles_labels(), loc="outside lower center", fontsize=7)
        measured.set_title(f"measured, T'={t}")
        measured.set_xlabel(f"{metric_label(workspace)} (mean ± interval; lower is better)")
        paper.set_title(f"paper ({table.attrs['dataset']}), T'={t}")
        paper.set_xlabel("FID (Inception, 50k samples)")
        paper.set_facecolor("#f4f4f4")
    axes[0][0].set_yticks(y, names)
    axes[0][0].set_ylabel("Table 1 row")
    axes[0][0].invert_yaxis()
    fig.suptitle("Table 1: measured (white panels) and the paper's FID (grey panels) per row, each on its own axis")
    metric = metric_label(workspace)
    return save_figure(
        fig, workspace, "fid_vs_paper",
        f"Table 1 per row and T': the measured {metric} (mean ± interval over training seeds; dashed: the "
        "real-vs-real floor) and, in separate grey panels on their own axes, the paper's FID (Inception, 50k "
        "samples, CIFAR-10). Only the order of the rows can be compared; the values are on different scales.",
        f"Dot plots, one row per Table 1 method: measured {metric} with error bars in white panels, the paper's "
        "FID as hollow markers in grey panels, for each T'.")


@styled
def plot_training_loss(workspace) -> Figure | None:
    """Per variant trained here and training seed (one line each): training loss (hybrid), L_simple on the
    training batches, and L_simple of the raw weights on the fixed held-out set (eval_mse, the plateau
    criterion's curve, with the window the criterion fits shaded); main runs solid, SWA phases dashed. Imported
    variants have no training log."""
    params = load_params(workspace)
    trained = [v for v in params.variants if v not in params.imports]
    if not trained:
        print("No training curves: every variant is imported (not trained here).")
        return None
    fig, axes = _subplots(1, 3, figsize=(14, 4.4), layout="constrained")
    window = params.train.plateau_window
    for v in trained:
        color = _row_color(label(v, "raw"))
        for seed in seeds(workspace):
            for phase, style in (("train", "-"), ("swa", "--")):
                try:
                    log = load_training_log(workspace, v, seed, phase)
                except ArtifactMissing:
                    if phase == "train":
                        raise
                    continue
                name = f"{label(v, 'raw')} {'SWA phase' if phase == 'swa' else 'training'}"
                for ax, column in zip(axes, ("loss", "mse", "eval_mse")):
                    if column in log:
                        ax.plot(log["step"], log[column], style, color=color, alpha=0.8,
                                label=name if seed == seeds(workspace)[0] else None)
    last = axes[2].get_xlim()[1]
    axes[2].axvspan((1 - window) * params.train.steps, params.train.steps,
                    color="grey", alpha=0.15, label="plateau window")
    axes[2].set_xlim(right=last)
    titles = (r"training loss $L_{simple} + L_{vlb}$", r"$L_{simple}$ on training batches",
              r"$L_{simple}$ on the fixed held-out set (eval_mse)")
    for ax, title in zip(axes, titles):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("training step")
        ax.set_ylabel("loss (log scale)")
        ax.set_title(title)
        ax.set_yscale("log")
    handles = {label_: h for ax in axes for h, label_ in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(4, len(handles)))
    imported = f"; imported, without a training log: {', '.join(params.imports)}" if params.imports else ""
    fig.suptitle(f"Training curves, one line per training seed ({len(seeds(workspace))} seeds){imported}")
    return save_figure(
        fig, workspace, "training_loss",
        "Training curves of every run trained here, one line per training seed: the training loss, L_simple on the "
        "training batches and on the fixed held-out set (shaded: the window the plateau criterion fits).",
        "Three log-scale line plots of loss against training step, one colour per training variant, dashed for "
        "the SWA phase.")


@styled
def plot_loss_curves(workspace) -> Figure | None:
    """Loss under weight perturbation L(theta + a d) along filter-normalised random directions (mean over
    directions), every Table 1 row on one plot; right: the rise L(theta + a d) - L(theta)."""
    entries = flatness_entries(workspace)
    fig, axes = _subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    for (v, w) in rows(workspace):
        per_seed = entries.get(label(v, w))
        if not per_seed or not per_seed[0].get("curve"):
            continue
        alphas = np.asarray(per_seed[0]["curve"]["alphas"])
        losses = np.asarray([np.asarray(e["curve"]["losses"], dtype=float).mean(axis=0) for e in per_seed])
        rises = losses - np.asarray([e["curve"]["base_loss"] for e in per_seed])[:, None]
        for ax, values in zip(axes, (losses, rises)):
            _mean_band(ax, alphas, values, workspace, band=w == "raw", label=label(v, w), **_row_style(v, w))
    axes[0].set_title(r"loss under weight perturbation $L(\theta + a\,d)$")
    axes[1].set_title(r"rise over the minimum $L(\theta + a\,d) - L(\theta)$")
    for ax in axes:
        ax.set_xlabel(r"step $a$ along a filter-normalised random direction $d$")
    axes[0].set_ylabel(r"$L_{simple}$ (mean ± interval over seeds)")
    axes[1].set_ylabel(r"$L(\theta + a\,d) - L(\theta)$")
    fig.legend(*axes[1].get_legend_handles_labels(), loc="outside lower center", ncol=5)
    return save_figure(
        fig, workspace, "loss_curves_1d",
        "Loss under weight perturbation: L(theta + a d) along filter-normalised random directions d (left) and its "
        "rise over the minimum (right), every Table 1 row (mean over training seeds; band: interval, raw weights). "
        "A flatter minimum rises less.",
        "Two line plots against the step a from -1 to 1: U-shaped loss curves, one colour per training variant and "
        "one line style per weights kind.")


@styled
def plot_loss_surfaces(workspace) -> Figure | None:
    """2-D loss surfaces (ADM vs ADM+SAM in the paper) as contour plots with one shared colour scale."""
    seed = seeds(workspace)[0]
    entries = [(name, e[0]["surface"]) for name, e in flatness_entries(workspace).items() if e[0].get("surface")]
    if not entries:
        raise ArtifactMissing(f"{layout.variant_metrics('flatness', 'adm', seed)} (a 'surface' entry)",
                              f"flatness@adm-{seed}")
    losses = [np.asarray(s["losses"], dtype=float) for _, s in entries]
    lo, hi = min(float(x.min()) for x in losses), max(float(x.max()) for x in losses)
    levels = np.linspace(lo, hi if hi > lo else lo + 1e-12, 16)
    fig, axes = _subplots(1, len(entries), figsize=(4.4 * len(entries) + 1.2, 4.2), squeeze=False,
                             layout="constrained")
    cs = None
    for ax, (name, s), z in zip(axes[0], entries, losses):
        a, b = np.asarray(s["alphas"], dtype=float), np.asarray(s["betas"], dtype=float)
        cs = ax.contourf(b, a, z, levels=levels, cmap="viridis")   # z[i, j] = L(alpha_i, beta_j)
        ax.contour(b, a, z, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
        ax.plot([0], [0], marker="x", color="red")
        ax.set_title(rf"{name}: $L(\theta + a\,d_1 + b\,d_2)$")
        ax.set_xlabel("b")
        ax.set_ylabel("a")
        ax.grid(False)
    fig.colorbar(cs, ax=list(axes[0]), label=r"$L_{simple}$ (shared scale)")
    fig.suptitle(f"2-D loss surfaces around the minimum (training seed {seed}; same directions seed, same data)")
    names = " and ".join(name for name, _ in entries)
    return save_figure(
        fig, workspace, "loss_surfaces_2d",
        f"2-D loss surfaces of {names} around their minimum (x) along two filter-normalised random directions, "
        f"on one shared colour scale (training seed {seed}): wider low regions are flatter.",
        f"Side-by-side contour plots of the loss of {names} over a square grid, with a shared colour bar.")


#: fewer Hutchinson draws than this leave the trace's interval too wide to separate rows: the trace is not drawn
MIN_TRACE_DRAWS = 32


def _not_drawn(ax, why: str) -> None:
    """An empty panel that says why it is empty."""
    ax.set_yticks([])
    ax.text(0.5, 0.5, why, transform=ax.transAxes, ha="center", va="center", fontsize=8, color="#555")


@styled
def plot_hessian(workspace) -> Figure | None:
    """Hessian top eigenvalue and trace (means ± intervals over seeds) per Table 1 row. lambda_max is drawn only
    for rows whose power iteration converged (flatness.hessian_tol) for every seed: a stopped iteration gives a
    lower bound, not a measurement; the trace only from at least MIN_TRACE_DRAWS Hutchinson draws."""
    table, cfg = flatness_table(workspace), load_params(workspace).flatness
    names = list(table.index)
    variant_of = {label(v, w): v for v, w in rows(workspace)}
    colors = [_row_color(label(variant_of[n], "raw")) if n in variant_of else "grey" for n in names]
    converged = table["power iteration converged"] if "power iteration converged" in table else {}
    done = [n in converged and converged[n].split("/")[0] == converged[n].split("/")[1] for n in names]
    fig, axes = _subplots(1, 2, figsize=(11, 4.0))
    x = np.arange(len(names))
    for ax, column in zip(axes, ("Hessian top eig", "Hessian trace")):
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_xlabel("Table 1 row")
        if column not in table:
            _not_drawn(ax, "not measured\n(flatness.hessian_iters or hessian_samples = 0)")
            continue
        shown = np.array(done if column == "Hessian top eig" else [cfg.hessian_samples >= MIN_TRACE_DRAWS] * len(names))
        values = table[column].where(shown)
        ax.bar(x, values, yerr=table[column + HALF_WIDTH].where(shown).fillna(0), color=colors, capsize=3)
        if not shown.any():
            _not_drawn(ax, "not drawn:\n" + (f"the power iteration stopped at\nflatness.hessian_iters = "
                                             f"{cfg.hessian_iters}\nbefore reaching hessian_tol = {cfg.hessian_tol:g}"
                                             if column == "Hessian top eig" else
                                             f"{cfg.hessian_samples} Hutchinson draws,\nfewer than {MIN_TRACE_DRAWS}"))
        elif not shown.all():
            for xi in x[~shown]:
                ax.text(xi, 0, "not\nconverged", ha="center", va="bottom", fontsize=6, color="#555")
    axes[0].set_title(r"top eigenvalue $\lambda_{max}$ of $\nabla^2_\theta L$"
                      + f" (power iteration to {cfg.hessian_tol:g})")
    axes[1].set_title(r"trace of $\nabla^2_\theta L$" + f" (Hutchinson, {cfg.hessian_samples} draws)")
    axes[0].set_ylabel(r"$\lambda_{max}$ (mean ± interval over seeds)")
    axes[1].set_ylabel(r"tr $\nabla^2_\theta L$ (mean ± interval over seeds)")
    fig.tight_layout()
    return save_figure(
        fig, workspace, "hessian",
        f"Hessian of the loss at the weights per Table 1 row (mean ± interval over training seeds): the top "
        f"eigenvalue by power iteration, drawn only where it reached the relative tolerance {cfg.hessian_tol:g} "
        f"for every seed within {cfg.hessian_iters} iterations, and the trace by Hutchinson's estimator "
        f"({cfg.hessian_samples} draws; drawn from {MIN_TRACE_DRAWS}). Lower is flatter.",
        "Two bar charts, one bar per Table 1 row coloured by training variant, with error bars; rows without a "
        "converged measurement have no bar.")


@styled
def plot_noise_norms(workspace) -> Figure | None:
    """Norm of the predicted noise per sampling step: on the model's own chain (sampling) vs on forward-noised
    real images (training), one panel per Table 1 row; sampling runs left to right (t = T to 0)."""
    entries = exposure_entries(workspace)
    ncols = len(weights_kinds(workspace))
    nrows = -(-len(entries) // ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows + 0.4), squeeze=False, sharex=True,
                          sharey=True, layout="constrained")
    for k, (v, w, per_seed) in enumerate(entries):
        ax, t = axes[k // ncols][k % ncols], per_seed[0]["t"]
        _mean_band(ax, t, [e["sampling_norm"] for e in per_seed], workspace, color="tab:red", label="sampling chain")
        _mean_band(ax, t, [e["training_norm"] for e in per_seed], workspace, color="tab:blue", linestyle="--",
                   label="training (forward process)")
        gap = np.mean([e["gap_aggregate"] for e in per_seed])
        ax.set_title(f"{label(v, w)}: gap {fmt(gap, 'gap', sign=True)} ({per_seed[0].get('aggregate', 'mean')})")
    axes[0][0].invert_xaxis()  # shared x: every panel runs from t = T to t = 0
    for ax in axes[-1]:
        ax.set_xlabel("t (sampling runs left to right)")
    for row in axes:
        row[0].set_ylabel(r"mean $\|\epsilon_\theta(x_t, t)\|$")
    for k in range(len(entries), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
    fig.suptitle("Predicted-noise norm: sampling vs training (exposure bias)")
    return save_figure(
        fig, workspace, "noise_norms",
        "Norm of the predicted noise at each sampling step, on the model's own sampling chain and on forward-noised "
        "real images, one panel per Table 1 row (mean over training seeds; band: interval). The gap between the "
        "two is the exposure bias.",
        "Small multiples, one per Table 1 row: two lines (sampling chain, training) of the noise norm against the "
        "sampling step t, running from t = T to 0.")


def _bars(ax, names, means, half_widths, xlabel: str) -> None:
    """Horizontal bars (mean ± interval) per Table 1 row, a zero line."""
    y = np.arange(len(names))
    variant_of = vocabulary.VARIANT_OF
    ax.barh(y, means, xerr=np.nan_to_num(np.asarray(half_widths, dtype=float)), capsize=3,
            color=[_row_color(label(variant_of.get(name, name), "raw")) for name in names])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, list(names))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)


def _paper_marks(ax, names, values, text: str) -> None:
    """The paper's values (hollow diamonds) on ``ax``, where it has them: the same quantity as the bars."""
    y = np.arange(len(names))
    values = np.asarray(values, dtype=float)
    if np.isfinite(values).any():
        ax.plot(values, y, "D", mfc="none", mec="black", ms=6, label=text)


@styled
def plot_quant_fid(workspace) -> Figure | None:
    """The FID change under weight quantization as a percentage of the 32-bit FID (quantized minus 32-bit, paired
    per seed), per Table 1 row and bit width; the paper's 8-bit change (CIFAR-10, T'=20: ADM, +SAM) as the same
    percentage beside it: relative changes compare across scales, absolute ones do not."""
    table = quant_table(workspace)
    widths = mean_columns(table, "dFID ")
    fig, axes = _subplots(1, len(widths), figsize=(5.2 * len(widths), 0.32 * len(table) + 2.2), squeeze=False,
                          layout="constrained")
    base = table["FID 32-bit"].to_numpy(dtype=float)
    paper = 100 * (table["paper FID 8-bit"] - table["paper FID 32-bit"]) / table["paper FID 32-bit"]
    for ax, column in zip(axes[0], widths):
        _bars(ax, table.index, 100 * table[column] / base, 100 * table[column + HALF_WIDTH] / base,
              f"{column} as % of the 32-bit value")
        if column == "dFID 8-bit":
            _paper_marks(ax, table.index, paper, "paper, 8-bit (CIFAR-10; secondary summary)")
        ax.set_title(column.replace("dFID ", ""))
    handles = {lab: h for ax in axes[0] for h, lab in zip(*ax.get_legend_handles_labels())}
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside lower center")
    metric = metric_label(workspace)
    fig.suptitle(f"{metric} change under post-training weight quantization (T'={table.attrs['respacing']}), "
                 "% of the 32-bit value; lower = more robust")
    return save_figure(
        fig, workspace, "quant_fid",
        f"Change of the {metric} when the weights are quantized, as a percentage of the same row's 32-bit value "
        f"(T' = {table.attrs['respacing']}; bars: mean ± interval over training seeds, the interval of the paired "
        "change divided by the mean 32-bit value), beside the paper's 8-bit change on CIFAR-10 as the same "
        "percentage (hollow diamonds; from a secondary summary of the paper).",
        "Horizontal bar charts per bit width, one bar per Table 1 row with error bars around a zero line; hollow "
        "diamonds mark the paper's percentages for ADM and +SAM.")


@styled
def plot_exposure_gap(workspace) -> Figure | None:
    """Top: the gap (sampling minus training norm) per sampling step without the last step (t = 0), one panel per
    weights kind (lines: training variants), and the last step alone in its own small panel. Bottom: the gap
    reduced over steps (exposure.aggregate) per row, and the ratio of +SAM's gap to ADM's beside the paper's
    ratio (the paper's gaps are on another scale: only the ratio compares)."""
    entries, table = exposure_entries(workspace), exposure_table(workspace)
    kinds = list(dict.fromkeys(w for _, w, _ in entries))
    fig = Figure(figsize=(3.4 * len(kinds) + 3.0, 7.4), layout="constrained")
    grid = fig.add_gridspec(2, len(kinds) + 1, width_ratios=[3] * len(kinds) + [2])
    steps = [fig.add_subplot(grid[0, k]) for k in range(len(kinds))]
    for ax in steps[1:]:
        ax.sharey(steps[0])
    last = fig.add_subplot(grid[0, -1])
    for v, w, per_seed in entries:
        t, gaps = np.asarray(per_seed[0]["t"]), np.asarray([e["gap"] for e in per_seed], dtype=float)
        _mean_band(steps[kinds.index(w)], t[:-1], gaps[:, :-1], workspace, label=label(v, "raw"),
                   **_row_style(v, "raw"))
    for ax, w in zip(steps, kinds):
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.invert_xaxis()
        ax.set_title(f"{w} weights: gap per step, t > 0")
        ax.set_xlabel("t (sampling runs left to right)")
    steps[0].set_ylabel(r"$\|\epsilon_\theta\|$ sampling $-$ training")
    names = list(table.index)
    _bars(last, names, table["gap at t=0"], table["gap at t=0" + HALF_WIDTH], "gap at t = 0")
    last.set_title("the last step (t = 0) alone")
    aggregate = mean_columns(table, "gap (")[0]
    bars, ratio = fig.add_subplot(grid[1, :len(kinds)]), fig.add_subplot(grid[1, -1])
    _bars(bars, names, table[aggregate], table[aggregate + HALF_WIDTH],
          f"measured gap ({table.attrs['aggregate']}; mean ± interval)")
    bars.set_title("exposure gap per Table 1 row")
    paper = table["paper gap"]
    pairs = [(r, ("+SAM" + r[len("ADM"):]) if r.startswith("ADM") else None) for r in names if r.startswith("ADM")]
    pairs = [(a, b) for a, b in pairs if b in table.index]
    if pairs and np.isfinite(paper).sum() >= 2:
        ratios = [float(table.loc[b, aggregate] / table.loc[a, aggregate]) for a, b in pairs]
        paper_ratio = float(paper["+SAM"] / paper["ADM"])
        y = np.arange(len(pairs) + 1)
        ratio.barh(y, ratios + [paper_ratio], color=["tab:purple"] * len(pairs) + ["#bbbbbb"])
        ratio.set_yticks(y, ["measured" if b == "+SAM" else f"measured\n{b} / {a}" for a, b in pairs] + ["paper"])
        ratio.invert_yaxis()
        ratio.axvline(1.0, color="black", linewidth=0.8)
        ratio.set_xlabel("ratio (< 1: less bias)")
        ratio.set_title("+SAM / ADM gap ratio")
    else:
        ratio.axis("off")
    fig.legend(*steps[0].get_legend_handles_labels(), loc="outside lower center", ncol=len(entries))
    return save_figure(
        fig, workspace, "exposure_gap",
        "Exposure gap (norm of the predicted noise on the sampling chain minus on forward-noised real images). Top: "
        "per sampling step, one panel per weights kind (mean over training seeds; band: interval), the last step "
        "t = 0 alone in its own panel (its spike would flatten the rest). Bottom: the gap reduced over steps per "
        "row, and +SAM's gap as a ratio of ADM's beside the paper's ratio (the paper's gaps, from a secondary "
        "summary, are on another scale).",
        "Line plots of the gap against the sampling step per weights kind, a bar chart of the last-step gap, a bar "
        "chart of the reduced gap per row, and a small bar chart of gap ratios, measured and the paper's.")


@styled
def plot_rho_sweep(workspace) -> Figure | None:
    """FID and MC sharpness against SAM's rho (categorical axis; rho = 0: plain Adam, the ADM run)."""
    table = rho_table(workspace)
    if table.empty:
        print(f"No rho sweep figure: {table.attrs['note']}.")
        return None
    rhos = table.index.to_numpy(dtype=float)
    x = np.arange(len(rhos))
    fig, axes = _subplots(1, 2, figsize=(10, 4.4), layout="constrained")
    floor, per_param = load_fid_floor(workspace), 1 / np.sqrt(num_parameters(workspace))
    for ax, column, ylabel in zip(axes, ("FID", "MC sharpness"),
                                  (f"{metric_label(workspace)} at T'={table.attrs.get('respacing')} (lower is better)",
                                   rf"MC sharpness, $\sigma$={table.attrs.get('sigma')} (lower is flatter)")):
        ax.errorbar(x, table[column], yerr=table[column + HALF_WIDTH].fillna(0), marker="o", color="tab:purple",
                    capsize=3)
        if column == "FID" and floor is not None:
            ax.axhline(np.mean(floor["set"]["fid"]), color="black", ls="--", lw=0.9,
                       label=f"real-vs-real floor ({floor['counts']['set']} images)")
            fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=7)
        ax.set_xticks(x, [f"{r:g}" + (" (ADM)" if r == 0 else f"\n{r * per_param:.2g}/param") for r in rhos])
        ax.set_xlabel(r"SAM radius $\rho$ (below it: $\rho/\sqrt{N}$, N parameters)")
        ax.set_xlim(-0.5, len(rhos) - 0.5)  # fixed: autoscaled limits moved between the first draws
        ax.set_ylabel(ylabel)
        ax.set_title(("sample quality" if column == "FID" else "flatness") + r" vs $\rho$")
    fig.suptitle(r"$\rho$ sweep: full-length runs, mean ± interval over training seeds")
    return save_figure(
        fig, workspace, "rho_sweep",
        f"{metric_label(workspace)} at T' = {table.attrs.get('respacing')} (left) and MC sharpness at sigma = "
        f"{table.attrs.get('sigma')} (right) against SAM's radius rho (rho = 0: the ADM run, plain Adam); mean ± interval over training seeds. "
        "Below each rho: rho / sqrt(N), the radius per parameter of this N-parameter UNet (the paper's 0.1 in its "
        f"{PAPER_UNET_PARAMS / 1e6:g}M-parameter UNet is {0.1 / PAPER_UNET_PARAMS ** 0.5:.2g} per parameter).",
        "Two line plots with error bars over the rho values on a categorical axis.")


#: the forest plot's colour per outcome word (flatlib.measure.stats.OUTCOMES)
OUTCOME_COLORS = {"reproduced": "#2a9d3f", "contradicted": "#c8332b", "weaker than the paper": "#3b6fb6",
                  "inconclusive": "#9a9a9a"}


@styled
def plot_claims_forest(workspace) -> Figure | None:
    """Forest plot of every part of every evaluated claim: the relative paired difference (A - B) / B with its
    interval from the verdicts' variance model (flatlib.measure.stats), a zero line, the paper's relative effect (◆) where
    the paper gives one, coloured by the claim's outcome; the paper's claims first, added ones after."""
    from flatlib.report.claims import claim_parts
    from flatlib.measure.stats import base_outcome
    parts = claim_parts(workspace)
    if parts.empty:
        return None
    parts = parts.sort_values("family", kind="stable", key=lambda f: f != "paper").reset_index(drop=True)
    fig, ax = _subplots(figsize=(8.0, 0.22 * len(parts) + 1.4))
    y = np.arange(len(parts))[::-1]
    for yi, (_, r) in zip(y, parts.iterrows()):
        color = OUTCOME_COLORS[base_outcome(r["outcome"])]
        ax.errorbar(100 * r["relative"], yi, xerr=[[100 * (r["relative"] - r["relative low"])],
                                                   [100 * (r["relative high"] - r["relative"])]],
                    fmt="o", color=color, ms=3.5, capsize=2, lw=1.1)
        if np.isfinite(r["paper relative"]):
            ax.plot(100 * r["paper relative"], yi, "D", mfc="none", mec="black", ms=5)
        if r["threshold"]:
            ax.plot(100 * r["threshold"], yi, "|", color="black", ms=9)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, [f"{r['claim']}: {r['part']}"[:60] + (" [added]" if r["family"] != "paper" else "")
                      for _, r in parts.iterrows()], fontsize=6.5)
    ax.set_xlabel("relative paired difference (A - B) / B, % (mean ± interval over training seeds)")
    handles = [matplotlib.lines.Line2D([], [], marker="o", ls="", color=c, label=o) for o, c in OUTCOME_COLORS.items()]
    handles.append(matplotlib.lines.Line2D([], [], marker="D", ls="", mfc="none", mec="black",
                                           label="paper's relative effect"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title("Every claim: measured effect beside the paper's\n(left of 0 = the paper's direction; a claim about "
                 "a threshold (|) holds right of it)", fontsize=8)
    fig.tight_layout()
    return save_figure(
        fig, workspace, "claims_forest",
        "Every part of every claim: the measured relative effect (A - B) / B with its interval (dot and bar, "
        "coloured by the claim's outcome) beside the paper's relative effect (hollow diamond); left of zero is the "
        "paper's direction. Added claims are marked.",
        "Forest plot: one horizontal row per claim part, a dot with an error bar against a vertical zero line, and "
        "a hollow diamond where the paper gives a number.")


@styled
def plot_length_effects(workspace) -> Figure | None:
    """The paired effect against training step (issue 21 item 4): one panel per FID and flatness claim, each part's
    relative paired difference (A - B) / B with its interval (the verdicts' variance model) at each fraction of
    training and at the end (flatlib.report.length), coloured by the claim's outcome at that step."""
    from flatlib.report.length import length_effects
    from flatlib.measure.stats import base_outcome
    effects = length_effects(workspace)
    if effects.empty:
        return None
    claims_ = list(dict.fromkeys(effects["claim"]))
    cols = min(4, len(claims_))
    rows_ = -(-len(claims_) // cols)
    fig, axes = _subplots(rows_, cols, figsize=(3.0 * cols, 2.4 * rows_ + 0.6), squeeze=False)
    for ax, cid in zip(axes.flat, claims_):
        for part, group in effects[effects["claim"] == cid].groupby("part", sort=False):
            group = group.sort_values("step")
            ax.plot(group["step"], 100 * group["relative"], lw=0.8, color="0.6")
            for _, r in group.iterrows():
                ax.errorbar(r["step"], 100 * r["relative"], yerr=[[100 * (r["relative"] - r["relative low"])],
                                                                  [100 * (r["relative high"] - r["relative"])]],
                            fmt="o", ms=3, capsize=2, lw=1, color=OUTCOME_COLORS[base_outcome(r["outcome"])])
        ax.axhline(0, color="black", lw=0.8)
        ax.set_title(cid, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(claims_):]:
        ax.set_axis_off()
    fig.supxlabel("training step (checkpoint)", fontsize=8)
    fig.supylabel("(A - B) / B, % (below 0: the paper's direction)", fontsize=8)
    fig.tight_layout()
    return save_figure(
        fig, workspace, "length_effects",
        "The paired effect of every part of each FID and flatness claim against training step: mean ± interval over "
        "training seeds, coloured by the claim's outcome at that step (raw and EMA weights at saved checkpoints; the "
        "last step is Table 1's).",
        "Small multiples, one per claim: dots with error bars at each checkpoint step joined by grey lines, a "
        "horizontal zero line.")
