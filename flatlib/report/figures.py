"""The notebooks' figures: each saved as ``reports/figures/NAME.png`` with deterministic bytes and shown
inline under IPython."""
from __future__ import annotations

import functools
import io
from pathlib import Path

import matplotlib
import matplotlib.style
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from flatlib import layout
from flatlib.layout import label
from flatlib.report.artifacts import (HALF_WIDTH, ArtifactMissing, exposure_entries, flatness_entries, fmt,
                                      load_params, load_quant, load_training_log, quant_grid_path, rows,
                                      sample_grid_path, seeds, variants, weights_kinds, workspace_path)
from flatlib.stats import estimate
from flatlib.report.paper import PAPER_TABLE1
from flatlib.report.tables import flatness_table, rho_table, table1


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
    """PNG bytes of ``fig``: fixed dpi, no 'Software' (version) or date metadata, so equal figures give
    equal bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def figure_path(workspace, name: str) -> Path:
    return workspace_path(workspace, layout.FIGURES / f"{name}.png")


def save_figure(fig, workspace, name: str, show: bool = True) -> Path:
    """Save ``fig`` as reports/figures/NAME.png, show it inline (under IPython) and close it.

    The plot_* functions call this and return None: a value left as a cell's last expression would become
    compared text/plain output (nbval runs cells without history, so a trailing ';' does not hide it)."""
    data = figure_bytes(fig)
    path = figure_path(workspace, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if show:
        _display_png(data)
    return path


def _display_png(data: bytes) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Image(data=data, format="png"))


def _mean_band(ax, x, values, workspace, **style) -> None:
    """The mean over training seeds of ``values[seed, i]`` as a line, its interval as a shaded band."""
    values = np.asarray(values, dtype=float)
    confidence = load_params(workspace).verdict.confidence
    estimates = [estimate(values[:, i], confidence) for i in range(values.shape[1])]
    mean = np.asarray([e.mean for e in estimates])
    ax.plot(x, mean, **style)
    half = np.asarray([e.half_width for e in estimates])
    if np.isfinite(half).all():
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
def plot_samples(workspace, respacing: int, show: bool = True) -> None:
    """The sample grids of every Table 1 row at T' (variants as rows, the weights measured for each as columns)."""
    measured = rows(workspace)
    panels = [[(_image(sample_grid_path(workspace, v, w, respacing)), f"{label(v, w)}  (T'={respacing})")
               for w in weights_kinds(workspace) if (v, w) in measured] for v in variants(workspace)]
    fig = _image_grid(panels, f"Samples at T'={respacing}, training seed {seeds(workspace)[0]} (rows: training "
                              "variant; columns: raw / EMA / SWA weights)")
    save_figure(fig, workspace, f"samples_T{respacing}", show)


@styled
def plot_quant_samples(workspace, weights: str = "raw", show: bool = True) -> None:
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
    save_figure(fig, workspace, "quant_samples_" + "_".join(sorted(shown)), show)


@styled
def plot_fid_vs_paper(workspace, show: bool = True) -> None:
    """Measured FID per Table 1 row (dots, one panel per T'); the paper's FIDs are in the row labels. At a
    small profile the ORDER of the rows is what can be compared with the paper."""
    table = table1(workspace)
    ts = [int(c.split("=")[1]) for c in table.columns if c.startswith("measured T'=") and not c.endswith(HALF_WIDTH)]
    names = list(table.index)
    variant_of = {label(v, w): (v, w) for v, w in rows(workspace)}
    fig, axes = _subplots(1, len(ts), figsize=(4.2 * len(ts) + 1.6, 0.32 * len(names) + 1.4), squeeze=False,
                             sharey=True)
    y = np.arange(len(names))
    for ax, t in zip(axes[0], ts):
        for k, name in enumerate(names):
            v, w = variant_of.get(name, (name, "raw"))
            half_width = table.loc[name, f"measured T'={t}" + HALF_WIDTH]
            ax.errorbar([table.loc[name, f"measured T'={t}"]], [y[k]],
                        xerr=[half_width] if np.isfinite(half_width) else None, marker=WEIGHT_MARKERS.get(w, "o"),
                        color=_row_color(label(v, "raw")), linestyle="none", capsize=3)
        ax.set_title(f"T'={t}")
        ax.set_xlabel("measured FID (mean ± interval; lower is better)")
    paper_columns = ["paper T'=%d" % t for t in ts]
    paper = [" / ".join(fmt(table.loc[n, c], "paper") for c in paper_columns) for n in names]
    axes[0][0].set_yticks(y, [f"{n}  [paper {p}]" for n, p in zip(names, paper)])
    axes[0][0].invert_yaxis()
    fig.suptitle(f"Table 1: measured FID per row (paper {table.attrs['dataset']} FID at T'="
                 + "/".join(str(t) for t in ts) + " in brackets)")
    fig.tight_layout()
    save_figure(fig, workspace, "fid_vs_paper", show)


@styled
def plot_training_loss(workspace, show: bool = True) -> None:
    """Per variant trained here and training seed (one line each): training loss (hybrid), L_simple on the
    training batches, and L_simple of the raw weights on the fixed held-out set (eval_mse, the plateau
    criterion's curve, with the window the criterion fits shaded); main runs solid, SWA phases dashed. Imported
    variants have no training log."""
    params = load_params(workspace)
    trained = [v for v in params.variants if v not in params.imports]
    if not trained:
        print("No training curves: every variant is imported (not trained here).")
        return
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
    titles = ("training loss (L_simple + L_vlb)", "L_simple on training batches",
              "L_simple on the fixed held-out set (eval_mse)")
    for ax, title in zip(axes, titles):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.legend()
    imported = f"; imported, without a training log: {', '.join(params.imports)}" if params.imports else ""
    fig.suptitle(f"Training curves, one line per training seed ({len(seeds(workspace))} seeds){imported}")
    fig.tight_layout()
    save_figure(fig, workspace, "training_loss", show)


