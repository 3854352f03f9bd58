"""The tables that test the seed's claim, one model at a time: ``differences.csv``,
``decomposition.csv`` and ``by_class_size.csv``.

Pure functions (``samples.parquet`` as a DataFrame in, a DataFrame out). Only rows with status
``ok`` enter. The differences and the within/between split draw their cluster-bootstrap weights
from the same :func:`featnorm.analysis.design.resampling` as ``correlation_table`` (one
generator seeded by ``analysis.seed``), so with the same seed they share its replicate draws; the class-size bands resample within each
band.

Sign convention: every coefficient and difference is signed. BRISQUE is lower for better images,
so agreement with BRISQUE is a negative r, and a negative ``delta`` against BRISQUE means the
standardised norm agrees *more* with BRISQUE than the raw norm. ``quality_aligned_*`` columns
flip the sign for lower-is-better references, so that there agreement (or more agreement) reads
positive.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from featnorm.analysis import bootstrap, contrasts, stats
from featnorm.analysis.columns import (
    NORM_COLUMN,
    RowKey,
    row_keys,
    table_rows,
    with_quality_aligned,
)
from featnorm.analysis.design import resampling

logger = logging.getLogger(__name__)

PEARSON = "pearson"  # the within/between split is of the Pearson r

__all__ = ["by_class_size_table", "decomposition_table", "differences_table"]

# differences.csv: the contract's columns, then the coefficients, the aligned delta and the flag
_DIFFERENCES_COLUMNS = [
    "model",
    "x",
    "reference",
    "y",
    "method",
    "n",
    "n_classes",
    "delta",
    "ci_low",
    "ci_high",
    "p_value",
    "replicates",
    "r_x",
    "r_reference",
    "quality_aligned_delta",
    "quality_aligned_ci_low",
    "quality_aligned_ci_high",
    "lower_is_better",
    "flag",
]

# by_class_size.csv: the contract's columns, then p, the aligned r and the flag
_BY_CLASS_SIZE_COLUMNS = [
    "model",
    "x",
    "y",
    "method",
    "size_low",
    "size_high",
    "n",
    "n_classes",
    "r",
    "ci_low",
    "ci_high",
    "p_value",
    "quality_aligned_r",
    "quality_aligned_ci_low",
    "quality_aligned_ci_high",
    "lower_is_better",
    "flag",
]


def _finish(
    rows: list[dict], what: str, model: str, started: float, columns: list[str] | None = None
) -> pd.DataFrame:
    """The rows as a table, with one log line of how many and how long."""
    table = pd.DataFrame(rows, columns=columns)
    logger.info(
        "%d %s for model %s in %.1f s", len(table), what, model, time.perf_counter() - started
    )
    return table


def differences_table(
    samples: pd.DataFrame,
    *,
    model: str,
    x_columns: list[str],
    methods: list[str],
    replicates: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Paired ``delta = r(x, y) - r(feature_norm, y)`` for every standardised norm column.

    One row per (x, reference = ``feature_norm``, y, method), y each quality reference present
    (``brisque``; ``true_quality`` on the demo). Both coefficients use the rows where x, the
    raw norm and y are all finite, and the same replicate draws (a paired cluster bootstrap).

    Returns
    -------
    DataFrame
        ``model, x, reference, y, method, n, n_classes, delta, ci_low, ci_high, p_value,
        replicates`` (the contract), then ``r_x, r_reference, quality_aligned_delta,
        quality_aligned_ci_low, quality_aligned_ci_high, lower_is_better, flag``. ``p_value``:
        two-sided bootstrap p of delta = 0, never below ``2 / (1 + replicates)``.
        ``quality_aligned_delta > 0``: standardising brought the norm closer to the reference.
    """
    started = time.perf_counter()
    design = resampling(samples, replicates=replicates, seed=seed)
    codes = design.codes[design.ok]
    reference = samples[NORM_COLUMN].to_numpy(np.float64)[design.ok]
    # r(feature_norm, y) per method and row set, shared by the x columns of one y
    caches: dict[str, dict] = {}

    def difference(key: RowKey, xv: np.ndarray, yv: np.ndarray) -> dict:
        res = contrasts.paired_difference(
            xv,
            reference,
            yv,
            codes,
            method=key.method,
            weights=design.weights,
            confidence=confidence,
            reference_cache=caches.setdefault(key.y.column, {}),
        )
        row = {"model": model, "x": key.x, "reference": NORM_COLUMN, "y": key.y.label}
        row.update(method=key.method, **res.as_dict())
        with_quality_aligned(row, key.y.lower_is_better, "delta")
        row["lower_is_better"] = key.y.lower_is_better
        return row

    keys = row_keys(design.references, x_columns, methods, skip_x=NORM_COLUMN)
    rows = table_rows(samples, design.ok, keys, difference)
    return _finish(rows, "paired differences", model, started, _DIFFERENCES_COLUMNS)


