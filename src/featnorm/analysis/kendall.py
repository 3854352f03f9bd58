"""Kendall's tau-b through per-row concordance scores, in O(N log N) without an N x N matrix.

``kendall_scores`` gives each row's concordance score; their mean is tau-b's numerator, so the
cluster bootstrap of :mod:`featnorm.analysis.stats` reweights rows instead of re-sorting every replicate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from featnorm.analysis.bootstrap import Weights

__all__ = ["kendall_iid_p", "kendall_replicates", "kendall_scores"]


def _dense_rank(v: np.ndarray) -> np.ndarray:
    return np.unique(v, return_inverse=True)[1].astype(np.int64)


def _count_smaller_before(v: np.ndarray) -> np.ndarray:
    """For each position i, how many j < i have v[j] < v[i] (strictly); v holds integers >= 0.

    A wavelet matrix, one level per bit of ``max(v)`` from the highest: at each level the
    elements are grouped by their higher bits (each group in original position order), and an
    element whose current bit is 1 counts the elements with bit 0 before it in its group (they
    are the smaller values that first differ from it at this bit); then a stable partition by
    the bit (zeros first) gives the next level's grouping. O(N log max(v)) in sequential passes
    (int32 where N allows), with no N x N matrix and no sort.
    """
    n = len(v)
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    dtype = np.int32 if n < 2**31 and int(v.max()) < 2**31 else np.int64
    vals = np.asarray(v, dtype=dtype)
    origin = np.arange(n, dtype=dtype)  # original position of each entry of vals
    counted = np.zeros(n, dtype=dtype)  # the count so far, moved with its element
    idx = np.arange(n, dtype=dtype)
    change = np.empty(n, dtype=bool)
    change[0] = True
    for k in range(int(vals.max()).bit_length() - 1, -1, -1):
        one = ((vals >> k) & 1).astype(bool)
        zero = ~one
        high = vals >> (k + 1)
        np.not_equal(high[1:], high[:-1], out=change[1:])
        start = np.maximum.accumulate(np.where(change, idx, dtype(0)))  # first index of group
        zeros = np.cumsum(zero, dtype=dtype)
        zeros_before = zeros - zero - (zeros[start] - zero[start])  # in the group, strictly
        counted += np.where(one, zeros_before, dtype(0))
        vals = np.concatenate([vals[zero], vals[one]])
        origin = np.concatenate([origin[zero], origin[one]])
        counted = np.concatenate([counted[zero], counted[one]])
    out = np.empty(n, dtype=np.int64)
    out[origin] = counted
    return out


def _within_group_smaller(group: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each i, #{j: group_j == group_i and v_j < v_i} (strict)."""
    order = np.lexsort((v, group))
    g, vv = group[order], v[order]
    n = len(v)
    idx = np.arange(n)
    grp_start = np.maximum.accumulate(np.where(np.r_[True, g[1:] != g[:-1]], idx, 0))
    run_start = np.maximum.accumulate(
        np.where(np.r_[True, (g[1:] != g[:-1]) | (vv[1:] != vv[:-1])], idx, 0)
    )
    out = np.empty(n, dtype=np.int64)
    out[order] = run_start - grp_start
    return out


def _tie_sizes(rank: np.ndarray) -> np.ndarray:
    """For each i, how many other rows share its value."""
    counts = np.bincount(rank)
    return counts[rank] - 1


