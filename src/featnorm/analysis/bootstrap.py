"""Cluster-bootstrap building blocks shared by the analysis and the evaluation: class codes,
replicate weights, percentile intervals and bootstrap p-values.

A cluster bootstrap resamples classes (identities) with replacement; a replicate is fully
described by how often each class was drawn, so every statistic that is a function of per-class
sums is a (replicates x classes) weight matrix times a (classes x sums) table.

References
----------
Davison, A. C. & Hinkley, D. V. (1997). *Bootstrap Methods and their Application*, §3.8 and
§4.4. doi:10.1017/CBO9780511802843
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "MIN_VALID_REPLICATES",
    "bootstrap_p",
    "class_codes",
    "cluster_bootstrap_weights",
    "percentile_interval",
]

# Below this share of defined bootstrap replicates a percentile interval is not reported: an
# interval over the replicates where the statistic happens to be defined is conditional on that.
MIN_VALID_REPLICATES = 0.9


def class_codes(labels: pd.Series) -> np.ndarray:
    """Class index of each row, ``0 .. G - 1`` in ascending label order, int64 (shape (N,))."""
    return pd.factorize(labels, sort=True)[0].astype(np.int64)


def cluster_bootstrap_weights(
    n_classes: int, *, replicates: int, rng: np.random.Generator
) -> np.ndarray:
    """How often each class is drawn in each cluster-bootstrap replicate.

    Parameters
    ----------
    n_classes : int
        Number of classes G (>= 1).
    replicates : int
        Number of replicates B (>= 1).
    rng : numpy.random.Generator
        The caller's seeded generator.

    Returns
    -------
    ndarray of shape (B, G), float64
        Multinomial(G, 1/G) counts per row: a replicate draws G classes with replacement.
    """
    if n_classes < 1 or replicates < 1:
        raise ValueError(
            f"need n_classes >= 1 and replicates >= 1; got n_classes={n_classes}, "
            f"replicates={replicates}"
        )
    draws = rng.integers(0, n_classes, size=(replicates, n_classes))
    flat = draws + (np.arange(replicates) * n_classes)[:, None]
    counts = np.bincount(flat.ravel(), minlength=replicates * n_classes)
    return counts.reshape(replicates, n_classes).astype(np.float64)


def percentile_interval(
    reps: np.ndarray,
    confidence: float,
    *,
    drawn: int | None = None,
    flags: list[str] | None = None,
    name: str = "",
) -> tuple[float, float, int]:
    """Equal-tailed percentile interval of bootstrap replicates: ``(low, high, finite)``.

    Parameters
    ----------
    reps : ndarray of shape (B,), float
        Replicates of one statistic; NaN where it is undefined in a replicate.
    confidence : float in (0, 1)
        Two-sided level: the ``0.5 -+ confidence / 2`` quantiles of the finite replicates
        (numpy's default linear interpolation).
    drawn : int, optional
        Replicates drawn (default ``len(reps)``).
    flags, name : optional
        Where to append, and how to prefix, the reason when the interval is not reported.

    Returns
    -------
    (low, high, finite) : (float, float, int)
        NaN bounds when fewer than ``MIN_VALID_REPLICATES`` of the ``drawn`` replicates (or
        fewer than 2) are finite; ``finite`` counts them either way.
    """
    reps = np.asarray(reps, dtype=np.float64)
    drawn = len(reps) if drawn is None else drawn
    good = reps[np.isfinite(reps)]
    if len(good) < max(2, MIN_VALID_REPLICATES * drawn):
        if flags is not None:
            flags.append(
                f"{name}only {len(good)} of {drawn} bootstrap replicates defined; "
                "interval not reported"
            )
        return (np.nan, np.nan, len(good))
    lo, hi = np.quantile(good, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return (float(lo), float(hi), len(good))


def bootstrap_p(reps: np.ndarray, *, null: float = 0.0) -> float:
    """Two-sided cluster-bootstrap p-value of ``statistic = null``, honest about resolution.

    ``p = min(1, 2 (1 + min(#{r* <= null}, #{r* >= null})) / (1 + B))`` over the B finite
    replicates: the smallest alpha at which the equal-tailed (1 - alpha) percentile interval
    leaves out ``null``, with the (1 + count) / (1 + B) correction (Davison & Hinkley 1997,
    §4.4) so that it never reports less than ``2 / (1 + B)``: 1,000 replicates cannot resolve
    a p below about 0.002. Replicates equal to ``null`` count on both sides (conservative).

    Returns NaN when no replicate is finite.
    """
    good = np.asarray(reps, dtype=np.float64)
    good = good[np.isfinite(good)]
    if len(good) == 0:
        return np.nan
    tail = min(int(np.sum(good <= null)), int(np.sum(good >= null)))
    return float(min(1.0, 2 * (1 + tail) / (1 + len(good))))
