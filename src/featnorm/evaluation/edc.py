"""Error-versus-discard characteristic (EDC) of quality proxies, with a cluster bootstrap.

Definitions (ISO/IEC 29794-1; Schlett et al. 2023), as computed here:

* **Quality** is oriented higher = better: BRISQUE (lower = better) is negated, the norm columns
  and the demo's ``true_quality`` are used as they are. A pair's quality is the **minimum** of its
  two images' qualities; a pair with a missing (NaN) quality on either image ranks lowest.
* The **threshold** is fixed once per (scope, fmr) from all impostor pairs: the smallest
  observed impostor score ``t`` with FMR(t) = share of impostor scores ``>= t`` at most ``fmr``.
  When even the highest impostor score leaves FMR > ``fmr`` (fewer than 1/fmr impostors), ``t``
  is the next float32 above it (FMR 0), and ``fmr_observed`` says so.
* A genuine pair is a **false non-match** when its score is ``< t``. ``fnmr_at_0`` is their share.
* **Discarding** removes the lowest-quality genuine pairs first. FNMR(f) is the share of false
  non-matches among the genuine pairs left after discarding the fraction ``f``.
* **Ties** in pair quality are **averaged**: a block of tied pairs is discarded as a whole in
  expectation, i.e. discarding part of a block removes that part of its errors. This is the mean
  over all orders within the block, so the result does not depend on row order, and a constant
  quality gives exactly the random expectation. Formally E(w), the false non-matches discarded
  once the discarded weight is w, is linear between tie-block boundaries, and
  FNMR(f) = (E_total - E(f W)) / ((1 - f) W), W the total genuine weight (pair count).
* **Grid**: FNMR(f) is evaluated at f = 0, s, 2s, ... up to the largest discard limit (``s`` =
  ``discard_step``, default 0.001) plus each limit itself. **pAUC** is the trapezoid area under
  FNMR(f) on that grid for f in [0, limit], not normalised (a flat FNMR gives fnmr_at_0 x limit).
* **References**: ``ideal`` discards in error order (genuine score ascending, so every false
  non-match goes first); ``random`` is the *expectation* under a random discard order,
  FNMR(f) = fnmr_at_0 for every f, so pAUC = fnmr_at_0 x limit exactly. The expectation is
  reported rather than one seeded random order because a draw only adds noise around it.
* **Confidence intervals**: a cluster bootstrap over identities. A replicate draws identities with
  replacement (:func:`featnorm.analysis.bootstrap.cluster_bootstrap_weights`); each genuine pair then weighs as
  often as its identity was drawn. The threshold stays fixed (its impostor-side uncertainty is not
  in the interval). ``delta_vs_feature_norm`` is the paired difference of pAUC to the raw norm on
  the same replicates.

References
----------
ISO/IEC 29794-1:2024, Biometric sample quality, Part 1: Framework.
Schlett, T., Rathgeb, C., Tapia, J., Busch, C. (2023). Considerations on the evaluation of
biometric quality assessment algorithms. IEEE T-BIOM. doi:10.1109/TBIOM.2023.3336513
Grother, P., Tabassi, E. (2007). Performance of biometric quality measures. IEEE TPAMI 29(4).
doi:10.1109/TPAMI.2007.1019
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.analysis import bootstrap

__all__ = [
    "IDEAL",
    "RANDOM",
    "EdcResult",
    "discard_grid",
    "edc",
    "fnmr_curve",
    "pair_quality",
    "threshold_at_fmr",
]

logger = logging.getLogger(__name__)

IDEAL = "ideal"
RANDOM = "random"
RAW_NORM = "feature_norm"
TABLE_COLUMNS = [
    "quality",
    "fmr",
    "threshold",
    "fmr_observed",
    "discard_limit",
    "pauc",
    "ci_low",
    "ci_high",
    "n_genuine",
    "n_impostor",
    "n_identities",
    "fnmr_at_0",
    "n_no_quality",
    "delta_vs_feature_norm",
    "delta_ci_low",
    "delta_ci_high",
    "replicates",
]
CURVE_COLUMNS = ["quality", "fmr", "discard_fraction", "fnmr"]
# Weighted prefix sums of at most this many float64 values at a time (64 MB).
_CHUNK_VALUES = 8_000_000
# The prefix of the discard order summed per replicate: this many times the largest discard
# fraction (replicates that need more are redone over all pairs).
_PREFIX_MARGIN = 1.25


def threshold_at_fmr(impostor_scores: np.ndarray, fmr: float) -> tuple[float, float]:
    """The smallest impostor score ``t`` with share(impostor >= t) <= ``fmr``.

    Parameters
    ----------
    impostor_scores : ndarray of shape (M,), float32
        Comparison scores (cosine similarity, in [-1, 1]; higher = more alike).
    fmr : float in (0, 1)
        Target false match rate.

    Returns
    -------
    threshold : float (a float32 value)
        Next float32 above the highest impostor score when no observed score qualifies.
    fmr_observed : float
        Share of impostor scores ``>= threshold``.
    """
    s = np.sort(np.asarray(impostor_scores, dtype=np.float32))[::-1]  # descending
    n = len(s)
    if n == 0:
        raise ValueError("no impostor pairs: the threshold at a false match rate needs some")
    k = int(np.floor(fmr * n + 1e-9))  # at most k impostors may reach the threshold
    if k == 0:
        t = np.nextafter(s[0], np.float32(np.inf))
    elif k >= n:
        t = s[-1]
    elif s[k] < s[k - 1]:
        t = s[k - 1]
    else:  # s[k-1] is tied with s[k]: the next distinct value above the tie block
        above = s[s > s[k - 1]]
        t = above[-1] if len(above) else np.nextafter(s[0], np.float32(np.inf))
    t = np.float32(t)
    return float(t), float(np.count_nonzero(s >= t) / n)


def pair_quality(image_quality: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min(q[a], q[b]) per pair, float64; NaN when either is NaN.

    ``image_quality`` must be oriented higher = better (negate BRISQUE first); ``a`` and ``b``
    are the pairs' image positions.
    """
    qa, qb = image_quality[a], image_quality[b]
    out = np.minimum(qa, qb)  # np.minimum propagates NaN
    return out.astype(np.float64)


