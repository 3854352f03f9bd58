"""Figures of the error-versus-discard characteristic: DataFrames in, matplotlib Figures out.

Qualities are oriented higher = better (BRISQUE negated) before discarding; lower curves and
lower pAUC are better. ``random`` is the expectation under a random discard order, ``ideal``
discards the false non-matches first.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from featnorm.evaluation.edc import IDEAL, RANDOM

__all__ = ["add_pauc_panel", "edc_curves", "pauc_comparison"]

_REFERENCE_STYLE = {
    RANDOM: dict(color="grey", ls="--", lw=1.2),
    IDEAL: dict(color="black", ls=":", lw=1.2),
}
_PANEL_SIZE = (3.4, 2.5)  # inches per (split, fmr) panel: two columns fit a page width
_LEGEND_WIDTH = 1.9  # inches right of the panels for the shared legend


def _no_edc_figure(model: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=_PANEL_SIZE)
    ax.text(
        0.5,
        0.5,
        "no EDC: no split has both genuine and impostor pairs",
        ha="center",
        va="center",
        fontsize=8,
    )
    ax.set_axis_off()
    ax.set_title(f"Error-versus-discard characteristic ({model})", fontsize=9)
    return fig


def _edc_panel(ax: plt.Axes, table: pd.DataFrame, curves: pd.DataFrame, split: str, fmr: float):
    """The curves of one (split, fmr), a line at each discard limit, a title with the
    threshold and the genuine pairs; the proxies' colours follow the order of ``curves``."""
    rows = table[(table["split"] == split) & (table["fmr"] == fmr)]
    part = curves[(curves["split"] == split) & (curves["fmr"] == fmr)]
    for i, quality in enumerate(pd.unique(curves["quality"])):
        c = part[part["quality"] == quality]
        style = _REFERENCE_STYLE.get(quality, dict(color=f"C{i % 10}", lw=1.1))
        ax.plot(c["discard_fraction"], c["fnmr"], label=quality, **style)
    for limit in pd.unique(table["discard_limit"]):
        ax.axvline(limit, color="grey", lw=0.5, ls="-")
    n_gen = int(rows["n_genuine"].iloc[0]) if len(rows) else 0
    thr = rows["threshold"].iloc[0] if len(rows) else np.nan
    ax.set_title(f"{split} pairs, FMR {fmr:g}: t = {thr:.3f}, {n_gen} genuine", fontsize=8)
    ax.tick_params(labelsize=7)


