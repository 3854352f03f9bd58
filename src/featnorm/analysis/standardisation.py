"""Within-class standardisations of the feature norm: one function per policy.

Each takes per-image arrays (norm ``x`` of shape (N,), class index ``codes`` of shape (N,)) and
returns a per-image array, NaN where a row is excluded (its class is too small or has no
spread), plus what it excluded or estimated. The norm is meant to be higher for better images;
every policy keeps that direction.

* ``within_class_z``: the seed's z-score ``(x - class mean) / class std``;
* ``shrinkage_z``: empirical-Bayes z-score about the class's own mean whose class variance is
  moderated toward a prior variance as limma does it (Smyth 2004, doi:10.2202/1544-6115.1027),
  defined for every class;
* ``within_class_rank``: percentile of the image inside its class;
* ``class_size_residual``: the norm minus its fitted polynomial trend in log class size.

``standardise`` adds the policies' columns to the merged per-image table.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import special

from featnorm.analysis.bootstrap import class_codes
from featnorm.analysis.columns import NORM_COLUMN, norm_columns

logger = logging.getLogger(__name__)

__all__ = [
    "class_size_residual",
    "fit_f_dist",
    "standardise",
    "shrinkage_z",
    "within_class_rank",
    "within_class_z",
]

# A variance below this (relative to the squared scale of the data) counts as zero.
_REL_EPS = 1e-12
# limma's fitFDist raises exact-zero variances to this fraction of the median before log().
_ZERO_VARIANCE_OFFSET = 1e-5


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


def fit_f_dist(s2: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """Prior variance and prior degrees of freedom of sample variances (Smyth 2004, §6.2).

    Method of moments on ``log s2``: with ``e_g = log s2_g - digamma(d_g / 2) + log(d_g / 2)``,
    ``mean(e)`` estimates ``log s0^2 - digamma(d0 / 2) + log(d0 / 2)`` and
    ``var(e, ddof=1) - mean(trigamma(d_g / 2))`` estimates ``trigamma(d0 / 2)``. When that
    excess variance is not positive the variances agree more than chance allows and
    ``d0 = inf``, ``s0^2 = exp(mean(e))``. Like limma's ``fitFDist`` (no covariate), sample
    variances of exactly zero are raised to 1e-5 times the median before the logarithm.

    Parameters
    ----------
    s2 : ndarray of shape (G,), float
        Sample variances (ddof = 1), one per class; only finite, non-negative entries with
        ``df > 0`` are used.
    df : ndarray of shape (G,), float
        Their degrees of freedom, ``n_g - 1``.

    Returns
    -------
    s0_squared : float
        Prior (scale) variance; NaN when no class has ``df > 0``.
    d0 : float
        Prior degrees of freedom, in (0, inf]; NaN when no class has ``df > 0``.
    """
    s2 = np.asarray(s2, dtype=np.float64)
    df = np.asarray(df, dtype=np.float64)
    ok = np.isfinite(s2) & np.isfinite(df) & (df > 1e-15) & (s2 > -1e-15)
    s2, df = np.maximum(s2[ok], 0.0), df[ok]
    if len(s2) == 0:
        return np.nan, np.nan
    if len(s2) == 1:
        return float(s2[0]), 0.0
    median = float(np.median(s2))
    if median == 0:
        logger.warning(
            "more than half of the class variances are exactly zero: the prior "
            "variance is unreliable"
        )
        median = 1.0
    s2 = np.maximum(s2, _ZERO_VARIANCE_OFFSET * median)
    e = np.log(s2) - special.digamma(df / 2) + np.log(df / 2)
    e_mean = float(np.mean(e))
    excess = float(np.var(e, ddof=1) - np.mean(special.polygamma(1, df / 2)))
    if excess > 0:
        d0 = 2 * _trigamma_inverse(excess)
        return float(np.exp(e_mean + special.digamma(d0 / 2) - np.log(d0 / 2))), d0
    return float(np.exp(e_mean)), np.inf


def shrinkage_z(x: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, dict]:
    """Empirical-Bayes z-score: the class's own mean, a moderated class variance (limma).

    ``z_i = (x_i - xbar_g) / sqrt(s2_mod_g)`` with ``xbar_g`` the class's own mean and
    ``s2_mod_g = (d0 s0^2 + d_g s2_g) / (d0 + d_g)`` (Smyth 2004, eq. 7 / limma's
    ``squeezeVar``), ``d_g = n_g - 1``, ``s2_g`` the sample variance (ddof = 1), and
    ``(s0^2, d0)`` from ``fit_f_dist`` over the classes with ``d_g > 0``. With ``d0 = inf``
    every class gets ``s0^2``. Only the variance is pooled: the class mean is not shrunk toward
    the grand mean, because that would bring back the between-class variation that
    standardising exists to remove.

    A class of one image has ``d_g = 0``, so its variance is ``s0^2`` and its z is 0 (the image
    is its class mean); no class is excluded.

    Parameters
    ----------
    x : ndarray of shape (N,), float
        Feature norms (higher meant to be better); NaN rows are ignored and stay NaN.
    codes : ndarray of shape (N,), int
        Class index in ``0 .. G - 1``.

    Returns
    -------
    z : ndarray of shape (N,), float64
        Same direction as x; NaN only where x is NaN or no class has two finite norms.
    info : dict
        ``prior_variance`` (s0^2), ``prior_df`` (d0, ``inf`` allowed) and ``classes_fitted``.
    """
    x = np.asarray(x, dtype=np.float64)
    codes = np.asarray(codes)
    g = int(codes.max()) + 1 if len(codes) else 0
    n, mean, ss = _class_moments(x, codes, g)
    df = np.maximum(n - 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(df > 0, ss / np.maximum(df, 1), np.nan)
    s0_sq, d0 = fit_f_dist(s2, df)
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.isinf(d0):
            moderated = np.full(g, s0_sq)
        else:
            moderated = (d0 * s0_sq + df * np.nan_to_num(s2)) / (d0 + df)
        z = (x - mean[codes]) / np.sqrt(moderated[codes])
    info = {
        "prior_variance": float(s0_sq),
        "prior_df": float(d0),
        "classes_fitted": int(np.sum(df > 0)),
    }
    logger.info(
        "shrinkage z: s0^2 = %.6g, d0 = %.6g from %d classes", s0_sq, d0, info["classes_fitted"]
    )
    return z, info


def within_class_rank(
    x: np.ndarray, codes: np.ndarray, *, min_class_size: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Within-class percentile rank ``(average rank - 0.5) / n_g`` in (0, 1).

    Same direction as x (the highest norm of a class ranks nearest 1). Rows of classes with
    fewer than ``min_class_size`` finite rows are NaN and flagged ``excluded`` (a single image
    has no rank to speak of). Ties get the average rank. Returns (rank, excluded) as
    :func:`within_class_z` does.
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

    Least squares over all finite rows (each image weighs the same). ``class_size`` is the
    image count of each row's class (>= 1). Returns the residuals (units of x, same direction;
    NaN where x is NaN) and the polynomial coefficients, highest power first, in
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
        logger.warning(
            "only %d distinct class sizes: class-size trend fitted with degree %d instead of %d",
            distinct,
            deg,
            degree,
        )
    if not ok.any():
        return np.full(len(x), np.nan), np.full(degree + 1, np.nan)
    coef = np.polyfit(logn[ok], x[ok], deg)
    return x - np.polyval(coef, logn), coef


# the per-image table
# ---------------------------------------------------------------------------------------------


def standardise(
    samples: pd.DataFrame,
    *,
    policies: list[str],
    min_class_size: int,
    ddof: int,
    residual_degree: int,
) -> tuple[pd.DataFrame, dict]:
    """Add one standardised norm column per policy (``feature_norm_<policy>``).

    Parameters
    ----------
    samples : DataFrame
        From ``merge_samples``. Norms of rows whose ``embed_status`` is not ok are NaN and stay
        NaN in every policy column.
    policies : list of {"z", "shrinkage_z", "rank", "residual"}
        ``z``: the seed's ``(norm - class mean) / class std`` with ``ddof``; classes with fewer
        than ``min_class_size`` norms or std = 0 are NaN and flagged in ``z_excluded``.
        ``shrinkage_z``: z about the class's own mean with limma's moderated class variance
        (``standardisation.shrinkage_z``), defined for every class.
        ``rank``: within-class percentile in (0, 1); classes below ``min_class_size`` NaN.
        ``residual``: norm minus the fitted trend ``poly(log class_size, residual_degree)``.
    min_class_size, ddof, residual_degree : int

    Returns
    -------
    samples : DataFrame
        A copy with the policy columns (float64) and ``z_excluded`` (bool; rows of classes the
        z-score leaves out).
    info : dict
        What each policy estimated or excluded (for metadata and the summary).
    """
    norm_columns(policies)
    if min_class_size < 1:
        raise ValueError(f"analysis.min_class_size = {min_class_size} must be >= 1 (e.g. 2)")
    out = samples.copy()
    codes = class_codes(out["label"])
    x = out[NORM_COLUMN].to_numpy(np.float64)
    info: dict = {"ddof": ddof, "min_class_size": min_class_size}
    z, excluded = within_class_z(x, codes, ddof=ddof, min_class_size=min_class_size)
    out["z_excluded"] = excluded
    info["z_excluded_classes"] = int(out.loc[excluded, "label"].nunique())
    info["z_excluded_images"] = int(excluded.sum())
    if "z" in policies:
        out[f"{NORM_COLUMN}_z"] = z
    _add_other_policies(out, x, codes, policies, info, residual_degree=residual_degree)
    logger.info(
        "standardised %d images with %s; z excludes %d classes (%d images)",
        len(out),
        policies,
        info["z_excluded_classes"],
        info["z_excluded_images"],
    )
    return out, info


def _add_other_policies(
    out: pd.DataFrame,
    x: np.ndarray,
    codes: np.ndarray,
    policies: list[str],
    info: dict,
    *,
    residual_degree: int,
) -> None:
    """Add the shrinkage_z, rank and residual columns of ``policies`` to ``out`` (in place), and
    what they estimated to ``info`` (see :func:`standardise`)."""
    min_class_size = info["min_class_size"]
    if "shrinkage_z" in policies:
        out[f"{NORM_COLUMN}_shrinkage_z"], info["shrinkage_z"] = shrinkage_z(x, codes)
    if "rank" in policies:
        out[f"{NORM_COLUMN}_rank"], _ = within_class_rank(x, codes, min_class_size=min_class_size)
    if "residual" in policies:
        resid, coef = class_size_residual(x, out["class_size"].to_numpy(), degree=residual_degree)
        out[f"{NORM_COLUMN}_residual"] = resid
        info["residual_coefficients"] = [float(c) for c in coef]
