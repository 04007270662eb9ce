"""The paper's figures (and the extensions), one function per figure; each writes PNG and PDF.

Every function takes `ModelResults`, writes one file pair per architecture into `out_dir` and
returns the PNG paths. Figures are `matplotlib.figure.Figure` objects, never pyplot's: drawing
them leaves the caller's backend (a notebook's inline one) and open figures alone. Style settings
live in `_style`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from attn_interp.analysis.model_results import (
    BOX_RANKINGS,
    COMPARISON_BY_LABEL,
    COMPARISON_LABELS,
    ModelResults,
    arch_label,
    architectures,
    datasets,
    ranking_label,
)
from attn_interp.io_utils import atomic_write

_COLORS = {
    "random0": "#8c8c8c",
    "attention": "#1f77b4",
    "gradient": "#d62728",
    "grad_x_attention": "#9467bd",
    "minimum": "#2ca02c",
}
_BIN_WIDTH = 0.005  # Figure 3 subsampling bins (paper_notes.md §8.3)


def _style() -> dict:
    return {"font.size": 10, "axes.grid": True, "grid.alpha": 0.3, "figure.dpi": 100}


def _save(fig: Figure, out_dir: str, stem: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, stem + ".png")
    atomic_write(png, lambda f: fig.savefig(f, format="png", bbox_inches="tight", dpi=120))
    pdf = os.path.join(out_dir, stem + ".pdf")
    atomic_write(pdf, lambda f: fig.savefig(f, format="pdf", bbox_inches="tight"))
    return png


def _grid(n_panels: int, ncols: int = 2, size=(4.5, 3.4)):
    ncols = min(ncols, max(n_panels, 1))
    nrows = -(-max(n_panels, 1) // ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat


def _by_arch(models: Sequence[ModelResults]) -> dict[str, list[ModelResults]]:
    out: dict[str, list[ModelResults]] = {}
    order = datasets(models)
    for arch in architectures(models):
        ms = [m for m in models if m.arch == arch]
        out[arch] = sorted(ms, key=lambda m: order.index(m.dataset))
    return out


def _check_models(models: Sequence[ModelResults]) -> None:
    if not models:
        raise ValueError("no models to plot; pass at least one ModelResults.")


def subsample_per_bin(
    x: np.ndarray, y: np.ndarray, max_per_bin: int, *, seed: int = 0
) -> np.ndarray:
    """Indices of a display subsample: at most `max_per_bin` points per 0.005-wide x bin.

    Drawn without replacement; the point with the largest y is always kept (paper_notes.md Q9: the
    original dropped it). Returns sorted int indices into `x`.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.size == 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng(seed)
    bins = np.floor(x / _BIN_WIDTH).astype(np.int64)
    keep = []
    for b in np.unique(bins):
        idx = np.flatnonzero(bins == b)
        if idx.size > max_per_bin:
            idx = rng.choice(idx, size=max_per_bin, replace=False)
        keep.append(idx)
    keep = np.concatenate(keep)
    keep = np.union1d(keep, [int(np.argmax(y))])
    return keep.astype(np.int64)


