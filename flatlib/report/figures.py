"""The notebooks' figures: each ``plot_*`` saves ``reports/figures/NAME.png`` with deterministic bytes and
returns its matplotlib Figure (restyle it and show it again: ``fig.axes[0].set_title(...); fig``). Under
IPython a Figure is shown as PNG of the same bytes; its text/plain is ``<Figure size ... with N Axes>``."""
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

from flatlib import layout
from flatlib.layout import label
from flatlib.report.artifacts import (HALF_WIDTH, ArtifactMissing, exposure_entries, flatness_entries, fmt,
                                      load_fid_floor, load_params, load_quant, load_training_log,
                                      mean_columns, metric_label, quant_grid_path,
                                      rows,
                                      sample_grid_path, seeds, variants, weights_kinds, workspace_path)
from flatlib.stats import estimate
from flatlib.unet import count_parameters, create_unet
from flatlib.report.paper import PAPER_TABLE1
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
        fig.draw_without_rendering()  # a constrained layout settles after its first draw: same bytes every time
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def figure_path(workspace, name: str) -> Path:
    return workspace_path(workspace, layout.FIGURES / f"{name}.png")


def save_figure(fig: Figure, workspace, name: str) -> Figure:
    """Save ``fig`` as reports/figures/NAME.png and return it (the plot_* functions return it to the cell)."""
    path = figure_path(workspace, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_bytes(fig))
    return fig


