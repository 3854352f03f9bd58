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
_PANEL_SIZE = (4.6, 3.6)


def edc_curves(table: pd.DataFrame, curves: pd.DataFrame, *, model: str) -> plt.Figure:
    """FNMR against the discarded fraction, one panel per (split, fmr), one curve per proxy.

    The legend gives each proxy's pAUC at the panel's fmr and the smallest discard limit;
    ``random`` and ``ideal`` are dashed and dotted.
    """
    sns.set_theme(style="whitegrid", context="paper")
    panels = table[["split", "fmr"]].drop_duplicates().itertuples(index=False)
    panels = list(panels)
    if not panels:
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
    limit = float(table["discard_limit"].min())
    fig, axes = plt.subplots(
        1, len(panels), figsize=(_PANEL_SIZE[0] * len(panels), _PANEL_SIZE[1]), squeeze=False
    )
    for ax, (split, fmr) in zip(axes[0], panels, strict=True):
        rows = table[
            (table["split"] == split) & (table["fmr"] == fmr) & (table["discard_limit"] == limit)
        ].set_index("quality")
        part = curves[(curves["split"] == split) & (curves["fmr"] == fmr)]
        for i, (quality, c) in enumerate(part.groupby("quality", sort=False)):
            style = _REFERENCE_STYLE.get(quality, dict(color=f"C{i % 10}", lw=1.2))
            pauc = rows.loc[quality, "pauc"] if quality in rows.index else np.nan
            ax.plot(c["discard_fraction"], c["fnmr"], label=f"{quality} (pAUC {pauc:.4f})", **style)
        ax.axvline(limit, color="grey", lw=0.6)
        n_gen = int(rows["n_genuine"].iloc[0]) if len(rows) else 0
        thr = rows["threshold"].iloc[0] if len(rows) else np.nan
        ax.set_title(f"{split} pairs, FMR {fmr:g} (t = {thr:.3f}, {n_gen} genuine)", fontsize=8)
        ax.set_xlabel("fraction of genuine pairs discarded (lowest quality first)")
        ax.set_ylabel("FNMR of the remaining pairs")
        ax.legend(fontsize=5.5, title=f"pAUC over [0, {limit:g}]", title_fontsize=6)
    fig.suptitle(
        f"Error-versus-discard characteristic ({model}); lower is better, BRISQUE negated",
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
    (lower = better quality utility), plus the paired difference to the raw norm.
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