def decomposition_table(
    samples: pd.DataFrame,
    *,
    model: str,
    x_columns: list[str],
    replicates: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Within/between split of the Pearson r of every norm column with every quality reference.

    Returns
    -------
    DataFrame
        One row per (x, y): ``model, x, y, n, n_classes, r_total, r_total_ci_low,
        r_total_ci_high, r_within, r_within_ci_low, r_within_ci_high, r_between,
        r_between_ci_low, r_between_ci_high, between_share_x, between_share_y, replicates, flag,
        lower_is_better``. ``r_within``: Pearson of class-centred x and y (pooled within
        classes); ``r_between``: Pearson of class means, one unweighted point per class;
        ``between_share_*``: between-class sum of squares over total. Signed: agreement with
        BRISQUE is negative.
    """
    started = time.perf_counter()
    design = resampling(samples, replicates=replicates, seed=seed)
    codes = design.codes[design.ok]

    def split(key: RowKey, xv: np.ndarray, yv: np.ndarray) -> dict:
        res = contrasts.within_between(xv, yv, codes, weights=design.weights, confidence=confidence)
        row = {"model": model, "x": key.x, "y": key.y.label, **res.as_dict()}
        row["lower_is_better"] = key.y.lower_is_better
        return row

    keys = row_keys(design.references, x_columns, [PEARSON])
    rows = table_rows(samples, design.ok, keys, split)
    return _finish(rows, "within/between splits", model, started)


def _band_weights(
    codes: np.ndarray, replicates: int, seed: int, index: int
) -> bootstrap.ReplicateWeights | None:
    """Cluster-bootstrap weights (replicates, classes) of one class-size band, None if empty.

    Resamples the band's own classes (stratified), so every replicate holds as many classes of
    the band as the data do; one generator per band, seeded by (seed, band index).
    """
    if not len(codes):
        return None
    return bootstrap.ReplicateWeights.draw(
        int(codes.max()) + 1, replicates=replicates, rng=np.random.default_rng([seed, index])
    )


def _band_rows(
    samples: pd.DataFrame,
    band: np.ndarray,
    codes: np.ndarray,
    weights: bootstrap.ReplicateWeights | None,
    keys: list[RowKey],
    confidence: float,
    band_of: dict,
) -> list[dict]:
    """The rows of one class-size band (``band``: boolean mask of its rows in ``samples``);
    ``band_of`` holds the model and the band's size limits."""

    def banded(key: RowKey, xv: np.ndarray, yv: np.ndarray) -> dict:
        res = stats.correlate(
            xv, yv, codes, method=key.method, weights=weights, confidence=confidence
        )
        row = {"model": band_of["model"], "x": key.x, "y": key.y.label, "method": key.method}
        row.update(size_low=band_of["size_low"], size_high=band_of["size_high"])
        row.update(n=res.n, n_classes=res.n_classes, r=res.r, ci_low=res.ci_low)
        row.update(ci_high=res.ci_high, p_value=res.p_value)
        with_quality_aligned(row, key.y.lower_is_better)
        row["lower_is_better"] = key.y.lower_is_better
        row["flag"] = res.flag
        return row

    return table_rows(samples, band, keys, banded)


def by_class_size_table(
    samples: pd.DataFrame,
    *,
    model: str,
    x_columns: list[str],
    methods: list[str],
    size_bins: list[int],
    replicates: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Correlation of every norm column with every quality reference within class-size bands.

    Bands come from ``contrasts.size_bands(size_bins, largest class)`` over ``class_size``
    (images of the class in the manifest); classes smaller than ``size_bins[0]`` are in no
    band (logged). Each band's interval resamples the band's own classes (a stratified
    cluster bootstrap, seeded by ``(seed, band index)``), so a band of few classes still gets
    an interval in every replicate; a band of one class gets none (flagged).

    Returns
    -------
    DataFrame
        ``model, x, y, method, size_low, size_high, n, n_classes, r, ci_low, ci_high`` (the
        contract), then ``p_value, quality_aligned_r, quality_aligned_ci_low,
        quality_aligned_ci_high, lower_is_better, flag``. Signed r: agreement with BRISQUE is
        negative.
    """
    started = time.perf_counter()
    design = resampling(samples, replicates=replicates, seed=seed, draw=False)
    keys = list(row_keys(design.references, x_columns, methods))
    size = samples["class_size"].to_numpy()
    bands = contrasts.size_bands(size_bins, int(size.max()) if len(size) else 0)
    below = samples.loc[size < size_bins[0], "label"].nunique()
    if below:
        logger.info(
            "%d classes smaller than %d images are in no class-size band", below, size_bins[0]
        )
    rows = []
    for index, (low, high) in enumerate(bands):
        band = design.ok & (size >= low) & (size <= high)
        codes = pd.factorize(design.codes[band], sort=True)[0]
        weights = _band_weights(codes, replicates, seed, index)
        band_of = {"model": model, "size_low": low, "size_high": high}
        rows += _band_rows(samples, band, codes, weights, keys, confidence, band_of)
    what = f"class-size-band correlations ({len(bands)} bands)"
    return _finish(rows, what, model, started, _BY_CLASS_SIZE_COLUMNS)