def discard_grid(limits: list[float], step: float) -> np.ndarray:
    """f = 0, step, 2 step, ... up to max(limits), plus every limit; sorted, unique.

    ``f`` is the discarded fraction of genuine pairs; ``step`` and every limit lie in (0, 1).
    """
    if not 0 < step < 1:
        raise ValueError(f"evaluation.discard_step = {step}; it must be in (0, 1), e.g. 0.001")
    for limit in limits:
        if not 0 < limit < 1:
            raise ValueError(f"evaluation.discard_limits has {limit}; each must be in (0, 1)")
    top = max(limits)
    n = int(np.floor(top / step + 1e-9))
    grid = np.concatenate([np.arange(n + 1) * step, np.asarray(limits, dtype=np.float64)])
    return np.unique(np.round(grid, 12))


@dataclass
class _Order:
    """Genuine pairs in discard order with tie-block ends (shared by every fmr)."""

    order: np.ndarray  # pair indices, lowest quality first
    ends: np.ndarray  # last index (in order) of every tie block


def _discard_order(pair_q: np.ndarray) -> _Order:
    q = np.where(np.isnan(pair_q), -np.inf, pair_q)
    order = np.argsort(q, kind="stable")
    qs = q[order]
    ends = np.flatnonzero(np.append(qs[1:] != qs[:-1], True))
    return _Order(order, ends)


def _interp_rows(cw: np.ndarray, ce: np.ndarray, target: np.ndarray) -> np.ndarray:
    """E(target) per row: errors discarded once the cumulative weight is ``target``.

    cw, ce : (R, K) cumulative weight and errors at the tie-block ends; target : (R, G).
    Linear between block ends (ties averaged), 0 before the first block.
    """
    out = np.empty_like(target)
    for r in range(len(cw)):
        idx = np.searchsorted(cw[r], target[r], side="left")  # cw[idx-1] < target <= cw[idx]
        idx = np.minimum(idx, cw.shape[1] - 1)
        prev_w = np.where(idx > 0, cw[r, idx - 1], 0.0)
        prev_e = np.where(idx > 0, ce[r, idx - 1], 0.0)
        span = cw[r, idx] - prev_w
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(span > 0, (target[r] - prev_w) / span, 0.0)
        out[r] = prev_e + np.clip(frac, 0.0, 1.0) * (ce[r, idx] - prev_e)
    return out


