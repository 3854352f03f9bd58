"""Figures of the study: DataFrames in, matplotlib Figures out (saving happens in the CLI).

Every figure that shows a correlation states the sign convention: BRISQUE is lower for better
images, so a feature norm that agrees with BRISQUE has a negative r.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (workflow jobs have no display)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from featnorm.analysis.columns import GROUND_TRUTH_QUALITY
from featnorm.quality.references import REFERENCE_COLUMNS
from featnorm.status import OK

logger = logging.getLogger(__name__)

__all__ = [
    "FIGURES",
    "by_class_size",
    "class_norm_mean",
    "class_sizes",
    "forest",
    "ground_truth",
    "model_forest",
    "norm_vs_brisque",
    "references",
    "trends",
    "two_levels",
]

SIGN_NOTE = "signed r; BRISQUE lower = better, so agreement is r < 0"
# Width of the rolling window over classes in rank order, as a fraction of the classes shown
# (at least _MIN_WINDOW): wide enough to smooth single classes, narrow enough to keep the trend.
_ROLLING_FRACTION = 0.05
_MIN_WINDOW = 5
_HEXBIN_GRID = 40  # hexagons across: readable at a few thousand points and at half a million
_TREND_BINS = 10  # quantile bins of BRISQUE for the binned trend curves
_Z_NORMAL = 1.959963984540054  # two-sided 95 % normal quantile for the rolling CI band
_FIGSIZE = (6.4, 4.0)


def _style() -> None:
    sns.set_theme(style="whitegrid", context="paper")


def class_sizes(class_stats: pd.DataFrame, *, model: str) -> plt.Figure:
    """Seed Fig. 1: images per class, classes sorted by size descending, log y axis."""
    _style()
    n = np.sort(class_stats["n"].to_numpy())[::-1]
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    ax.plot(np.arange(1, len(n) + 1), n, lw=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("class rank (largest first)")
    ax.set_ylabel("images per class (log scale)")
    ax.set_title(f"Class sizes: {len(n)} classes, {int(n.sum())} images ({model})")
    fig.tight_layout()
    return fig


def class_norm_mean(class_stats: pd.DataFrame, *, model: str) -> plt.Figure:
    """Seed Fig. 2: mean feature norm per class in the order of Fig. 1, rolling mean and band.

    The band is the rolling mean +- 1.96 x (rolling std / sqrt(window)) over classes.
    """
    _style()
    cs = class_stats.sort_values(["n", "label"], ascending=[False, True])
    cs = cs[np.isfinite(cs["norm_mean"])]
    rank = np.arange(1, len(cs) + 1)
    window = max(_MIN_WINDOW, round(_ROLLING_FRACTION * len(cs)))
    mean = cs["norm_mean"].rolling(window, center=True, min_periods=max(2, window // 2))
    mu, sd, cnt = mean.mean().to_numpy(), mean.std().to_numpy(), mean.count().to_numpy()
    half = _Z_NORMAL * sd / np.sqrt(np.maximum(cnt, 1))
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    ax.scatter(rank, cs["norm_mean"], s=4, alpha=0.4, label="class mean", color="C0")
    ax.plot(rank, mu, color="C3", lw=1.5, label=f"rolling mean ({window} classes)")
    ax.fill_between(rank, mu - half, mu + half, color="C3", alpha=0.2, label="95 % band")
    ax.set_xlabel("class rank by size (largest first)")
    ax.set_ylabel("mean feature norm of the class")
    ax.set_title(f"Mean feature norm per class, classes by size ({model})")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def _r_of(correlations: pd.DataFrame, x: str, y: str) -> str:
    sel = correlations[
        (correlations["x"] == x) & (correlations["y"] == y) & (correlations["method"] == "pearson")
    ]
    if sel.empty or not np.isfinite(sel["r"].iloc[0]):
        return "r = n/a"
    row = sel.iloc[0]
    return f"r = {row['r']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def norm_vs_brisque(
    samples: pd.DataFrame, correlations: pd.DataFrame, *, x_columns: list[str], model: str
) -> plt.Figure:
    """Hexbin of each norm column (raw and standardised) against BRISQUE, Pearson r in titles."""
    _style()
    ok = samples["status"] == OK
    fig, axes = plt.subplots(1, len(x_columns), figsize=(3.6 * len(x_columns), 3.6), squeeze=False)
    for ax, x in zip(axes[0], x_columns, strict=True):
        part = samples.loc[ok, [x, "brisque"]].dropna()
        if len(part):
            hb = ax.hexbin(
                part["brisque"],
                part[x],
                gridsize=_HEXBIN_GRID,
                bins="log",
                cmap="viridis",
                mincnt=1,
            )
            fig.colorbar(hb, ax=ax, label="images (log)")
        ax.set_xlabel("BRISQUE (lower = better)")
        ax.set_ylabel(x)
        ax.set_title(f"{x}\n{_r_of(correlations, x, 'brisque')} (n={len(part)})", fontsize=8)
    fig.suptitle(f"Feature norm vs BRISQUE ({model}); {SIGN_NOTE}", fontsize=9)
    fig.tight_layout()
    return fig


def trends(samples: pd.DataFrame, *, x_columns: list[str], model: str) -> plt.Figure:
    """Binned trend: mean of each norm column (in class-free z units) per BRISQUE decile.

    Each column is centred and scaled by its own overall std so the curves share one axis;
    the error bars are 1.96 standard errors of the bin mean.
    """
    _style()
    ok = samples["status"] == OK
    part = samples.loc[ok]
    fig, ax = plt.subplots(figsize=_FIGSIZE)
    if len(part) >= _TREND_BINS:
        bins = pd.qcut(part["brisque"], _TREND_BINS, duplicates="drop")
        centre = part.groupby(bins, observed=True)["brisque"].median()
        for x in x_columns:
            v = part[x]
            v = (v - v.mean()) / v.std() if v.std() > 0 else v * np.nan
            g = v.groupby(bins, observed=True)
            se = g.std() / np.sqrt(g.count())
            ax.errorbar(
                centre.to_numpy(),
                g.mean().to_numpy(),
                yerr=_Z_NORMAL * se.to_numpy(),
                marker="o",
                ms=3,
                capsize=2,
                label=x,
            )
    ax.set_xlabel(f"BRISQUE (median of {_TREND_BINS} quantile bins; lower = better)")
    ax.set_ylabel("mean of the norm column (std units)")
    ax.set_title(f"Binned trends vs BRISQUE ({model})", fontsize=9)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def forest(correlations: pd.DataFrame, *, title: str) -> plt.Figure:
    """Forest plot: every correlation with its cluster-bootstrap interval (and the naive one).

    Rows are (model, x, y, method); the x axis is the *quality-aligned* r (positive = agrees
    with the reference), except the class-size row, which is plotted signed.
    """
    _style()
    c = correlations.reset_index(drop=True)
    aligned = c["quality_aligned_r"].where(c["quality_aligned_r"].notna(), c["r"])
    lo = c["quality_aligned_ci_low"].where(c["quality_aligned_r"].notna(), c["ci_low"])
    hi = c["quality_aligned_ci_high"].where(c["quality_aligned_r"].notna(), c["ci_high"])
    labels = [
        f"{m} | {x} ~ {y} ({meth})"
        for m, x, y, meth in zip(c["model"], c["x"], c["y"], c["method"], strict=True)
    ]
    height = max(3.0, 0.22 * len(c) + 1.2)
    fig, ax = plt.subplots(figsize=(8.5, height))
    ypos = np.arange(len(c))[::-1]
    ax.errorbar(
        aligned,
        ypos,
        xerr=[aligned - lo, hi - aligned],
        fmt="o",
        ms=3,
        capsize=2,
        color="C0",
        label="cluster bootstrap CI",
    )
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(ypos)
    ax.set_yticklabels(labels, fontsize=6)
    ax.set_xlabel(
        "quality-aligned r (positive = agrees with the quality reference; class-size row signed)",
        fontsize=8,
    )
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig


def ground_truth(samples: pd.DataFrame, *, x_columns: list[str], model: str) -> plt.Figure:
    """Demo only: each proxy (BRISQUE and the norm columns) against the ground-truth quality.

    Hexbins with Spearman rho in the title; ``true_quality`` is higher for better images.
    """
    _style()
    proxies = ["brisque"] + list(x_columns)
    ok = samples["status"] == OK
    fig, axes = plt.subplots(1, len(proxies), figsize=(3.4 * len(proxies), 3.4), squeeze=False)
    for ax, p in zip(axes[0], proxies, strict=True):
        if GROUND_TRUTH_QUALITY not in samples.columns:
            ax.set_title(f"{p}: no ground truth in this dataset", fontsize=8)
            continue
        part = samples.loc[ok, [p, GROUND_TRUTH_QUALITY]].dropna()
        rho = (
            part[p].corr(part[GROUND_TRUTH_QUALITY], method="spearman") if len(part) > 2 else np.nan
        )
        if len(part):
            ax.hexbin(
                part[GROUND_TRUTH_QUALITY],
                part[p],
                gridsize=_HEXBIN_GRID // 2,
                bins="log",
                cmap="magma",
                mincnt=1,
            )
        ax.set_xlabel("true quality (higher = better)")
        ax.set_ylabel(p)
        ax.set_title(f"{p}: Spearman rho = {rho:+.3f} (n={len(part)})", fontsize=8)
    fig.suptitle(
        f"Quality proxies vs ground truth ({model}); BRISQUE should fall, the norm rise", fontsize=9
    )
    fig.tight_layout()
    return fig


def _level_text(row: pd.DataFrame, level: str) -> str:
    """``r_<level> = +0.123 [+0.045, +0.201]`` from the decomposition row (``n/a`` when none)."""
    if row.empty or not np.isfinite(row[f"r_{level}"].iloc[0]):
        return f"r_{level} = n/a"
    r = row.iloc[0]
    return (
        f"r_{level} = {r[f'r_{level}']:+.3f} "
        f"[{r[f'r_{level}_ci_low']:+.3f}, {r[f'r_{level}_ci_high']:+.3f}]"
    )


def two_levels(
    samples: pd.DataFrame,
    decomposition: pd.DataFrame,
    *,
    model: str,
    x: str = "feature_norm",
    y: str = "brisque",
) -> plt.Figure:
    """The two levels of r(x, y): class means (left) beside the class-centred images (right).

    Left: one point per class (mean of x against mean of y; marker area grows with class
    size), with ``r_between`` from ``decomposition.csv``. Right: hexbin of x and y after
    subtracting each class's means, with ``r_within``. Signed r; against BRISQUE agreement is
    negative.
    """
    _style()
    part = samples.loc[samples["status"] == OK, ["label", x, y]].dropna()
    means = part.groupby("label")[[x, y]].mean()
    sizes = part.groupby("label").size()
    centred = part[[x, y]] - part.groupby("label")[[x, y]].transform("mean")
    row = decomposition[(decomposition["x"] == x) & (decomposition["y"] == y)]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    left.scatter(
        means[y],
        means[x],
        s=4 + 40 * sizes / max(sizes.max(), 1),
        alpha=0.5,
        color="C0",
        edgecolor="none",
    )
    left.set_xlabel(f"class mean {y}" + (" (lower = better)" if y == "brisque" else ""))
    left.set_ylabel(f"class mean {x}")
    left.set_title(
        f"between classes: {_level_text(row, 'between')}\n{len(means)} classes (area ~ size)",
        fontsize=8,
    )
    if len(centred):
        hb = right.hexbin(
            centred[y], centred[x], gridsize=_HEXBIN_GRID, bins="log", cmap="viridis", mincnt=1
        )
        fig.colorbar(hb, ax=right, label="images (log)")
    right.set_xlabel(f"{y} minus its class mean")
    right.set_ylabel(f"{x} minus its class mean")
    right.set_title(
        f"within classes: {_level_text(row, 'within')}\n{len(centred)} images", fontsize=8
    )
    share = (
        ""
        if row.empty
        else f"; {row['between_share_x'].iloc[0]:.0%} of {x}'s variance lies between classes"
    )
    fig.suptitle(f"{x} vs {y} at two levels ({model}){share}\n{SIGN_NOTE}", fontsize=9)
    fig.tight_layout()
    return fig


def by_class_size(
    table: pd.DataFrame, *, model: str, y: str = "brisque", method: str = "pearson"
) -> plt.Figure:
    """r of each norm column with ``y`` per class-size band, with cluster-bootstrap CIs.

    One marker series per norm column, dodged within each band; x axis: the bands
    (``size_low``-``size_high`` images per class) with their image and class counts; signed r.
    """
    _style()
    t = table[(table["y"] == y) & (table["method"] == method)]
    bands = t[["size_low", "size_high"]].drop_duplicates().sort_values("size_low")
    columns = list(pd.unique(t["x"]))
    fig, ax = plt.subplots(figsize=(max(6.4, 1.1 * len(bands) + 2), 4.0))
    width = 0.8 / max(len(columns), 1)
    for i, x in enumerate(columns):
        part = (
            t[t["x"] == x]
            .set_index(["size_low", "size_high"])
            .reindex(pd.MultiIndex.from_frame(bands))
        )
        pos = np.arange(len(bands)) - 0.4 + width * (i + 0.5)
        r = part["r"].to_numpy(np.float64)
        err = [r - part["ci_low"].to_numpy(np.float64), part["ci_high"].to_numpy(np.float64) - r]
        ax.errorbar(pos, r, yerr=err, fmt="o", ms=3, capsize=2, label=x)
    ax.axhline(0, color="grey", lw=0.8)
    first = (
        t[t["x"] == columns[0]].set_index("size_low")[["n", "n_classes"]]
        if columns
        else pd.DataFrame(columns=["n", "n_classes"])
    )
    ax.set_xticks(np.arange(len(bands)))
    ax.set_xticklabels(
        [
            f"{lo}-{hi}\n{int(first.loc[lo, 'n'])} img, {int(first.loc[lo, 'n_classes'])} cl."
            if lo in first.index
            else f"{lo}-{hi}"
            for lo, hi in zip(bands["size_low"], bands["size_high"], strict=True)
        ],
        fontsize=7,
    )
    ax.set_xlabel("images per class (band); images and classes in the band")
    ax.set_ylabel(f"{method} r with {y}")
    ax.set_title(f"r with {y} by class size ({model}); {SIGN_NOTE}", fontsize=9)
    ax.legend(fontsize="x-small")
    fig.tight_layout()
    return fig


def references(
    samples: pd.DataFrame, correlations: pd.DataFrame, *, x_columns: list[str], model: str
) -> plt.Figure:
    """Each norm column (columns) against each face-quality reference present (rows).

    Hexbins over the images with status ok; Pearson r with its cluster-bootstrap CI from
    ``correlations.csv`` in each title. The references are higher = better, so agreement is
    r > 0.
    """
    _style()
    refs = [c for c in REFERENCE_COLUMNS if c in samples.columns] or [REFERENCE_COLUMNS[0]]
    ok = samples["status"] == OK
    fig, axes = plt.subplots(
        len(refs), len(x_columns), figsize=(2.9 * len(x_columns), 2.6 * len(refs)), squeeze=False
    )
    for row, ref in zip(axes, refs, strict=True):
        for ax, x in zip(row, x_columns, strict=True):
            if ref not in samples.columns:
                ax.set_title(f"{ref}: not computed", fontsize=8)
                continue
            part = samples.loc[ok, [x, ref]].dropna()
            if len(part):
                ax.hexbin(part[ref], part[x], gridsize=_HEXBIN_GRID // 2, bins="log", mincnt=1)
            ax.set_xlabel(f"{ref} (higher = better)", fontsize=7)
            ax.set_ylabel(x, fontsize=7)
            ax.set_title(f"{_r_of(correlations, x, ref)} (n={len(part)})", fontsize=7)
    fig.suptitle(
        f"Feature norm vs face-quality references from the embeddings ({model}); "
        "signed Pearson r, agreement is r > 0",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def model_forest(correlations: pd.DataFrame, *, model: str) -> plt.Figure:
    """Forest plot of one model's correlations (:func:`forest`, titled with the model)."""
    return forest(correlations, title=f"All correlations of model {model}")


# figure name (featnorm.options.FIGURES) -> function drawing it, for the CLI's `plot` step. Each
# takes the tables of featnorm.options.FIGURE_INPUTS[name] in that order and ``model``, and
# ``x_columns`` when the name is in featnorm.options.FIGURES_WITH_POLICIES.
FIGURES = {
    "class_sizes": class_sizes,
    "class_norm_mean": class_norm_mean,
    "norm_vs_brisque": norm_vs_brisque,
    "trends": trends,
    "forest": model_forest,
    "two_levels": two_levels,
    "by_class_size": by_class_size,
    "ground_truth": ground_truth,
    "references": references,
}
