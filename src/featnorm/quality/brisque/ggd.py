"""BRISQUE's fits: generalised Gaussian (GGD) and asymmetric GGD shapes from per-scale sums.

:mod:`featnorm.quality.brisque.mscn` reduces each scale of an image to raw sums (additive over row
strips); ``features_from_sums`` turns them into that scale's 18 features as the MATLAB release
does (moment matching on the shape grid 0.2:0.001:10, nearest grid value, first on ties).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import gammaln

SHAPE_GRID = 0.2 + 0.001 * np.arange(9801)  # 0.2:0.001:10, the shape values the fits may return
# Raw sums per scale, additive over strips: [n, sum s^2, sum |s|, n_active] then per shift
# the dot products T of SUM_MAPS: [sum p^2, sum sign(p) p^2, sum |p|, sum sign(p), n_{p!=0}]
# (featnorm.quality.brisque.mscn says how they are computed).
SUM_MAPS = ("sq", "sabs", "abs", "sign", "nz")
N_BASE = 4
N_PAIR = 5
N_SUMS = N_BASE + 4 * N_PAIR


@cache
def _shape_tables() -> tuple[np.ndarray, np.ndarray]:
    """GGD ratio table (decreasing in shape) and AGGD ratio table (increasing), on SHAPE_GRID."""
    g = SHAPE_GRID
    lg1, lg2, lg3 = gammaln(1.0 / g), gammaln(2.0 / g), gammaln(3.0 / g)
    ggd = np.exp(lg1 + lg3 - 2.0 * lg2)  # Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2
    return ggd, 1.0 / ggd  # AGGD: Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))


def _nearest_shape(target: np.ndarray, table: np.ndarray) -> np.ndarray:
    """SHAPE_GRID value whose table entry is nearest to each target (first one on ties).

    ``table`` is monotonic; this is MATLAB's ``min(abs(target - table))`` without the scan.
    Non-finite targets give NaN.
    """
    increasing = table[-1] > table[0]
    tab = table if increasing else table[::-1]
    safe = np.where(np.isfinite(target), target, tab[0])
    hi = np.clip(np.searchsorted(tab, safe), 1, len(tab) - 1)
    lo = hi - 1
    d_lo, d_hi = np.abs(safe - tab[lo]), np.abs(safe - tab[hi])
    if increasing:
        idx = np.where(d_lo <= d_hi, lo, hi)
    else:  # reversed order: the original (first) index of the pair is the larger one here
        idx = len(tab) - 1 - np.where(d_hi <= d_lo, hi, lo)
    return np.where(np.isfinite(target), SHAPE_GRID[idx], np.nan)


def features_from_sums(sums: np.ndarray) -> np.ndarray:
    """The 18 features of one scale from its raw sums, by moment matching.

    ``sums`` is (B, N_SUMS) float64 in the layout above; returns (B, 18) float64: the GGD shape
    and variance (mean of squares) of the MSCN map, then for h, v, d1, d2 the AGGD shape (on
    :data:`SHAPE_GRID`), mean, left variance and right variance. An undefined fit (e.g. no
    negative product) gives NaN or inf in its columns; no warning is raised.
    """
    ggd_table, aggd_table = _shape_tables()
    with np.errstate(divide="ignore", invalid="ignore"):
        n = sums[:, 0]
        mean_sq = sums[:, 1] / n
        rho = mean_sq / (sums[:, 2] / n) ** 2
        out = [_nearest_shape(rho, ggd_table), mean_sq]
        for k in range(4):
            t = dict(zip(SUM_MAPS, sums[:, N_BASE + k * N_PAIR :][:, :N_PAIR].T, strict=True))
            lvar = (t["sq"] - t["sabs"]) / (t["nz"] - t["sign"])  # halves cancel
            rvar = (t["sq"] + t["sabs"]) / (t["nz"] + t["sign"])
            lstd, rstd = np.sqrt(lvar), np.sqrt(rvar)
            rhat = (t["abs"] / n) ** 2 / (t["sq"] / n)
            gh = lstd / rstd
            rnorm = rhat * (gh**3 + 1.0) * (gh + 1.0) / (gh**2 + 1.0) ** 2
            alpha = _nearest_shape(rnorm, aggd_table)
            lg1, lg2, lg3 = gammaln(1.0 / alpha), gammaln(2.0 / alpha), gammaln(3.0 / alpha)
            mean = (rstd - lstd) * np.exp(lg2 - lg1) * np.exp(0.5 * (lg1 - lg3))
            out += [alpha, mean, lvar, rvar]
    return np.stack(out, axis=1)