def _curves(
    order: _Order,
    errors: list[np.ndarray],
    id_weights: bootstrap.ReplicateWeights,
    codes: np.ndarray,
    grid: np.ndarray,
) -> np.ndarray:
    """FNMR on ``grid`` per bootstrap row and error vector.

    id_weights : (B, G) weight of each identity; codes : (n,) identity of each pair (original
    order); errors : list of (n,) bool. Returns (len(errors), B, len(grid)).

    Only the prefix of the discard order that the largest grid fraction can reach is summed:
    a guess of its length is checked per replicate and widened to all pairs where too short.
    """
    B, G = id_weights.shape
    n = len(codes)
    out = np.empty((len(errors), B, len(grid)))
    codes_sorted = codes[order.order]
    errors_sorted = [e[order.order] for e in errors]
    # totals from per-identity sums (exact, cheap)
    pairs_per_id = np.bincount(codes, minlength=G).astype(np.float64)
    total_w = id_weights @ pairs_per_id  # (B,)
    total_e = [id_weights @ np.bincount(codes, weights=e, minlength=G) for e in errors]
    # float32 prefix sums are exact for integer weights below 2**24
    dtype = np.float32 if total_w.max() < 2**24 else np.float64
    guess = min(n, int(np.ceil(n * min(1.0, grid[-1] * _PREFIX_MARGIN + 0.02))) + 1)
    rows = np.arange(B)
    for length in (guess, n):
        if len(rows) == 0:
            break
        ends = order.ends[: np.searchsorted(order.ends, length - 1, side="right")]
        cut_in_block = len(ends) == 0 or ends[-1] != length - 1
        if cut_in_block:  # the prefix ends inside a tie block: valid only up to the block before
            ends = np.append(ends, length - 1)
        last_valid = len(ends) - 2 if cut_in_block else len(ends) - 1
        chunk = max(1, _CHUNK_VALUES // max(length, 1))
        short = []
        for s in range(0, len(rows), chunk):
            r = rows[s : s + chunk]
            w = id_weights.rows(r).astype(dtype, copy=False)[:, codes_sorted[:length]]
            cw = np.cumsum(w, axis=1)[:, ends]
            target = grid[None, :] * total_w[r, None]
            ok = _prefix_reaches(cw, target, last_valid, whole=length == n)
            left = total_w[r, None] - target
            for e_i, err in enumerate(errors_sorted):
                ce = np.cumsum(np.where(err[None, :length], w, 0), axis=1)[:, ends]
                removed = _interp_rows(cw.astype(np.float64), ce.astype(np.float64), target)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[e_i, r] = np.where(
                        left > 0, (total_e[e_i][r, None] - removed) / left, np.nan
                    )
            short.extend(r[~ok].tolist())
        rows = np.asarray(short, dtype=np.int64)
    return out


def _prefix_reaches(
    cw: np.ndarray, target: np.ndarray, last_valid: int, *, whole: bool
) -> np.ndarray:
    """Per replicate row of ``cw``: does the prefix reach the largest target at a block end?"""
    if whole:
        return np.ones(len(cw), bool)
    if last_valid < 0:
        return np.zeros(len(cw), bool)
    return cw[:, last_valid] >= target[:, -1]


def fnmr_curve(
    pair_q: np.ndarray, errors: np.ndarray, grid: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """FNMR(f) on ``grid`` for one quality and one error vector (unit weights by default).

    pair_q : (n,) pair quality, higher = better, NaN lowest; errors : (n,) bool, genuine score
    below the threshold. Ties are averaged (see the module docstring). Returns FNMR in [0, 1]
    per grid point (float64): the share of false non-matches among the pairs kept.
    """
    n = len(pair_q)
    w = np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, float))
    w = bootstrap.ReplicateWeights(w)
    # every pair its own "identity", so the weights are per pair
    return _curves(_discard_order(pair_q), [np.asarray(errors, bool)], w, np.arange(n), grid)[0, 0]


def _trapezoid(curves: np.ndarray, grid: np.ndarray, limit: float) -> np.ndarray:
    upto = grid <= limit + 1e-12
    return np.trapezoid(curves[..., upto], grid[upto], axis=-1)