def _register_png_formatter() -> None:
    """Under IPython, show every matplotlib Figure as the PNG of :func:`figure_bytes` (pyplot-free figures have
    no inline backend to show them)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_bytes)


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
    return save_figure(fig, workspace, f"samples_T{respacing}")


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
    return save_figure(fig, workspace, "quant_samples_" + "_".join(sorted(shown)))


@styled
def plot_fid_vs_paper(workspace) -> Figure | None:
    """Per T', the measured FID of every Table 1 row (mean ± interval over training seeds) beside the paper's
    FID of the same row (its own axis: different features, data and sample counts). At a small profile the
    ORDER of the rows is what can be compared with the paper."""
    table, floor = table1(workspace), load_fid_floor(workspace)
    ts = [int(c.split("=")[1]) for c in mean_columns(table, "measured T'=")]
    names = list(table.index)
    variant_of = {label(v, w): (v, w) for v, w in rows(workspace)}
    fig, axes = _subplots(1, 2 * len(ts), figsize=(3.2 * 2 * len(ts) + 1.2, 0.32 * len(names) + 1.5),
                          squeeze=False, sharey=True, gridspec_kw={"width_ratios": [3, 2] * len(ts)})
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
            measured.legend(loc="lower right", fontsize=6)
        measured.set_title(f"measured, T'={t}")
        measured.set_xlabel(f"{metric_label(workspace)} (mean ± interval; lower is better)")
        paper.set_title(f"paper ({table.attrs['dataset']}), T'={t}")
        paper.set_xlabel("FID (Inception, 50k samples)")
        paper.set_facecolor("#f4f4f4")
    axes[0][0].set_yticks(y, names)
    axes[0][0].set_ylabel("Table 1 row")
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Table 1: {metric_label(workspace)} per row, measured (filled) beside the paper's FID (hollow); "
                 "same markers per row")
    fig.tight_layout()
    return save_figure(fig, workspace, "fid_vs_paper")


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
    fig, axes = _subplots(1, 3, figsize=(14, 3.8))
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
        ax.legend()
    imported = f"; imported, without a training log: {', '.join(params.imports)}" if params.imports else ""
    fig.suptitle(f"Training curves, one line per training seed ({len(seeds(workspace))} seeds){imported}")
    fig.tight_layout()
    return save_figure(fig, workspace, "training_loss")


@styled
def plot_loss_curves(workspace) -> Figure | None:
    """Loss under weight perturbation L(theta + a d) along filter-normalised random directions (mean over
    directions), every Table 1 row on one plot; right: the rise L(theta + a d) - L(theta)."""
    entries = flatness_entries(workspace)
    fig, axes = _subplots(1, 2, figsize=(11, 4.0))
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
    axes[1].legend(ncol=3)
    fig.tight_layout()
    return save_figure(fig, workspace, "loss_curves_1d")


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
    return save_figure(fig, workspace, "loss_surfaces_2d")


@styled
def plot_hessian(workspace) -> Figure | None:
    """Hessian top eigenvalue and trace (means ± intervals over seeds) per Table 1 row; a row whose power
    iteration did not converge for every seed is hatched and its label says how many did."""
    table = flatness_table(workspace)
    names = list(table.index)
    variant_of = {label(v, w): v for v, w in rows(workspace)}
    colors = [_row_color(label(variant_of[n], "raw")) if n in variant_of else "grey" for n in names]
    converged = (table["power iteration converged"] if "power iteration converged" in table
                 else {n: "" for n in names})
    unconverged = [bool(converged[n]) and converged[n].split("/")[0] != converged[n].split("/")[1] for n in names]
    fig, axes = _subplots(1, 2, figsize=(11, 4.0))
    x = np.arange(len(names))
    for ax, column in zip(axes, ("Hessian top eig", "Hessian trace")):
        ax.bar(x, table[column], yerr=table[column + HALF_WIDTH].fillna(0), color=colors, capsize=3)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_xlabel("Table 1 row")
    for bar, bad in zip(axes[0].patches, unconverged):
        if bad:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
    axes[0].set_title(r"top eigenvalue $\lambda_{max}$ of $\nabla^2_\theta L$ (power iteration)")
    axes[1].set_title(r"trace of $\nabla^2_\theta L$ (Hutchinson)")
    axes[0].set_ylabel(r"$\lambda_{max}$ (mean ± interval over seeds)")
    axes[1].set_ylabel(r"tr $\nabla^2_\theta L$ (mean ± interval over seeds)")
    if any(unconverged):
        axes[0].set_xticks(x, [f"{n}\n(converged {converged[n]})" if bad else n for n, bad in zip(names, unconverged)],
                           rotation=45, ha="right")
        fig.suptitle("Hessian of the loss at the weights (hatched: the power iteration did not converge for every "
                     "seed; its eigenvalue is a lower bound)")
    fig.tight_layout()
    return save_figure(fig, workspace, "hessian")


@styled
def plot_noise_norms(workspace) -> Figure | None:
    """Norm of the predicted noise per sampling step: on the model's own chain (sampling) vs on forward-noised
    real images (training), one panel per Table 1 row; sampling runs left to right (t = T to 0)."""
    entries = exposure_entries(workspace)
    ncols = len(weights_kinds(workspace))
    nrows = -(-len(entries) // ncols)
    fig, axes = _subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False, sharex=True,
                             sharey=True)
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
    axes[0][0].legend()
    fig.suptitle("Predicted-noise norm: sampling vs training (exposure bias)")
    fig.tight_layout()
    return save_figure(fig, workspace, "noise_norms")


def _bars_beside_paper(ax, table, column: str, paper, xlabel: str, paper_label: str) -> None:
    """Horizontal bars of ``table[column]`` (mean ± interval) per Table 1 row, the paper's values (◆) on their
    own top axis where it has them (another scale: other data, features and sample counts)."""
    y = np.arange(len(table))
    variant_of = {label(v, w): v for v, w in layout.PAPER_ROWS}
    ax.barh(y, table[column], xerr=table[column + HALF_WIDTH].fillna(0), capsize=3,
            color=[_row_color(label(variant_of.get(name, name), "raw")) for name in table.index])
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, list(table.index))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    paper = np.asarray(paper, dtype=float)
    if np.isfinite(paper).any():
        top = ax.twiny()
        top.plot(paper, y, "D", color="black")
        half = table[column + HALF_WIDTH].fillna(0).to_numpy(dtype=float)
        means = table[column].to_numpy(dtype=float)
        low, high = min(0.0, float(np.nanmin(means - half))), max(0.0, float(np.nanmax(means + half)))
        low, high = low - 0.08 * (high - low), high + 0.08 * (high - low)
        ax.set_xlim(low, high)  # the same zero on both axes, the top one scaled to fit the paper's values
        scale = 1.1 * max(p / high if p > 0 else p / low for p in paper[np.isfinite(paper)] if p != 0)
        top.set_xlim(low * scale, high * scale)
        top.set_xlabel(paper_label)
        top.grid(False)


@styled
def plot_quant_fid(workspace) -> Figure | None:
    """FID change under weight quantization (quantized minus 32-bit, paired per seed and sample set) per Table 1
    row and bit width, the paper's 8-bit change (CIFAR-10, T'=20: ADM, +SAM) beside it."""
    table = quant_table(workspace)
    widths = mean_columns(table, "dFID ")
    fig, axes = _subplots(1, len(widths), figsize=(5.2 * len(widths), 0.32 * len(table) + 1.6), squeeze=False)
    paper = table["paper FID 8-bit"] - table["paper FID 32-bit"]
    for ax, column in zip(axes[0], widths):
        _bars_beside_paper(ax, table, column, paper if column == "dFID 8-bit" else [np.nan] * len(table),
                           f"{column} (quantized - 32-bit; mean ± interval)", "paper dFID 8-bit, CIFAR-10 (◆)")
    fig.suptitle(f"{metric_label(workspace)} change under post-training weight quantization (T'={table.attrs['respacing']}; lower = more "
                 "robust)")
    fig.tight_layout()
    return save_figure(fig, workspace, "quant_fid")


@styled
def plot_exposure_gap(workspace) -> Figure | None:
    """Left: the gap (sampling minus training norm) per sampling step for every Table 1 row, without the last
    step (t = 0), whose spike would flatten the rest; the inset shows every step. Right: the gap reduced over
    steps (exposure.aggregate) per row, beside the paper's CIFAR-10 gaps where it has them."""
    entries = exposure_entries(workspace)
    fig, (ax, bars) = _subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    inset = ax.inset_axes([0.06, 0.52, 0.33, 0.4])
    for v, w, per_seed in entries:
        t, gaps = np.asarray(per_seed[0]["t"]), np.asarray([e["gap"] for e in per_seed], dtype=float)
        _mean_band(ax, t[:-1], gaps[:, :-1], workspace, band=w == "raw", label=label(v, w), **_row_style(v, w))
        inset.plot(t, gaps.mean(axis=0), linewidth=0.8, **_row_style(v, w))
    for axis in (ax, inset):
        axis.axhline(0.0, color="black", linewidth=0.8)
        axis.invert_xaxis()
    inset.set_title("every step, t = 0 included", fontsize=7)
    inset.tick_params(labelsize=6)
    ax.set_xlabel("t (sampling runs left to right; last step t = 0 in the inset)")
    ax.set_ylabel(r"$\|\epsilon_\theta\|$ sampling $-$ $\|\epsilon_\theta\|$ training")
    ax.set_title("Exposure gap per step (mean over seeds; band: interval, raw weights)")
    ax.legend(ncol=3, loc="upper center")
    table = exposure_table(workspace)
    gap = mean_columns(table, "gap (")[0]
    _bars_beside_paper(bars, table, gap, table["paper gap"],
                       f"measured gap ({table.attrs['aggregate']}; bars: mean ± interval)", "paper gap, CIFAR-10 (◆)")
    fig.tight_layout()
    return save_figure(fig, workspace, "exposure_gap")


