"""The training-length experiment: how the class-size effect and each proxy's agreement with
image quality change as the demo model trains longer.

Input is what the workflow already writes for each trained model: its ``correlations.csv`` and
its ``training_curve.csv``. Nothing is recomputed here; the table gathers rows and the figure
draws them against the number of epochs, with the cluster-bootstrap intervals of the analysis.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (workflow jobs have no display)
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from featnorm.analysis import columns
from featnorm.analysis.columns import BRISQUE_COLUMN, GROUND_TRUTH_QUALITY

__all__ = ["CLASS_SIZE_EFFECT", "collect", "plot"]

logger = logging.getLogger(__name__)

#: (x, y) of the class-size effect row of correlations.csv: Spearman over classes of
#: (training images of the class, class mean norm).
CLASS_SIZE_EFFECT = (columns.CLASS_SIZE_EFFECT.x, columns.CLASS_SIZE_EFFECT.y.label)
_REFERENCES = (GROUND_TRUTH_QUALITY, BRISQUE_COLUMN)
TABLE_COLUMNS = [
    "model",
    "epochs",
    "train_accuracy",
    "final_loss",
    "x",
    "y",
    "method",
    "n",
    "r",
    "ci_low",
    "ci_high",
    "quality_aligned_r",
    "quality_aligned_ci_low",
    "quality_aligned_ci_high",
]


def collect(
    correlations: dict[str, pd.DataFrame],
    curves: dict[str, pd.DataFrame],
    epochs: dict[str, int],
    *,
    method: str,
) -> pd.DataFrame:
    """One row per (model, quantity), models ordered by epochs.

    Parameters
    ----------
    correlations : model -> its correlations.csv (the analysis contract).
    curves : model -> its training_curve.csv (``epoch``, ``loss``, ``train_accuracy``, ...).
    epochs : model -> epochs it was trained for.
    method : correlation method of the proxy rows (the class-size row is always Spearman).

    Returns
    -------
    DataFrame with :data:`TABLE_COLUMNS`: the class-size effect row and, for every norm column
    (``x``) and each quality reference present (``true_quality``, higher = better; ``brisque``,
    lower = better, so agreement is r < 0), the ``method`` row. ``r`` is signed;
    ``quality_aligned_r`` is positive when the proxy agrees with the reference.
    """
    missing = set(correlations) ^ set(curves) | set(correlations) ^ set(epochs)
    if missing:
        raise ValueError(f"models {sorted(missing)} lack a correlations table, a curve or epochs")
    parts = []
    for model, corr in correlations.items():
        effect = (corr["x"] == CLASS_SIZE_EFFECT[0]) & (corr["y"] == CLASS_SIZE_EFFECT[1])
        proxy = corr["y"].isin(_REFERENCES) & (corr["method"] == method)
        if not proxy.any():
            raise ValueError(
                f"model {model}: correlations.csv has no {method} rows against "
                f"{' or '.join(_REFERENCES)}; is {method} in analysis.methods?"
            )
        rows = corr[effect | proxy].copy()
        last = curves[model].sort_values("epoch").iloc[-1]
        rows["epochs"] = int(epochs[model])
        rows["train_accuracy"] = float(last["train_accuracy"])
        rows["final_loss"] = float(last["loss"])
        parts.append(rows)
    table = pd.concat(parts, ignore_index=True)
    for col in TABLE_COLUMNS:
        if col not in table.columns:
            table[col] = np.nan
    table = table[TABLE_COLUMNS].sort_values(["epochs", "model"], kind="stable")
    return table.reset_index(drop=True)


def _errorbar(ax, part: pd.DataFrame, column: str, label: str, offset: float) -> None:
    lo, hi = part[f"{column.removesuffix('r')}ci_low"], part[f"{column.removesuffix('r')}ci_high"]
    y = part[column].to_numpy(float)
    x = part["epochs"].to_numpy(float) * offset
    ax.errorbar(
        x,
        y,
        yerr=[y - lo.to_numpy(float), hi.to_numpy(float) - y],
        marker="o",
        capsize=3,
        label=label,
    )


def plot(table: pd.DataFrame, *, confidence: float) -> plt.Figure:
    """Class-size effect, agreement with ground truth and with BRISQUE, against epochs.

    Left: Spearman over classes of (class size, class mean norm) with its CI, and the final
    training accuracy. Middle and right: each norm proxy's quality-aligned r (positive = agrees;
    for BRISQUE this is -r, since BRISQUE is lower for better images) with its CI.
    """
    panels = [ref for ref in _REFERENCES if (table["y"] == ref).any()]
    fig, axes = plt.subplots(
        1, 1 + len(panels), figsize=(4.2 * (1 + len(panels)), 3.8), squeeze=False
    )
    axes = axes[0]
    level = f"{confidence:.0%} CI, cluster bootstrap over classes"
    effect = table[(table["x"] == CLASS_SIZE_EFFECT[0]) & (table["y"] == CLASS_SIZE_EFFECT[1])]
    _errorbar(axes[0], effect, "r", "Spearman(class size, class mean norm)", 1.0)
    accuracy = effect.drop_duplicates("epochs")
    axes[0].plot(
        accuracy["epochs"],
        accuracy["train_accuracy"],
        "s--",
        color="grey",
        label="training accuracy",
    )
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].set_title("class-size effect", fontsize=10)
    axes[0].set_ylabel(f"Spearman r over classes ({level})", fontsize=8)
    proxies = list(pd.unique(table.loc[table["y"].isin(panels), "x"]))
    # spread the proxies a little along the log axis so their error bars do not overlap
    offsets = np.exp(np.linspace(-0.06, 0.06, max(1, len(proxies))))
    for ax, ref in zip(axes[1:], panels, strict=True):
        for proxy, offset in zip(proxies, offsets, strict=True):
            part = table[(table["y"] == ref) & (table["x"] == proxy)]
            _errorbar(ax, part, "quality_aligned_r", proxy, offset)
        ax.axhline(0, color="black", linewidth=0.8)
        method = table.loc[table["y"] == ref, "method"].iloc[0]
        sign = " (= -r: BRISQUE lower = better)" if ref == BRISQUE_COLUMN else ""
        ax.set_title(f"agreement with {ref}", fontsize=10)
        ax.set_ylabel(f"quality-aligned {method} r{sign}", fontsize=8)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ticks = sorted(table["epochs"].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.set_xlabel("training epochs")
        ax.legend(fontsize=7)
    fig.suptitle(
        f"Demo model trained for {', '.join(map(str, ticks))} epochs ({level})", fontsize=10
    )
    fig.tight_layout()
    return fig
