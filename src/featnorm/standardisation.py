"""Within-class standardisations of the feature norm: one function per policy.

Each takes per-image arrays (norm ``x`` of shape (N,), class index ``codes`` of shape (N,)) and
returns a per-image array, NaN where a row is excluded (its class is too small or has no
spread), plus what it excluded or estimated. The norm is meant to be higher for better images;
every policy keeps that direction.

* ``within_class_z``: the seed's z-score ``(x - class mean) / class std``;
* ``shrinkage_z``: empirical-Bayes z-score whose class variance is moderated toward the pooled
  variance (Smyth 2004, doi:10.2202/1544-6115.1027), defined for every class;
* ``within_class_rank``: percentile of the image inside its class;
* ``class_size_residual``: the norm minus its fitted polynomial trend in log class size.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import special

logger = logging.getLogger(__name__)

__all__ = ["POLICIES", "class_size_residual", "shrinkage_z", "within_class_rank", "within_class_z"]

# policy name -> suffix of its column: feature_norm_<suffix>
POLICIES = ("z", "shrinkage_z", "rank", "residual")
# A variance below this (relative to the squared scale of the data) counts as zero.
_REL_EPS = 1e-12


# standardisation policies: per-image arrays in, per-image arrays out (NaN where excluded)
# ---------------------------------------------------------------------------------------------


def _class_moments(x: np.ndarray, codes: np.ndarray, g: int):
    ok = np.isfinite(x)
    n = np.bincount(codes[ok], minlength=g).astype(np.float64)
    s1 = np.bincount(codes[ok], weights=x[ok], minlength=g)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
    dev = np.where(ok, x - mean[codes], 0.0)
    ss = np.bincount(codes, weights=dev * dev, minlength=g)
    return n, mean, ss


def within_class_z(
    x: np.ndarray, codes: np.ndarray, *, ddof: int = 1, min_class_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """The seed's per-class z-score ``(x - class mean) / class std``.

    Parameters
    ----------
    x : ndarray of shape (N,), float
        Feature norms (higher meant to be better); NaN rows are ignored and stay NaN.
    codes : ndarray of shape (N,), int
        Class index in ``0 .. G - 1``.
    ddof : int
        Delta degrees of freedom of the class std (1: sample std, 0: population std as
        ``numpy.std``'s default).
    min_class_size : int
        Classes with fewer finite rows than this, or with std = 0, are excluded.

    Returns
    -------
    z : ndarray of shape (N,), float64
        NaN for excluded classes and NaN inputs.
    excluded : ndarray of shape (N,), bool
        True for rows of excluded classes (too small or constant).
    """
    x = np.asarray(x, dtype=np.float64)
    codes = np.asarray(codes)
    g = int(codes.max()) + 1 if len(codes) else 0
    n, mean, ss = _class_moments(x, codes, g)
    min_size = max(min_class_size, ddof + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(ss / (n - ddof))
    bad_class = (n < min_size) | ~(sd > _REL_EPS * np.maximum(np.abs(mean), 1.0))
    excluded = bad_class[codes]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (x - mean[codes]) / sd[codes]
    z[excluded] = np.nan
    return z, excluded


def _trigamma_inverse(value: float) -> float:
    """Solve ``polygamma(1, t) = value`` for t > 0 by Newton's method (Smyth 2004, App.)."""
    if value > 1e7:
        return 1.0 / np.sqrt(value)
    if value < 1e-6:
        return 1.0 / value
    t = 0.5 + 1.0 / value
    for _ in range(50):
        tri = special.polygamma(1, t)
        step = tri * (1 - tri / value) / special.polygamma(2, t)
        t += step
        if -step / t < 1e-8:
            break
    return float(t)


def shrinkage_z(x: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, dict]:
    """Empirical-Bayes z-score: class mean and variance both pooled toward the whole data set.

    ``z_i = (x_i - m_g) / s_g`` where

    * ``m_g = B_g mu + (1 - B_g) xbar_g``, ``B_g = (s2_w / n_g) / (s2_w / n_g + tau2)``: the
      normal-normal posterior mean of the class mean, with ``mu`` the grand mean of class
      means, ``s2_w`` the pooled within-class variance and ``tau2`` the between-class variance
      of true means by the method of moments, ``var(xbar_g) - mean(s2_w / n_g)``, floored at 0.
    * ``s2_g = (d0 s2_w + d_g s2_obs_g) / (d0 + d_g)`` with ``d_g = n_g - 1``: Smyth's (2004)
      moderated variance; the prior degrees of freedom ``d0`` are estimated from the spread of
      ``log s2_obs_g`` (method of moments with trigamma), d0 = inf when the classes agree.

    A class of one image gets ``s2_g = s2_w`` and a mean pulled strongly to ``mu``, so no class
    is excluded; small classes are pooled toward global behaviour instead of producing
    degenerate z-scores.

    Returns
    -------
    z : ndarray of shape (N,), float64
        NaN only where x is NaN (or everything is constant).
    info : dict
        The estimated ``mu``, ``s2_within``, ``tau2`` and ``prior_df``.
    """
    x = np.asarray(x, dtype=np.float64)
    codes = np.asarray(codes)
    g = int(codes.max()) + 1 if len(codes) else 0
    n, mean, ss = _class_moments(x, codes, g)
    present = n > 0
    df = np.maximum(n - 1, 0)
    total_df = df[present].sum()
    s2_w = float(ss[present].sum() / total_df) if total_df > 0 else np.nan
    mu = float(np.mean(mean[present])) if present.any() else np.nan
    if present.sum() > 1 and np.isfinite(s2_w):
        tau2 = max(float(np.var(mean[present], ddof=1) - np.mean(s2_w / n[present])), 0.0)
    else:
        tau2 = 0.0
    # moderated variances (Smyth 2004, section 6.2)
    has_var = (df > 0) & (ss > 0)
    prior_df = np.inf
    if has_var.sum() > 2:
        d = df[has_var]
        e = np.log(ss[has_var] / d) - special.digamma(d / 2) + np.log(d / 2)
        excess = np.var(e, ddof=1) - np.mean(special.polygamma(1, d / 2))
        if excess > 0:
            prior_df = 2 * _trigamma_inverse(excess)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2_obs = np.where(df > 0, ss / np.maximum(df, 1), 0.0)
        if np.isinf(prior_df):
            s2 = np.full(g, s2_w)
        else:
            s2 = (prior_df * s2_w + df * s2_obs) / (prior_df + df)
        noise = s2_w / n
        b = noise / (noise + tau2) if tau2 > 0 else np.ones(g)
        m = b * mu + (1 - b) * mean
        z = (x - m[codes]) / np.sqrt(s2[codes])
    info = {"mu": mu, "s2_within": s2_w, "tau2": tau2, "prior_df": float(prior_df)}
    return z, info


def within_class_rank(
    x: np.ndarray, codes: np.ndarray, *, min_class_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Within-class percentile rank ``(average rank - 0.5) / n_g`` in (0, 1).

    Rows of classes with fewer than ``min_class_size`` finite rows are NaN and flagged
    ``excluded`` (a single image has no rank to speak of). Ties get the average rank.
    """
    x = np.asarray(x, dtype=np.float64)
    codes = np.asarray(codes)
    g = int(codes.max()) + 1 if len(codes) else 0
    ok = np.isfinite(x)
    n = np.bincount(codes[ok], minlength=g)
    out = np.full(len(x), np.nan)
    idx = np.flatnonzero(ok)
    frame = pd.DataFrame({"c": codes[idx], "x": x[idx]})
    ranks = frame.groupby("c")["x"].rank(method="average").to_numpy()
    out[idx] = (ranks - 0.5) / n[codes[idx]]
    excluded = (n < min_class_size)[codes]
    out[excluded] = np.nan
    return out, excluded


def class_size_residual(
    x: np.ndarray, class_size: np.ndarray, *, degree: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Residual of x after the fitted class-size trend ``x ~ poly(log n_class, degree)``.

    Least squares over all finite rows (each image weighs the same). Returns the residuals
    (NaN where x is NaN) and the polynomial coefficients, highest power first, in
    ``log(class size)``.
    """
    if degree < 0:
        raise ValueError(f"degree = {degree} must be >= 0 (e.g. 2)")
    x = np.asarray(x, dtype=np.float64)
    logn = np.log(np.asarray(class_size, dtype=np.float64))
    ok = np.isfinite(x) & np.isfinite(logn)
    distinct = len(np.unique(logn[ok]))
    deg = min(degree, max(distinct - 1, 0))
    if deg < degree:
        logger.warning("only %d distinct class sizes: class-size trend fitted with degree %d "
                       "instead of %d", distinct, deg, degree)
    if not ok.any():
        return np.full(len(x), np.nan), np.full(degree + 1, np.nan)
    coef = np.polyfit(logn[ok], x[ok], deg)
    return x - np.polyval(coef, logn), coef
