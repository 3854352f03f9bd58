"""Tests of the seed's claim: paired differences of correlations, the within/between split of a
correlation, and class-size bands.

Every interval is a cluster bootstrap that resamples classes (as in :mod:`featnorm.analysis.stats`), and a
paired statistic uses the *same* replicate draws for both of its terms, so the interval of a
difference reflects how the two correlations move together.

Sign convention: every coefficient and difference is *signed*. BRISQUE is lower for better
images, so a norm that agrees with BRISQUE has a negative r; a negative ``delta`` against BRISQUE
means the standardised norm agrees *more* with BRISQUE than the raw norm.

References
----------
Davison, A. C. & Hinkley, D. V. (1997). *Bootstrap Methods and their Application*, §3.8.
doi:10.1017/CBO9780511802843
Snijders, T. A. B. & Bosker, R. J. (2012). *Multilevel Analysis*, 2nd ed., §3.6 (within- and
between-group correlations).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from featnorm.analysis import bootstrap, stats
from featnorm.analysis.bootstrap import Weights, count_classes
from featnorm.config.checks import check_size_bins

logger = logging.getLogger(__name__)

__all__ = [
    "DecompositionResult",
    "DifferenceResult",
    "paired_difference",
    "size_bands",
    "within_between",
]

# A between-class sum of squares below this fraction of the total counts as zero (the class
# means of a within-class z-score are 0 up to rounding).
_REL_EPS = 1e-12


@dataclass(frozen=True)
class DifferenceResult:
    """``delta = r(x, y) - r(reference, y)`` on the same rows, with a paired interval.

    ``r_x``, ``r_reference``: the two signed coefficients; ``ci_low``/``ci_high``: percentile
    interval of the paired replicates ``r*(x, y) - r*(reference, y)``; ``p_value``: two-sided
    bootstrap p of delta = 0 (``bootstrap.bootstrap_p``, never below ``2 / (1 + replicates)``).
    """

    r_x: float
    r_reference: float
    delta: float
    n: int
    n_classes: int
    ci_low: float
    ci_high: float
    p_value: float
    replicates: int
    flag: str

    def as_dict(self) -> dict:
        """The fields as a dict (one row of the differences table)."""
        return asdict(self)


@dataclass(frozen=True)
class DecompositionResult:
    """Total, pooled within-class and between-class Pearson correlation of x and y.

    ``r_within``: Pearson of the class-centred x and y over all images; ``r_between``: Pearson
    of the class means, one unweighted point per class; ``between_share_x``/``_y``: between-class
    sum of squares over the total (0: the classes have equal means; 1: no spread within classes).
    Intervals: cluster-bootstrap percentile.
    """

    n: int
    n_classes: int
    r_total: float
    r_total_ci_low: float
    r_total_ci_high: float
    r_within: float
    r_within_ci_low: float
    r_within_ci_high: float
    r_between: float
    r_between_ci_low: float
    r_between_ci_high: float
    between_share_x: float
    between_share_y: float
    replicates: int
    flag: str

    def as_dict(self) -> dict:
        """The fields as a dict (one row of the decomposition table)."""
        return asdict(self)


def _interval(
    reps: np.ndarray,
    estimate: float,
    weights: Weights,
    confidence: float,
    flags: list[str],
    name: str,
) -> tuple[float, float, int]:
    """Percentile interval of ``name``'s replicates (``bootstrap.percentile_interval``); NaN without a
    flag when the estimate is undefined or there are no replicates."""
    if not np.isfinite(estimate) or len(reps) == 0:
        return (np.nan, np.nan, 0)
    return bootstrap.percentile_interval(
        reps, confidence, drawn=len(weights), flags=flags, name=f"{name}: "
    )


def paired_difference(
    x: np.ndarray,
    reference: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    *,
    method: str,
    weights: Weights,
    confidence: float = 0.95,
    reference_cache: dict | None = None,
) -> DifferenceResult:
    """Signed ``r(x, y) - r(reference, y)`` on the rows where all three are finite.

    Parameters
    ----------
    x, reference, y : ndarray of shape (N,), float
        E.g. a standardised norm, the raw norm and BRISQUE (lower is better). Rows with any
        non-finite value are left out of *both* coefficients.
    codes : ndarray of shape (N,), int
        Class index in ``0 .. G - 1`` with G = ``weights.shape[1]``.
    method : {"pearson", "spearman", "kendall"}
    weights : ndarray or ReplicateWeights of shape (B, G)
        Cluster-bootstrap class counts; both coefficients use these same draws (paired).
    confidence : float
        Two-sided level in (0, 1).
    reference_cache : dict, optional
        Reuses ``r(reference, y)`` and its replicates between calls that share reference, y,
        codes and weights and use the same rows (keyed by method and the rows used); the
        caller keeps one dict per (reference, y).

    Returns
    -------
    DifferenceResult
        Against a lower-is-better y, a negative delta means x agrees more with y than the
        reference does.
    """
    x, reference, y = (np.asarray(a, dtype=np.float64) for a in (x, reference, y))
    keep = stats.finite_rows(x, reference, y)
    x, reference, y, codes = x[keep], reference[keep], y[keep], np.asarray(codes)[keep]
    n, n_classes = len(x), count_classes(codes)
    flags: list[str] = []
    if n < 3:
        flags.append(f"only {n} usable rows (need >= 3)")
        return DifferenceResult(
            np.nan, np.nan, np.nan, n, n_classes, np.nan, np.nan, np.nan, 0, "; ".join(flags)
        )
    r_x, reps_x = stats.correlation_replicates(x, y, codes, method=method, weights=weights)
    key = (method, keep.tobytes())  # the rows used, exactly
    cache = {} if reference_cache is None else reference_cache
    if key not in cache:
        cache[key] = stats.correlation_replicates(
            reference, y, codes, method=method, weights=weights
        )
    r_ref, reps_ref = cache[key]
    delta = r_x - r_ref
    ci, p = _delta_interval(delta, reps_x, reps_ref, n_classes, weights, confidence, flags)
    coefficients = (float(r_x), float(r_ref), float(delta), n, n_classes)
    return DifferenceResult(*coefficients, ci[0], ci[1], p, ci[2], "; ".join(flags))


def _delta_interval(
    delta: float,
    reps_x: np.ndarray,
    reps_reference: np.ndarray,
    n_classes: int,
    weights: Weights,
    confidence: float,
    flags: list[str],
) -> tuple[tuple[float, float, int], float]:
    """Percentile interval (low, high, finite replicates) and bootstrap p of a paired difference.

    ``reps_x - reps_reference`` (B,) are the paired replicates of ``delta``; both results are
    NaN, with a reason appended to ``flags``, when delta is undefined (the replicates may then
    be empty), there is a single class or too few replicates are finite.
    """
    if not np.isfinite(delta):
        flags.append("x, reference or y is constant")
    if n_classes < 2:
        flags.append("single class: the cluster bootstrap is undefined")
        return (np.nan, np.nan, 0), np.nan
    if not np.isfinite(delta):
        return (np.nan, np.nan, 0), np.nan
    reps = reps_x - reps_reference
    ci = _interval(reps, delta, weights, confidence, flags, "delta")
    return ci, (bootstrap.bootstrap_p(reps) if np.isfinite(ci[0]) else np.nan)


def _pearson(
    sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, scale: tuple[float, float]
) -> np.ndarray:
    """sxy / sqrt(sxx syy), NaN where sxx or syy is not above ``_REL_EPS`` times its scale."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (sxx > _REL_EPS * scale[0]) & (syy > _REL_EPS * scale[1])
        return np.where(ok, np.clip(sxy / np.sqrt(sxx * syy), -1, 1), np.nan)