def figure_js_vs_alpha(
    models: Sequence[ModelResults],
    out_dir: str,
    *,
    comparison: str = "attention",
    max_points_per_bin: int | None = None,
    seed: int = 0,
) -> list[str]:
    """Figure 3: ΔJS (JS after removing i* minus after removing r) against Δα = α_i* − α_r.

    One figure per architecture, one panel per dataset, n > 1 documents. Plots every point unless
    `max_points_per_bin` is given (then `subsample_per_bin`, which keeps the maximum). The y axis
    is the raw difference in JS divergence (nats, not logged; paper_notes.md Q9) and always shows
    every plotted point. comparison: "attention" (i*), "gradient" (i*_g) or "grad_x_attention" (i*_p).
    """
    _check_models(models)
    if comparison not in COMPARISON_BY_LABEL:
        raise ValueError(f"comparison={comparison!r}: use one of {tuple(COMPARISON_BY_LABEL)}.")
    sym = COMPARISON_LABELS[comparison]
    paths = []
    with matplotlib.rc_context(_style()):
        for arch, ms in _by_arch(models).items():
            fig, axes = _grid(len(ms))
            for ax, m in zip(axes, ms, strict=False):
                x = m.delta(comparison, "weight").astype(np.float64)
                y = m.delta(comparison, "js").astype(np.float64)
                idx = (
                    subsample_per_bin(x, y, max_points_per_bin, seed=seed)
                    if max_points_per_bin
                    else np.arange(x.size)
                )
                alpha = 0.6 if idx.size < 2000 else 0.15
                ax.scatter(x[idx], y[idx], s=5, alpha=alpha, color=_COLORS["attention"], lw=0)
                ax.axhline(0.0, color="black", lw=0.6)
                lo = min(-0.05, float(y[idx].min()) - 0.01) if idx.size else -0.05
                hi = max(0.45, float(y[idx].max()) + 0.01) if idx.size else 0.45
                ax.set_ylim(lo, hi)
                ax.set_xlim(min(0.0, float(x.min()) - 0.01) if x.size else 0.0, 1.0)
                ax.set_xticks(np.arange(0.0, 1.01, 0.2))
                neg = float(np.mean(y < 0)) if y.size else float("nan")
                shown = "all" if idx.size == x.size else f"{idx.size} of"
                ax.set_title(f"{m.dataset}\n{shown} {x.size} docs; ΔJS < 0: {100 * neg:.1f}%")
                ax.set_xlabel(f"Difference in zeroed attention weight (α_{sym} − α_r)")
                ax.set_ylabel("Difference in JS divergence")
            fig.suptitle(f"{arch_label(arch)}: ΔJS vs. Δα, removing {sym} vs. random r")
            fig.tight_layout()
            stem = f"fig3_js_vs_alpha_{comparison}_{arch}"
            paths.append(_save(fig, out_dir, stem))
    return paths


def figure_negative_js_hist(
    models: Sequence[ModelResults], out_dir: str, *, bins: int = 20
) -> list[str]:
    """Figure 4: histogram (counts) of Δα over the n > 1 documents with ΔJS < 0.

    One figure per architecture, one panel per dataset; each panel title prints the share of
    negative ΔJS ("k of N").
    """
    _check_models(models)
    paths = []
    with matplotlib.rc_context(_style()):
        for arch, ms in _by_arch(models).items():
            fig, axes = _grid(len(ms))
            for ax, m in zip(axes, ms, strict=False):
                x = m.delta("attention", "weight").astype(np.float64)
                y = m.delta("attention", "js").astype(np.float64)
                neg = y < 0
                ax.hist(x[neg], bins=np.linspace(0.0, 1.0, bins + 1), color=_COLORS["attention"])
                ax.set_xticks(np.arange(0.0, 1.01, 0.2))
                share = 100.0 * neg.mean() if neg.size else float("nan")
                ax.set_title(f"{m.dataset}\n{int(neg.sum())} of {neg.size} ΔJS < 0 ({share:.1f}%)")
                ax.set_xlabel("Difference in zeroed attention weight (α_i* − α_r)")
                ax.set_ylabel("documents")
            fig.suptitle(f"{arch_label(arch)}: Δα where ΔJS < 0")
            fig.tight_layout()
            paths.append(_save(fig, out_dir, f"fig4_negative_js_hist_{arch}"))
    return paths


def _removal_values(m: ModelResults, name: str, quantity: str) -> np.ndarray | None:
    """Fractions (or masses) over flipped n > 1 documents; None when not computed."""
    if name == "minimum":
        v = m.min_flip_column("frac") if quantity == "frac" else None
        k = m.min_flip_column("k")
    else:
        v, k = m.ranking_column(name, quantity), m.ranking_column(name, "k")
    return None if v is None else np.asarray(v, np.float64)[k > 0]


def _never_share(m: ModelResults, name: str) -> float | None:
    k = m.min_flip_column("k") if name == "minimum" else m.ranking_column(name, "k")
    if k is None:
        return None
    return float(np.mean(k == -1)) if k.size else None


