"""The tables that test the seed's claim, one model at a time: ``differences.csv``,
``decomposition.csv`` and ``by_class_size.csv``.

Pure functions (``samples.parquet`` as a DataFrame in, a DataFrame out). Only rows with status
``ok`` enter. The differences and the within/between split draw their cluster-bootstrap weights
exactly as ``analysis.correlation_table`` does (one generator seeded by ``analysis.seed``), so
with the same seed they share its replicate draws; the class-size bands resample within each
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

from featnorm.analysis import contrasts, stats
from featnorm.analysis.correlations import NORM_COLUMN, _bootstrap_setup

logger = logging.getLogger(__name__)

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


def _aligned(
    d: dict,
    lower_is_better: bool,
    value: str,
    low: str,
    high: str,
    prefix: str = "quality_aligned_",
) -> None:
    """Add ``quality_aligned_<value>`` and its interval to row ``d`` (sign flipped for BRISQUE)."""
    aligned = stats.quality_aligned(d[value], d[low], d[high], lower_is_better=lower_is_better)
    d[f"{prefix}{value}"], d[f"{prefix}ci_low"], d[f"{prefix}ci_high"] = aligned


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
    ok, codes_all, weights, refs = _bootstrap_setup(samples, replicates=replicates, seed=seed)
    codes = codes_all[ok]
    reference = samples[NORM_COLUMN].to_numpy(np.float64)[ok]
    rows = []
    for y, lower in refs.items():
        yv = samples[y].to_numpy(np.float64)[ok]
        cache: dict = {}  # r(feature_norm, y) per method and row set, shared by the x columns
        for x in x_columns:
            if x == NORM_COLUMN:
                continue
            xv = samples[x].to_numpy(np.float64)[ok]
            for m in methods:
                res = contrasts.paired_difference(
                    xv,
                    reference,
                    yv,
                    codes,
                    method=m,
                    weights=weights,
                    confidence=confidence,
                    reference_cache=cache,
                )
                d = {
                    "model": model,
                    "x": x,
                    "reference": NORM_COLUMN,
                    "y": y,
                    "method": m,
                    **res.as_dict(),
                }
                _aligned(d, lower, "delta", "ci_low", "ci_high")
                d["lower_is_better"] = lower
                rows.append(d)
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
    ok, codes_all, weights, refs = _bootstrap_setup(samples, replicates=replicates, seed=seed)
    codes = codes_all[ok]
    rows = []
    for y, lower in refs.items():
        yv = samples[y].to_numpy(np.float64)[ok]
        for x in x_columns:
            res = contrasts.within_between(
                samples[x].to_numpy(np.float64)[ok],
                yv,
                codes,
                weights=weights,
                confidence=confidence,
            )
            rows.append({"model": model, "x": x, "y": y, **res.as_dict(), "lower_is_better": lower})
    return _finish(rows, "within/between splits", model, started)


def _band_weights(codes: np.ndarray, replicates: int, seed: int, index: int) -> np.ndarray | None:
    """Cluster-bootstrap weights (replicates, classes) of one class-size band, None if empty.

    Resamples the band's own classes (stratified), so every replicate holds as many classes of
    the band as the data do; one generator per band, seeded by (seed, band index).
    """
    if not len(codes):
        return None
    return stats.cluster_bootstrap_weights(
        int(codes.max()) + 1, replicates=replicates, rng=np.random.default_rng([seed, index])
    )


def _band_rows(
    samples: pd.DataFrame,
    band: np.ndarray,
    codes: np.ndarray,
    weights: np.ndarray | None,
    refs: dict[str, bool],
    x_columns: list[str],
    methods: list[str],
    confidence: float,
    band_of: dict,
) -> list[dict]:
    """The rows of one class-size band (``band``: boolean mask of its rows in ``samples``);
    ``band_of`` holds the model and the band's size limits."""
    rows = []
    for y, lower in refs.items():
        yv = samples[y].to_numpy(np.float64)[band]
        for x in x_columns:
            xv = samples[x].to_numpy(np.float64)[band]
            for m in methods:
                res = stats.correlate(
                    xv, yv, codes, method=m, weights=weights, confidence=confidence
                )
                d = {
                    "model": band_of["model"],
                    "x": x,
                    "y": y,
                    "method": m,
                    "size_low": band_of["size_low"],
                    "size_high": band_of["size_high"],
                    "n": res.n,
                    "n_classes": res.n_classes,
                    "r": res.r,
                    "ci_low": res.ci_low,
                    "ci_high": res.ci_high,
                    "p_value": res.p_value,
                }
                _aligned(d, lower, "r", "ci_low", "ci_high")
                d["lower_is_better"] = lower
                d["flag"] = res.flag
                rows.append(d)
    return rows


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
    ok, codes_all, _, refs = _bootstrap_setup(samples, replicates=replicates, seed=seed)
    size = samples["class_size"].to_numpy()
    bands = contrasts.size_bands(size_bins, int(size.max()) if len(size) else 0)
    below = samples.loc[size < size_bins[0], "label"].nunique()
    if below:
        logger.info(
            "%d classes smaller than %d images are in no class-size band", below, size_bins[0]
        )
    rows = []
    for index, (low, high) in enumerate(bands):
        band = ok & (size >= low) & (size <= high)
        codes = pd.factorize(codes_all[band], sort=True)[0]
        weights = _band_weights(codes, replicates, seed, index)
        band_of = {"model": model, "size_low": low, "size_high": high}
        rows += _band_rows(
            samples, band, codes, weights, refs, x_columns, methods, confidence, band_of
        )
    what = f"class-size-band correlations ({len(bands)} bands)"
    return _finish(rows, what, model, started, _BY_CLASS_SIZE_COLUMNS)