def within_between(
    x: np.ndarray,
    y: np.ndarray,
    codes: np.ndarray,
    *,
    weights: Weights,
    confidence: float = 0.95,
) -> DecompositionResult:
    """Pearson r of x and y split into a pooled within-class and a between-class part.

    Parameters
    ----------
    x, y : ndarray of shape (N,), float
        Rows where either is not finite are left out.
    codes : ndarray of shape (N,), int
        Class index in ``0 .. G - 1`` with G = ``weights.shape[1]``.
    weights : ndarray or ReplicateWeights of shape (B, G)
        Cluster-bootstrap class counts; a class drawn k times counts k times at both levels.
    confidence : float
        Two-sided level in (0, 1).

    Returns
    -------
    DecompositionResult
        All coefficients signed (agreement with BRISQUE is negative). Every replicate is exact
        (from per-class sums). ``r_between`` is NaN (flagged) when x or y has no between-class
        spread, e.g. a within-class z-score whose class means are all 0; ``r_within`` is NaN
        when no class has two rows.

    Notes
    -----
    With class means ``xbar_g`` and grand mean ``xbar``, the total sum of squares splits as
    ``sum (x - xbar)^2 = sum (x - xbar_g)^2 + sum_g n_g (xbar_g - xbar)^2``; ``r_total`` mixes
    ``r_within`` and the size-weighted between part, while ``r_between`` weighs classes equally.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = stats.finite_rows(x, y)
    x, y, codes = x[keep], y[keep], np.asarray(codes)[keep]
    n, n_classes = len(x), count_classes(codes)
    if n < 3:
        return DecompositionResult(
            n, n_classes, *[np.nan] * 11, 0, f"only {n} usable rows (need >= 3)"
        )
    tables, scale, shares = _level_tables(x, y, codes, weights.shape[1])
    r_t, r_w, r_b = (float(v) for v in _split(*(t.sum(0) for t in tables), scale))
    flags = [] if np.isfinite(r_w) else ["r_within undefined: no spread within classes"]
    if not np.isfinite(r_b):
        flags.append("r_between undefined: the class means of x or y do not vary")
    ci_t = ci_w = ci_b = (np.nan, np.nan, 0)
    if n_classes < 2:
        flags.append("single class: the cluster bootstrap is undefined")
    else:
        rep_t, rep_w, rep_b = _split(*_replicate_sums(weights, tables), scale)
        ci_t = _interval(rep_t, r_t, weights, confidence, flags, "r_total")
        ci_w = _interval(rep_w, r_w, weights, confidence, flags, "r_within")
        ci_b = _interval(rep_b, r_b, weights, confidence, flags, "r_between")
    replicates = max(ci_t[2], ci_w[2], ci_b[2])
    levels = (r_t, *ci_t[:2], r_w, *ci_w[:2], r_b, *ci_b[:2])
    return DecompositionResult(n, n_classes, *levels, *shares, replicates, "; ".join(flags))


def _replicate_sums(weights: Weights, tables: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """``weights @ t`` for every (G, K_i) table ``t``, in one pass over the weights."""
    ends = np.cumsum([t.shape[1] for t in tables])[:-1]
    return np.split(weights @ np.hstack(tables), ends, axis=1)


def _level_tables(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray, g: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[float, float], tuple[float, float]]:
    """Per-class moment tables of x and y for :func:`within_between`.

    Returns the within (G, 3), between (G, 6) and total (G, 6) tables, whose class-weighted sums
    give the three correlations (:func:`_split`); the total sums of squares of the centred x and
    y (the scale of "negligible"); and the between-class shares of those sums of squares.
    """
    xc, yc = x - x.mean(), y - y.mean()
    # per class: size, sums and sums of products of the centred values
    size = np.bincount(codes, minlength=g).astype(np.float64)
    sx, sy = np.bincount(codes, xc, g), np.bincount(codes, yc, g)
    sxx, syy = np.bincount(codes, xc * xc, g), np.bincount(codes, yc * yc, g)
    sxy = np.bincount(codes, xc * yc, g)
    present = size > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.where(present, sx / size, 0.0)
        my = np.where(present, sy / size, 0.0)
    # within-class sums of products per class (zero for classes of one row)
    wxx, wyy, wxy = sxx - sx * mx, syy - sy * my, sxy - sx * my
    scale_x, scale_y = float(np.sum(sxx)), float(np.sum(syy))
    # between-class moments: one unweighted point per present class
    cls = present.astype(np.float64)
    table_w = np.column_stack([wxy, wxx, wyy])
    table_b = np.column_stack([cls, mx, my, mx * mx, my * my, mx * my])
    table_t = np.column_stack([size, sx, sy, sxx, syy, sxy])
    with np.errstate(invalid="ignore", divide="ignore"):
        ss_bx = float(np.sum(size * mx * mx))  # x is centred: the grand mean is 0
        ss_by = float(np.sum(size * my * my))
        share_x = ss_bx / scale_x if scale_x > 0 else np.nan
        share_y = ss_by / scale_y if scale_y > 0 else np.nan
    return (table_w, table_b, table_t), (scale_x, scale_y), (share_x, share_y)


def _split(tw: np.ndarray, tb: np.ndarray, tt: np.ndarray, scale: tuple[float, float]):
    """(r_total, r_within, r_between) from summed within, between and total tables (any
    leading shape: one sum, or one per bootstrap replicate)."""
    r_w = _pearson(tw[..., 0], tw[..., 1], tw[..., 2], scale)
    k = tb[..., 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        bxx = tb[..., 3] - tb[..., 1] ** 2 / k
        byy = tb[..., 4] - tb[..., 2] ** 2 / k
        bxy = tb[..., 5] - tb[..., 1] * tb[..., 2] / k
        m = tt[..., 0]
        txx = tt[..., 3] - tt[..., 1] ** 2 / m
        tyy = tt[..., 4] - tt[..., 2] ** 2 / m
        txy = tt[..., 5] - tt[..., 1] * tt[..., 2] / m
    # class means count as constant when their spread is negligible next to the data's
    ok_b = (bxx > _REL_EPS * np.maximum(txx / np.maximum(m, 1), 0)) & (
        byy > _REL_EPS * np.maximum(tyy / np.maximum(m, 1), 0)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        r_b = np.where(ok_b, np.clip(bxy / np.sqrt(bxx * byy), -1, 1), np.nan)
    r_t = _pearson(txy, txx, tyy, scale)
    return r_t, r_w, r_b


def size_bands(edges: list[int], largest: int) -> list[tuple[int, int]]:
    """Class-size bands ``[low, high]`` (inclusive) from ascending lower edges.

    Band i runs from ``edges[i]`` to ``edges[i + 1] - 1``; the last from ``edges[-1]`` to
    ``largest``; no band reaches above ``largest``, and bands that start above it are dropped.
    Classes smaller than ``edges[0]`` fall in no band.

    >>> size_bands([2, 4, 8], 20)
    [(2, 3), (4, 7), (8, 20)]
    """
    edges = check_size_bins(edges)
    highs = [e - 1 for e in edges[1:]] + [max(largest, edges[-1])]
    return [(lo, min(hi, largest)) for lo, hi in zip(edges, highs, strict=True) if lo <= largest]