def kendall_scores(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-row concordance scores and Kendall's tau-b.

    Parameters
    ----------
    x, y : ndarray of shape (N,)
        Finite values (ties allowed).

    Returns
    -------
    s : ndarray of shape (N,), float64
        ``s_i = sum_j sign(x_i - x_j) * sign(y_i - y_j)``; ``sum(s) / 2`` is the number of
        concordant minus discordant pairs.
    tau_b : float
        Signed Kendall tau-b (NaN when x or y is constant).

    Notes
    -----
    With L/E for "strictly less"/"equal" counts over j != i,
    ``s_i = 4 LL + (N - 1) - 2 Lx - 2 Ly - Ex - Ey + 2 LxEy + 2 ExLy + EE``; only LL needs the
    O(N log N) dominance count (``_count_smaller_before``), the rest are sorts.

    References
    ----------
    Kendall, M. G. (1945). The treatment of ties in ranking problems. Biometrika 33(3), 239-251.
    doi:10.1093/biomet/33.3.239 (tau-b)
    Knight, W. R. (1966). A computer method for calculating Kendall's tau with ungrouped data.
    JASA 61(314), 436-439. doi:10.1080/01621459.1966.10480879 (counting pairs by sorting)
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    rx, ry = _dense_rank(x), _dense_rank(y)
    # LL: order by x ascending, ties in x by y descending, then count earlier strictly smaller y
    order = np.lexsort((-ry, rx))
    ll = np.empty(n, dtype=np.int64)
    ll[order] = _count_smaller_before(ry[order])
    cx = np.bincount(rx)
    cy = np.bincount(ry)
    lx = (np.cumsum(cx) - cx)[rx]
    ly = (np.cumsum(cy) - cy)[ry]
    ex, ey = cx[rx] - 1, cy[ry] - 1
    # the tie terms vanish without ties: skip their sorts then
    tied_x, tied_y = len(cx) < n, len(cy) < n
    lxey = _within_group_smaller(ry, rx) if tied_y else 0
    exly = _within_group_smaller(rx, ry) if tied_x else 0
    ee = _tie_sizes(_dense_rank(rx * (ry.max() + 1) + ry)) if tied_x and tied_y else 0
    s = 4 * ll + (n - 1) - 2 * lx - 2 * ly - ex - ey + 2 * lxey + 2 * exly + ee
    pairs = n * (n - 1) / 2
    ties_x = float(np.sum(cx * (cx - 1.0)) / 2)
    ties_y = float(np.sum(cy * (cy - 1.0)) / 2)
    denom = np.sqrt((pairs - ties_x) * (pairs - ties_y))
    tau = float(np.sum(s, dtype=np.float64) / 2 / denom) if denom > 0 else np.nan
    return s.astype(np.float64), tau


def _tie_sums(v: np.ndarray) -> tuple[float, float, float]:
    """Over groups of t equal values: sum t(t-1), sum t(t-1)(t-2), sum t(t-1)(2t+5)."""
    t = np.unique(v, return_counts=True)[1].astype(np.float64)
    t = t[t > 1]
    return (
        float(np.sum(t * (t - 1))),
        float(np.sum(t * (t - 1) * (t - 2))),
        float(np.sum(t * (t - 1) * (2 * t + 5))),
    )


def kendall_iid_p(x: np.ndarray, y: np.ndarray, tau_b: float) -> float:
    """Two-sided normal-approximation p-value (in [0, 1]) of Kendall's tau-b = 0, rows i.i.d.

    ``x`` and ``y`` are finite arrays of shape (N,), N >= 3, and ``tau_b`` their signed tau-b.
    Uses Kendall's S with the tie-corrected variance:

    ``var(S) = [n(n-1)(2n+5) - sum_x t(t-1)(2t+5) - sum_y u(u-1)(2u+5)] / 18
    + sum_x t(t-1) sum_y u(u-1) / (2 n (n-1))
    + sum_x t(t-1)(t-2) sum_y u(u-1)(u-2) / (9 n (n-1)(n-2))`` (Kendall 1970, ch. 4), the
    test ``scipy.stats.kendalltau(method="asymptotic")`` makes; S is recovered from tau-b.
    """
    n = len(x)
    m = n * (n - 1.0)
    a2x, a3x, a5x = _tie_sums(x)
    a2y, a3y, a5y = _tie_sums(y)
    pairs = m / 2
    s = tau_b * np.sqrt((pairs - a2x / 2) * (pairs - a2y / 2))
    var = (m * (2 * n + 5) - a5x - a5y) / 18 + a2x * a2y / (2 * m) + a3x * a3y / (9 * m * (n - 2))
    if var <= 0:
        return np.nan
    return float(2 * stats.norm.sf(abs(s) / np.sqrt(var)))


def kendall_replicates(
    x: np.ndarray, y: np.ndarray, codes: np.ndarray, weights: Weights | None, n_classes: int
) -> tuple[float, np.ndarray]:
    """Kendall's tau-b of x and y and its cluster-bootstrap replicates (first-order projection).

    ``x``, ``y``: finite arrays of shape (N,), N >= 3; ``codes``: class index of shape (N,) in
    ``0 .. n_classes - 1``; ``weights``: class counts of shape (B, n_classes), or None.
    Returns the signed tau-b (NaN when x or y is constant) and an array of shape (B,) in
    [-1, 1], NaN where a replicate is undefined (empty when ``weights`` is None or tau-b is
    NaN): ``tau* = tau + 2 k (mean* s_i / (N - 1) - tau_a)`` with the per-row concordance
    scores ``s_i`` of ``kendall_scores`` averaged over the resampled classes and
    ``k = tau_b / tau_a`` (see :func:`featnorm.analysis.stats.correlation_replicates` for its error).
    """
    n = len(x)
    s, r = kendall_scores(x, y)
    if weights is None or not np.isfinite(r):
        return r, np.full(0, np.nan)
    tau_a = float(s.sum() / (n * (n - 1)))
    k = r / tau_a if tau_a != 0 else 1.0
    h_sum = np.bincount(codes, weights=s / (n - 1), minlength=n_classes)
    size = np.bincount(codes, minlength=n_classes).astype(np.float64)
    boot = weights @ np.column_stack([h_sum, size])  # one pass over the weights
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_h = boot[:, 0] / boot[:, 1]
    return r, np.clip(r + 2 * k * (mean_h - tau_a), -1, 1)