def figure_removal_boxplots(
    models: Sequence[ModelResults],
    out_dir: str,
    *,
    quantity: str = "frac",
    rankings: Sequence[str] = (*BOX_RANKINGS, "minimum"),
) -> list[str]:
    """Figures 5/6: boxplots of the fraction (or attention mass) removed before the first flip.

    One figure per architecture: dataset groups on the x axis, one box per ranking (Random #0,
    Attention, Gradient, Attn * Grad and the exact minimum flip set; the minimum is a count
    minimum, so it is shown for quantity="frac" only), over n > 1 documents that flip. A side
    panel shows the share of documents that never flip under each ranking.
    quantity: "frac" (k / n) or "probmass" (sum of the original weights removed).
    """
    _check_models(models)
    if quantity not in ("frac", "probmass"):
        raise ValueError(f"quantity={quantity!r}: use 'frac' or 'probmass'.")
    names = [r for r in rankings if not (r == "minimum" and quantity != "frac")]
    ylabel = {
        "frac": "Fraction of items removed",
        "probmass": "Attention probability mass removed",
    }[quantity]
    paths = []
    with matplotlib.rc_context(_style()):
        for arch, ms in _by_arch(models).items():
            width = 0.8 / len(names)
            fig = Figure(figsize=(max(8.0, 3.0 + 2.2 * len(ms)), 4.2))
            ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1.3]})
            handles = {}
            for g, m in enumerate(ms):
                for j, name in enumerate(names):
                    pos = g + (j - (len(names) - 1) / 2) * width
                    v = _removal_values(m, name, quantity)
                    if v is not None and v.size:
                        bp = ax.boxplot(
                            [v],
                            positions=[pos],
                            widths=width * 0.85,
                            patch_artist=True,
                            showfliers=True,
                            flierprops={"markersize": 2},
                        )
                        bp["boxes"][0].set_facecolor(_COLORS.get(name, "#cccccc"))
                        bp["medians"][0].set_color("black")
                        bp["medians"][0].set_gid(f"median {m.dataset} {name}")  # named in SVGs
                        handles[name] = bp["boxes"][0]
                    share = _never_share(m, name)
                    if share is not None:
                        ax2.bar(pos, 100 * share, width * 0.85, color=_COLORS.get(name, "#ccc"))
            for a in (ax, ax2):
                a.set_xlim(-0.5, len(ms) - 0.5)
                a.set_xticks(range(len(ms)))
                a.set_xticklabels([m.dataset for m in ms])
            ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel(ylabel)
            ax2.set_ylabel("% never flipped")
            ax2.set_ylim(0, 100)
            ax2.set_title("never flipped")
            what = "Fractions of items" if quantity == "frac" else "Probability masses"
            ax.set_title(f"{what} removed before the first decision flip:\n{arch_label(arch)}")
            if handles:
                fig.legend(
                    list(handles.values()),
                    [ranking_label(n) for n in handles],
                    fontsize=8,
                    loc="lower center",
                    ncol=len(handles),
                )
            fig.tight_layout(rect=(0, 0.08, 1, 1))
            stem = f"fig{5 if quantity == 'frac' else 6}_removal_{quantity}_{arch}"
            paths.append(_save(fig, out_dir, stem))
    return paths


def figure_optimality_gap(
    models: Sequence[ModelResults],
    out_dir: str,
    *,
    rankings: Sequence[str] = BOX_RANKINGS,
) -> list[str]:
    """Extension: distribution of each ranking's optimality gap (k − k_min) / n per dataset.

    One figure per architecture: boxplots over n > 1 documents where both the ranking and the
    exact minimum flip, with the share of exactly optimal documents in the legend.
    """
    _check_models(models)
    paths = []
    with matplotlib.rc_context(_style()):
        for arch, ms in _by_arch(models).items():
            fig, axes = _grid(len(ms), ncols=2, size=(5.0, 3.4))
            for ax, m in zip(axes, ms, strict=False):
                data, labels, used = [], [], []
                for name in rankings:
                    v = m.ranking_column(name, "gap_frac")
                    if v is None:
                        continue
                    v = np.asarray(v, np.float64)
                    v = v[~np.isnan(v)]
                    opt = 100.0 * float(np.mean(v == 0)) if v.size else float("nan")
                    data.append(v)
                    used.append(name)
                    labels.append(f"{ranking_label(name)}\n{opt:.0f}% opt.")
                if data:
                    bp = ax.boxplot(
                        data, patch_artist=True, flierprops={"markersize": 2}, widths=0.6
                    )
                    for box, med, name in zip(bp["boxes"], bp["medians"], used, strict=True):
                        box.set_facecolor(_COLORS.get(name, "#cccccc"))
                        med.set_color("black")
                    ax.set_xticks(range(1, len(labels) + 1))
                    ax.set_xticklabels(labels, fontsize=7)
                ax.set_ylabel("(k − k_min) / n")
                ax.set_title(m.dataset)
            fig.suptitle(f"{arch_label(arch)}: optimality gap per ranking")
            fig.tight_layout()
            paths.append(_save(fig, out_dir, f"optimality_gap_{arch}"))
    return paths