def edc_curves(table: pd.DataFrame, curves: pd.DataFrame, *, model: str) -> plt.Figure:
    """FNMR against the discarded fraction: a grid with one row per split and one column per
    FMR, one curve per quality proxy, one legend outside the panels.

    ``random`` and ``ideal`` are dashed and dotted; grey vertical lines mark the discard limits
    of the pAUC. The pAUC, its interval and the share of the random-to-ideal gap each proxy
    closes are in ``edc.csv`` and the summary's tables.
    """
    sns.set_theme(style="whitegrid", context="paper")
    splits = list(pd.unique(table["split"]))
    fmrs = sorted(pd.unique(table["fmr"]))
    if not splits:
        return _no_edc_figure(model)
    fig, axes = plt.subplots(
        len(splits),
        len(fmrs),
        figsize=(_PANEL_SIZE[0] * len(fmrs) + _LEGEND_WIDTH, _PANEL_SIZE[1] * len(splits) + 0.6),
        squeeze=False,
        sharex=True,
    )
    for r, split in enumerate(splits):
        for c, fmr in enumerate(fmrs):
            _edc_panel(axes[r, c], table, curves, split, fmr)
            if c == 0:
                axes[r, c].set_ylabel("FNMR of the pairs kept", fontsize=8)
            if r == len(splits) - 1:
                axes[r, c].set_xlabel("fraction of genuine pairs discarded", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=7,
        title="quality proxy\n(lowest discarded first)",
        title_fontsize=7,
        frameon=False,
    )
    fig.suptitle(
        f"Error-versus-discard characteristic ({model}): lower is better; BRISQUE negated; "
        "grey lines: the pAUC's discard limits",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _pauc_rows(edc_table: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, split, quality, fmr, limit), references last within each block."""
    c = edc_table.copy()
    c["is_reference"] = c["quality"].isin([RANDOM, IDEAL])
    return c.sort_values(
        ["model", "split", "fmr", "discard_limit", "is_reference"], kind="stable"
    ).reset_index(drop=True)


def pauc_comparison(edc_table: pd.DataFrame) -> pd.DataFrame:
    """All models' pAUC rows in the comparison table's long shape.

    ``x`` = the quality proxy, ``y`` = ``FNMR pAUC``, ``method`` = ``edc fmr=<fmr>
    limit=<limit> split=<split>``, ``n`` = genuine pairs, ``n_classes`` = identities, and the
    pAUC with its cluster-bootstrap interval in ``pauc``, ``pauc_ci_low``, ``pauc_ci_high``
    (lower = better quality utility), the share of the random-to-ideal gap it closes
    (``pauc_gap_closed``) and the paired difference to the raw norm.
    """
    c = _pauc_rows(edc_table)
    return pd.DataFrame(
        {
            "model": c["model"],
            "x": c["quality"],
            "y": "FNMR pAUC",
            "method": [
                f"edc fmr={f:g} limit={lim:g} split={s}"
                for f, lim, s in zip(c["fmr"], c["discard_limit"], c["split"], strict=True)
            ],
            "n": c["n_genuine"],
            "n_classes": c["n_identities"],
            "pauc": c["pauc"],
            "pauc_ci_low": c["ci_low"],
            "pauc_ci_high": c["ci_high"],
            "pauc_gap_closed": c["gap_closed"],
            "pauc_delta_vs_feature_norm": c["delta_vs_feature_norm"],
            "pauc_delta_ci_low": c["delta_ci_low"],
            "pauc_delta_ci_high": c["delta_ci_high"],
        }
    )


def add_pauc_panel(fig: plt.Figure, edc_table: pd.DataFrame) -> plt.Figure:
    """Put a pAUC forest panel (split ``all``, every fmr and limit) beside a figure's axes.

    The figure's existing axes keep the left column; the new panel takes the right one.
    """
    rows = _pauc_rows(edc_table[edc_table["split"] == "all"])
    old_axes = fig.axes
    width, height = fig.get_size_inches()
    fig.set_size_inches(width + 6.0, max(height, 0.2 * len(rows) + 1.5))
    grid = fig.add_gridspec(1, 2, width_ratios=[width, 6.0])
    for ax in old_axes:
        ax.set_subplotspec(grid[0])
    ax = fig.add_subplot(grid[1])
    y = np.arange(len(rows))[::-1]
    reference = rows["quality"].isin([RANDOM, IDEAL]).to_numpy()
    for mask, colour, label in (
        (~reference, "C1", "quality proxy"),
        (reference, "grey", "random / ideal"),
    ):
        part = rows[mask]
        ax.errorbar(
            part["pauc"],
            y[mask],
            xerr=[part["pauc"] - part["ci_low"], part["ci_high"] - part["pauc"]],
            fmt="o",
            ms=3,
            color=colour,
            capsize=2,
            label=label,
        )
    ax.legend(fontsize="x-small", loc="lower right")
    ax.set_yticks(y)
    ax.set_yticklabels(
        [
            f"{m} | {q} (FMR {f:g}, f<={lim:g})"
            for m, q, f, lim in zip(
                rows["model"], rows["quality"], rows["fmr"], rows["discard_limit"], strict=True
            )
        ],
        fontsize=6,
    )
    ax.set_xlabel("EDC pAUC, all pairs (lower = better quality utility)", fontsize=8)
    ax.set_title("Quality utility: pAUC with cluster-bootstrap CI", fontsize=9)
    fig.tight_layout()
    return fig