def _percentile(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    """(low, high) of :func:`featnorm.analysis.bootstrap.percentile_interval` (NaN when too few
    replicates are finite)."""
    return bootstrap.percentile_interval(reps, confidence)[:2]


@dataclass
class EdcResult:
    """The EDC table (one row per quality, fmr, discard_limit) and the curves."""

    table: pd.DataFrame
    curves: pd.DataFrame


def edc(
    genuine_scores: np.ndarray,
    genuine_identity: np.ndarray,
    impostor_scores: np.ndarray,
    qualities: dict[str, np.ndarray],
    *,
    fmrs: list[float],
    limits: list[float],
    step: float,
    replicates: int,
    confidence: float,
    seed: int,
) -> EdcResult:
    """EDC, pAUC and cluster-bootstrap intervals of every quality proxy, plus the references.

    Parameters
    ----------
    genuine_scores : ndarray of shape (n,), float32
        Cosine similarity of each genuine pair.
    genuine_identity : ndarray of shape (n,)
        Identity (label) of each genuine pair: the bootstrap's cluster.
    impostor_scores : ndarray of shape (m,), float32
        Every impostor pair's score (for the thresholds only).
    qualities : dict of name -> ndarray of shape (n,), float64
        Pair quality per proxy, higher = better (already the min over the pair), NaN lowest.
        ``ideal`` and ``random`` are added here; the names must not clash with them.
    fmrs : list of float in (0, 1)
    limits : list of float in (0, 1)
        Discard limits of the pAUC.
    step : float
        Grid step of the discard fraction.
    replicates : int >= 1
    confidence : float in (0, 1)
    seed : int

    Returns
    -------
    EdcResult
        ``table``: quality, fmr, threshold, fmr_observed, discard_limit, pauc, ci_low, ci_high,
        n_genuine, n_impostor, n_identities, fnmr_at_0, n_no_quality, delta_vs_feature_norm,
        delta_ci_low, delta_ci_high, replicates. ``curves``: quality, fmr, discard_fraction,
        fnmr (the point estimate). A lower pAUC is better: the proxy discards the false
        non-matches first (``ideal`` is the floor, ``random`` = fnmr_at_0 x limit the baseline).

    References
    ----------
    Grother & Tabassi (2007), doi:10.1109/TPAMI.2007.1019; ISO/IEC 29794-1 (module docstring).
    """
    # long because: the docstring documents 10 parameters and 17 output columns; the body is short
    started = time.perf_counter()
    for name in (IDEAL, RANDOM):
        if name in qualities:
            raise ValueError(f"quality name {name!r} is reserved for a reference")
    scores = np.asarray(genuine_scores, dtype=np.float32)
    n = len(scores)
    if n == 0:
        raise ValueError("no genuine pairs: the EDC needs some")
    grid = discard_grid(limits, step)
    codes, _ = pd.factorize(np.asarray(genuine_identity), sort=True)
    n_ids = int(codes.max()) + 1
    rng = np.random.default_rng(seed)
    counts = bootstrap.ReplicateWeights.draw(n_ids, replicates=replicates, rng=rng).counts
    # row 0: the data itself; 1 byte per identity and replicate (the same draws as a dense
    # float64 matrix, whose rows are converted block by block in _curves)
    weights = bootstrap.ReplicateWeights(np.vstack([np.ones((1, n_ids), counts.dtype), counts]))
    thresholds = [threshold_at_fmr(impostor_scores, f) for f in fmrs]
    errors = [scores < np.float32(t) for t, _ in thresholds]
    fnmr0 = _fnmr_at_0(weights, codes, n_ids, errors)  # (F, 1+B)
    proxies = dict(qualities)
    proxies[IDEAL] = scores.astype(np.float64)  # lowest score first = error order
    paucs, curve_rows = _proxy_paucs(proxies, errors, weights, codes, grid, fmrs, limits)
    paucs[RANDOM] = np.stack([fnmr0 * lim for lim in limits], axis=1)
    curve_rows += _random_curves(fnmr0, grid, fmrs)
    counted = {"n_genuine": n, "n_impostor": len(impostor_scores), "n_identities": n_ids}
    counted["replicates"] = replicates
    rows = _pauc_rows(paucs, proxies, thresholds, fnmr0, fmrs, limits, confidence, counted)
    logger.info(
        "EDC of %d proxies on %d genuine / %d impostor pairs, %d replicates: %.1f s",
        len(proxies) + 1,
        n,
        len(impostor_scores),
        replicates,
        time.perf_counter() - started,
    )
    return EdcResult(
        pd.DataFrame(rows, columns=TABLE_COLUMNS),
        pd.concat(curve_rows, ignore_index=True)[CURVE_COLUMNS],
    )


def _fnmr_at_0(
    weights: bootstrap.ReplicateWeights, codes: np.ndarray, n_ids: int, errors: list[np.ndarray]
) -> np.ndarray:
    """FNMR without discarding, (F, 1+B): the weighted share of errors, per-identity counts."""
    total_w = weights @ np.bincount(codes, minlength=n_ids).astype(np.float64)
    return np.stack(
        [weights @ np.bincount(codes, weights=e, minlength=n_ids) / total_w for e in errors]
    )


def _random_curves(fnmr0: np.ndarray, grid: np.ndarray, fmrs: list[float]) -> list[pd.DataFrame]:
    """The random reference's curves: discarding at random leaves the FNMR where it was."""
    return [
        pd.DataFrame(
            {
                "quality": RANDOM,
                "fmr": fmr,
                "discard_fraction": grid,
                "fnmr": np.full(len(grid), fnmr0[f_i, 0]),
            }
        )
        for f_i, fmr in enumerate(fmrs)
    ]


def _proxy_paucs(
    proxies: dict[str, np.ndarray],
    errors: list[np.ndarray],
    weights: bootstrap.ReplicateWeights,
    codes: np.ndarray,
    grid: np.ndarray,
    fmrs: list[float],
    limits: list[float],
) -> tuple[dict[str, np.ndarray], list[pd.DataFrame]]:
    """pAUC (F, L, 1+B) of every proxy and its point-estimate curves (one frame per fmr)."""
    n = len(codes)
    paucs: dict[str, np.ndarray] = {}  # name -> (F, L, 1+B)
    curve_rows = []
    for name, q in proxies.items():
        q = np.asarray(q, dtype=np.float64)
        if len(q) != n:
            raise ValueError(f"quality {name!r} has {len(q)} values for {n} genuine pairs")
        curves = _curves(_discard_order(q), errors, weights, codes, grid)  # (F, 1+B, G)
        paucs[name] = np.stack([_trapezoid(curves, grid, lim) for lim in limits], axis=1)
        for f_i, fmr in enumerate(fmrs):
            curve_rows.append(
                pd.DataFrame(
                    {"quality": name, "fmr": fmr, "discard_fraction": grid, "fnmr": curves[f_i, 0]}
                )
            )
    return paucs, curve_rows


def _pauc_rows(
    paucs: dict[str, np.ndarray],
    proxies: dict[str, np.ndarray],
    thresholds: list[tuple[float, float]],
    fnmr0: np.ndarray,
    fmrs: list[float],
    limits: list[float],
    confidence: float,
    counted: dict[str, int],
) -> list[dict]:
    """EDC table rows per (quality, fmr, limit): pAUC, interval, difference to the raw norm."""
    rows = []
    raw = paucs.get(RAW_NORM)
    for name, p in paucs.items():
        n_missing = int(np.isnan(proxies[name]).sum()) if name in proxies else 0
        for f_i, fmr in enumerate(fmrs):
            for l_i, lim in enumerate(limits):
                lo, hi = _percentile(p[f_i, l_i, 1:], confidence)
                row = {
                    "quality": name,
                    "fmr": fmr,
                    "threshold": thresholds[f_i][0],
                    "fmr_observed": thresholds[f_i][1],
                    "discard_limit": lim,
                    "pauc": p[f_i, l_i, 0],
                    "ci_low": lo,
                    "ci_high": hi,
                    **counted,
                    "fnmr_at_0": fnmr0[f_i, 0],
                    "n_no_quality": n_missing,
                }
                if raw is not None:
                    d = p[f_i, l_i] - raw[f_i, l_i]
                    row["delta_vs_feature_norm"] = d[0]
                    row["delta_ci_low"], row["delta_ci_high"] = _percentile(d[1:], confidence)
                else:
                    row["delta_vs_feature_norm"] = row["delta_ci_low"] = np.nan
                    row["delta_ci_high"] = np.nan
                rows.append(row)
    return rows