@styled
def plot_rho_sweep(workspace) -> Figure | None:
    """FID and MC sharpness against SAM's rho (categorical axis; rho = 0: plain Adam, the ADM run)."""
    table = rho_table(workspace)
    if table.empty:
        print(f"No rho sweep figure: {table.attrs['note']}.")
        return None
    rhos = table.index.to_numpy(dtype=float)
    x = np.arange(len(rhos))
    fig, axes = _subplots(1, 2, figsize=(10, 3.8))
    floor, per_param = load_fid_floor(workspace), 1 / np.sqrt(count_parameters(create_unet(load_params(workspace).model)))
    for ax, column, ylabel in zip(axes, ("FID", "MC sharpness"),
                                  (f"{metric_label(workspace)} at T'={table.attrs.get('respacing')} (lower is better)",
                                   rf"MC sharpness, $\sigma$={table.attrs.get('sigma')} (lower is flatter)")):
        ax.errorbar(x, table[column], yerr=table[column + HALF_WIDTH].fillna(0), marker="o", color="tab:purple",
                    capsize=3)
        if column == "FID" and floor is not None:
            ax.axhline(np.mean(floor["set"]["fid"]), color="black", ls="--", lw=0.9,
                       label=f"real-vs-real floor ({floor['counts']['set']} images)")
            ax.legend(fontsize=6)
        ax.set_xticks(x, [f"{r:g}" + (" (ADM)" if r == 0 else f"\n{r * per_param:.2g}/param") for r in rhos])
        ax.set_xlabel(r"SAM radius $\rho$ (below: $\rho$ / sqrt(number of parameters); the paper's 0.1 in 52.5M "
                      "parameters: 1.4e-05)")
        ax.set_ylabel(ylabel)
        ax.set_title(rf"{column} vs $\rho$")
    fig.suptitle(r"$\rho$ sweep: full-length runs, mean ± interval over training seeds")
    fig.tight_layout()
    return save_figure(fig, workspace, "rho_sweep")


#: the forest plot's colour per outcome word (flatlib.stats.OUTCOMES)
OUTCOME_COLORS = {"reproduced": "#2a9d3f", "contradicted": "#c8332b", "weaker than the paper": "#3b6fb6",
                  "inconclusive": "#9a9a9a"}


@styled
def plot_claims_forest(workspace) -> Figure | None:
    """Forest plot of every part of every evaluated claim: the relative paired difference (A - B) / B with its
    interval from the verdicts' variance model (flatlib.stats), a zero line, the paper's relative effect (◆) where
    the paper gives one, coloured by the claim's outcome; the paper's claims first, added ones after."""
    from flatlib.report.claims import claim_parts
    from flatlib.stats import base_outcome
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
    return save_figure(fig, workspace, "claims_forest")