@styled
def plot_loss_curves(workspace, show: bool = True) -> None:
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
            _mean_band(ax, alphas, values, workspace, label=label(v, w), **_row_style(v, w))
    axes[0].set_title("loss under weight perturbation L(theta + a d)")
    axes[1].set_title("rise over the minimum L(theta + a d) - L(theta)")
    for ax in axes:
        ax.set_xlabel("a (filter-normalised direction d)")
    axes[0].set_ylabel("loss (L_simple)")
    axes[1].legend(ncol=3)
    fig.tight_layout()
    save_figure(fig, workspace, "loss_curves_1d", show)


@styled
def plot_loss_surfaces(workspace, show: bool = True) -> None:
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
        ax.set_title(f"{name}: L(theta + a d1 + b d2)")
        ax.set_xlabel("b")
        ax.set_ylabel("a")
        ax.grid(False)
    fig.colorbar(cs, ax=list(axes[0]), label="loss (L_simple), shared scale")
    fig.suptitle(f"2-D loss surfaces around the minimum (training seed {seed}; same directions seed, same data)")
    save_figure(fig, workspace, "loss_surfaces_2d", show)


@styled
def plot_hessian(workspace, show: bool = True) -> None:
    """Hessian top eigenvalue and trace (with Hutchinson standard error) per Table 1 row."""
    table = flatness_table(workspace)
    names = list(table.index)
    variant_of = {label(v, w): v for v, w in rows(workspace)}
    colors = [_row_color(label(variant_of[n], "raw")) if n in variant_of else "grey" for n in names]
    fig, axes = _subplots(1, 2, figsize=(11, 3.8))
    x = np.arange(len(names))
    for ax, column in zip(axes, ("Hessian top eig", "Hessian trace")):
        ax.bar(x, table[column], yerr=table[column + HALF_WIDTH].fillna(0), color=colors, capsize=3)
    axes[0].set_title("Hessian top eigenvalue (power iteration; mean ± interval over seeds)")
    axes[1].set_title("Hessian trace (Hutchinson; mean ± interval over seeds)")
    for ax in axes:
        ax.set_xticks(x, names, rotation=45, ha="right")
    fig.tight_layout()
    save_figure(fig, workspace, "hessian", show)


@styled
def plot_noise_norms(workspace, show: bool = True) -> None:
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
        row[0].set_ylabel("mean ||eps_theta(x_t, t)||")
    for k in range(len(entries), nrows * ncols):
        axes[k // ncols][k % ncols].axis("off")
    axes[0][0].legend()
    fig.suptitle("Predicted-noise norm: sampling vs training (exposure bias)")
    fig.tight_layout()
    save_figure(fig, workspace, "noise_norms", show)


@styled
def plot_exposure_gap(workspace, show: bool = True) -> None:
    """The gap (sampling minus training norm) per step, every Table 1 row on one plot."""
    fig, axes = _subplots(1, 2, figsize=(13, 4.0))
    for v, w, per_seed in exposure_entries(workspace):
        t, gaps = np.asarray(per_seed[0]["t"]), np.asarray([e["gap"] for e in per_seed], dtype=float)
        _mean_band(axes[0], t, gaps, workspace, label=label(v, w), **_row_style(v, w))
        _mean_band(axes[1], t[:-1], gaps[:, :-1], workspace, label=label(v, w), **_row_style(v, w))
    for ax in axes:
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.invert_xaxis()
        ax.set_xlabel("t (sampling runs left to right)")
        ax.set_ylabel("sampling norm - training norm")
    axes[0].set_title("Exposure gap per step, every step (mean ± interval over seeds)")
    axes[1].set_title("the same without the last step (t = 0), whose spike hides the rest")
    axes[1].legend(ncol=3)
    fig.tight_layout()
    save_figure(fig, workspace, "exposure_gap", show)


@styled
def plot_rho_sweep(workspace, show: bool = True) -> None:
    """FID and MC sharpness against SAM's rho (rho = 0: plain Adam, the ADM run)."""
    table = rho_table(workspace)
    if table.empty:
        print(f"No rho sweep figure: {table.attrs['note']}.")
        return
    rhos = table.index.to_numpy(dtype=float)
    positive = rhos[rhos > 0]
    fig, axes = _subplots(1, 2, figsize=(10, 3.6))
    for ax, column in zip(axes, ("FID", "MC sharpness")):
        ax.errorbar(rhos, table[column], yerr=table[column + HALF_WIDTH].fillna(0), marker="o", color="tab:purple",
                    capsize=3)
        if len(positive):
            ax.set_xscale("symlog", linthresh=float(positive.min()))
        ax.set_xticks(rhos, [f"{r:g}" for r in rhos])
        ax.set_xlabel("rho")
        ax.set_title(f"{column} vs rho")
    axes[1].set_title(f"MC sharpness (sigma={table.attrs.get('sigma')}) vs rho")
    fig.suptitle(f"rho sweep: full-length runs, mean ± interval over training seeds (T'={table.attrs.get('respacing')})")
    fig.tight_layout()
    save_figure(fig, workspace, "rho_sweep", show)
