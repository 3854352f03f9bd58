"""``correlations.csv``: every correlation of one model, and the comparison across models.

Pure functions (DataFrames in, DataFrames out); reading and writing happens in
``featnorm.cli.analysis``.

Sign convention: every coefficient is signed. BRISQUE is lower for better images and the feature
norm is meant to be higher for better images, so a norm that agrees with BRISQUE has a *negative*
r. Each correlation table adds ``quality_aligned_r`` (and its interval) with the sign flipped for
lower-is-better references, so agreement always reads as positive there.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from featnorm.analysis import stats
from featnorm.analysis.columns import (
    BRISQUE_GIVEN_CLASS_SIZE,
    CLASS_SIZE_EFFECT,
    NORM_COLUMN,
    RowKey,
    row_keys,
    table_rows,
    with_quality_aligned,
)
from featnorm.analysis.design import Resampling, resampling
from featnorm.data.splits import training_images

logger = logging.getLogger(__name__)

__all__ = ["compare_models", "correlation_table"]


def _row(model: str, key: RowKey, res: stats.CorrelationResult) -> dict:
    """One row of ``correlations.csv``: the key, the result, the quality-aligned r and
    ``lower_is_better`` of the key's reference."""
    row = {"model": model, "x": key.x, "y": key.y.label, "method": key.method, **res.as_dict()}
    with_quality_aligned(row, key.y.lower_is_better)
    row["lower_is_better"] = key.y.lower_is_better
    return row


def _class_size_effect(
    samples: pd.DataFrame, weights: np.ndarray | None, confidence: float
) -> stats.CorrelationResult:
    """Spearman correlation over classes of class size and class mean norm (signed).

    Classes are the units (each class weighs once); class size and class mean norm over the
    training images (held-out images would lower the mean of small classes).
    """
    has_norm = (
        np.isfinite(samples[NORM_COLUMN].to_numpy(np.float64)) & training_images(samples).to_numpy()
    )
    per = (
        samples[has_norm]
        .groupby("label")
        .agg(size=("class_size", "first"), mean=(NORM_COLUMN, "mean"))
    )
    per_codes = pd.Index(np.sort(samples["label"].unique())).get_indexer(per.index)
    return stats.correlate(
        per["size"].to_numpy(np.float64),
        per["mean"].to_numpy(np.float64),
        per_codes,
        method="spearman",
        weights=weights,
        confidence=confidence,
    )


def correlation_table(
    samples: pd.DataFrame,
    *,
    model: str,
    x_columns: list[str],
    methods: list[str],
    replicates: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Every correlation of the study for one model, with cluster-bootstrap intervals.

    Rows: each x in ``x_columns`` against each quality reference present (``brisque``, lower
    is better; ``true_quality`` on the demo, higher is better; see
    :data:`featnorm.analysis.columns.QUALITY_REFERENCES`) and each method; then
    ``method = "partial_pearson"`` of each x with BRISQUE given ``log(class_size)``
    (``y = "brisque | log class_size"``); then the class-size effect, Spearman over classes of
    (``class_size``, class mean norm) (``x = "class_size"``, ``y = "class_norm_mean"``, n =
    classes, resampling classes).

    Only rows with status ok enter (and a finite x); one weight matrix (seeded by ``seed``)
    is shared by all rows so intervals are comparable.

    Returns
    -------
    DataFrame
        Columns ``model, x, y, method, n, r, ci_low, ci_high, p_value`` (the contract) and
        ``n_classes, ci_method, naive_ci_low, naive_ci_high, p_value_wald, p_value_iid,
        replicates, flag, quality_aligned_r, quality_aligned_ci_low, quality_aligned_ci_high,
        lower_is_better, p_holm``. ``p_value`` is the cluster-bootstrap p (never below
        ``2 / (1 + replicates)``), ``p_value_wald`` its normal approximation, ``p_holm`` the
        Holm adjustment of ``p_value`` over every row of the table (the model's family).
        r is signed: agreement with BRISQUE is negative; ``quality_aligned_r`` is positive
        when the norm agrees with the reference. ``quality_aligned_*`` is NaN for the
        class-size row (no quality reference).
    """
    for m in methods:
        stats.check_method(m)
    started = time.perf_counter()
    design = resampling(samples, replicates=replicates, seed=seed)
    codes = design.codes[design.ok]

    def pairwise(key: RowKey, xv: np.ndarray, yv: np.ndarray) -> dict:
        res = stats.correlate(
            xv, yv, codes, method=key.method, weights=design.weights, confidence=confidence
        )
        return _row(model, key, res)

    rows = table_rows(samples, design.ok, row_keys(design.references, x_columns, methods), pairwise)
    rows += _partial_rows(samples, design, model, x_columns, confidence)
    res = _class_size_effect(samples, design.weights, confidence)
    rows.append(_row(model, CLASS_SIZE_EFFECT, res))
    return _correlations(rows, model, replicates, started)


def _partial_rows(
    samples: pd.DataFrame, design: Resampling, model: str, x_columns: list[str], confidence: float
) -> list[dict]:
    """Partial Pearson r of each x with BRISQUE given log(class size), on the ok rows."""
    codes = design.codes[design.ok]
    logn = np.log(samples["class_size"].to_numpy(np.float64))[design.ok]

    def partial(key: RowKey, xv: np.ndarray, yv: np.ndarray) -> dict:
        res = stats.partial_correlation(
            xv, yv, logn, codes, weights=design.weights, confidence=confidence
        )
        return _row(model, key, res)

    keys = row_keys([BRISQUE_GIVEN_CLASS_SIZE], x_columns, ["partial_pearson"])
    return table_rows(samples, design.ok, keys, partial)


def _correlations(rows: list[dict], model: str, replicates: int, started: float) -> pd.DataFrame:
    """The rows as a table with ``p_holm``, the Holm adjustment over every row that has a
    bootstrap p (the model's family); logged with the time since ``started``."""
    table = pd.DataFrame(rows)
    table["p_holm"] = stats.holm(table["p_value"].to_numpy(np.float64))
    logger.info(
        "%d correlations for model %s (%d replicates) in %.1f s",
        len(table),
        model,
        replicates,
        time.perf_counter() - started,
    )
    return table


def compare_models(correlations: pd.DataFrame) -> pd.DataFrame:
    """All models' correlations in one long table, sorted for side-by-side reading.

    Adds ``r_minus_first``: each r minus the first model's r for the same (x, y, method).
    """
    if correlations.empty:
        return correlations.copy()
    key = ["x", "y", "method"]
    first_model = correlations["model"].iloc[0]
    first = correlations[correlations["model"] == first_model].set_index(key)["r"]
    out = correlations.copy()
    idx = pd.MultiIndex.from_frame(out[key])
    out["r_minus_first"] = out["r"].to_numpy() - first.reindex(idx).to_numpy()
    return out.sort_values(key + ["model"], kind="stable").reset_index(drop=True)
