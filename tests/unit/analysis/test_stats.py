"""Tests of featnorm.analysis.stats: known answers, scipy agreement, bootstrap coverage, degenerate input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from featnorm import options
from featnorm.analysis import bootstrap, contrasts, standardisation, stats


def _grouped(rng, *, n_classes, rho_between, rho_within, var_between=1.0, var_within=1.0):
    """x, y, codes with class random effects; population Pearson r is known in closed form."""
    sizes = rng.integers(2, 30, size=n_classes)
    codes = np.repeat(np.arange(n_classes), sizes)
    cb = [[var_between, rho_between * var_between], [rho_between * var_between, var_between]]
    cw = [[var_within, rho_within * var_within], [rho_within * var_within, var_within]]
    a = rng.multivariate_normal([0, 0], cb, size=n_classes)[codes]
    e = rng.multivariate_normal([0, 0], cw, size=len(codes))
    xy = a + e
    true_r = (rho_between * var_between + rho_within * var_within) / (var_between + var_within)
    return xy[:, 0], xy[:, 1], codes, true_r


@pytest.mark.parametrize(
    "method,ref",
    [("pearson", sps.pearsonr), ("spearman", sps.spearmanr), ("kendall", sps.kendalltau)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_point_estimate_matches_scipy_on_iid_data(method, ref, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=400).astype(dtype)
    y = (0.4 * x + rng.normal(size=400)).astype(dtype)
    codes = np.arange(400)
    res = stats.correlate(x, y, codes, method=method, weights=None)
    expected = ref(x.astype(np.float64), y.astype(np.float64))
    assert res.r == pytest.approx(expected.statistic, abs=1e-10)
    if method == "kendall":
        expected = ref(x.astype(np.float64), y.astype(np.float64), method="asymptotic")
    assert res.p_value_iid == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-12)
    assert "no bootstrap" in res.flag


@pytest.mark.parametrize("ties", ["none", "both", "x only", "y only"])
def test_kendall_scores_equal_brute_force_with_ties(ties):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=300), rng.normal(size=300)
    if ties in ("both", "x only"):
        x = np.round(x)
    if ties in ("both", "y only"):
        y = np.round(2 * y)
    s, tau = stats.kendall_scores(x, y)
    brute = np.array([np.sum(np.sign(x[i] - x) * np.sign(y[i] - y)) for i in range(len(x))])
    np.testing.assert_array_equal(s, brute)
    assert tau == pytest.approx(sps.kendalltau(x, y).statistic, abs=1e-12)


def test_pearson_recovers_analytically_known_correlation():
    """Bivariate normal with rho = 0.6, n = 20000: r lies within 0.02 (about 3.5 SE)."""
    rng = np.random.default_rng(2)
    xy = rng.multivariate_normal([0, 0], [[1, 0.6], [0.6, 1]], size=20000)
    codes = np.arange(20000) // 10
    w = bootstrap.cluster_bootstrap_weights(2000, replicates=200, rng=rng)
    res = stats.correlate(xy[:, 0], xy[:, 1], codes, method="pearson", weights=w)
    assert res.r == pytest.approx(0.6, abs=0.02)
    assert res.ci_low < 0.6 < res.ci_high


# population values for jointly normal x, y with Pearson rho (Kruskal 1958)
_RANK_TRUTH = {
    "pearson": lambda r: r,
    "spearman": lambda r: 6 / np.pi * np.arcsin(r / 2),
    "kendall": lambda r: 2 / np.pi * np.arcsin(r),
}


@pytest.mark.parametrize("method", options.CORRELATION_METHODS)
def test_cluster_bootstrap_covers_true_r_and_naive_interval_does_not(method):
    """Coverage over 200 simulations of grouped data (100 classes of 2-29 images).

    Strong class effects (between-class rho 0.8, within-class rho 0) make images of a class
    dependent; x and y stay jointly normal, so the population coefficient is known. Nominal
    95 %: the cluster bootstrap must cover within [0.88, 0.99] (Monte Carlo SE 0.015, and
    percentile intervals from 100 clusters run about 0.02 narrow: measured 0.92 / 0.925 / 0.90
    for Pearson / Spearman / Kendall with this seed), while the naive i.i.d. interval covers
    clearly less (< 0.8; measured about 0.6). Seeded; the counts depend on the seed.
    """
    rng = np.random.default_rng(3)
    covered = naive = 0
    sims = 200
    for _ in range(sims):
        x, y, codes, true_r = _grouped(rng, n_classes=100, rho_between=0.8, rho_within=0.0)
        truth = _RANK_TRUTH[method](true_r)
        w = bootstrap.cluster_bootstrap_weights(100, replicates=400, rng=rng)
        res = stats.correlate(x, y, codes, method=method, weights=w)
        covered += res.ci_low <= truth <= res.ci_high
        naive += res.naive_ci_low <= truth <= res.naive_ci_high
    assert 0.88 <= covered / sims <= 0.99
    assert naive / sims < 0.8


def test_bootstrap_weights_draw_each_replicate_with_replacement():
    rng = np.random.default_rng(4)
    w = bootstrap.cluster_bootstrap_weights(50, replicates=30, rng=rng)
    assert w.shape == (30, 50)
    np.testing.assert_array_equal(w.sum(axis=1), 50)
    assert (w == 0).any() and (w > 1).any()


def test_fisher_z_interval_by_hand():
    lo, hi = stats.fisher_z_interval(0.5, 103, confidence=0.95)
    half = sps.norm.ppf(0.975) / 10.0
    assert lo == pytest.approx(np.tanh(np.arctanh(0.5) - half))
    assert hi == pytest.approx(np.tanh(np.arctanh(0.5) + half))
    assert np.isnan(stats.fisher_z_interval(0.5, 3)[0])


def test_partial_correlation_equals_correlation_of_residuals():
    rng = np.random.default_rng(5)
    z = rng.normal(size=500)
    x = z + rng.normal(size=500)
    y = -z + 0.3 * x + rng.normal(size=500)
    rx = x - np.polyval(np.polyfit(z, x, 1), z)
    ry = y - np.polyval(np.polyfit(z, y, 1), z)
    res = stats.partial_correlation(x, y, z, np.arange(500) // 5, weights=None)
    assert res.r == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-10)


def _varies_in_one_class_only():
    """x is 0 outside class 0 of 10, so a replicate that misses class 0 (about (9/10)^10 = 35%
    of them) has a constant x and no correlation."""
    rng = np.random.default_rng(12)
    codes = np.repeat(np.arange(10), 5)
    x = np.where(codes == 0, rng.normal(size=50), 0.0)
    w = bootstrap.cluster_bootstrap_weights(10, replicates=200, rng=rng)
    return x, rng.normal(size=50), rng.normal(size=50), codes, w


@pytest.mark.parametrize("statistic", ["correlate", "partial_correlation"])
def test_too_few_defined_replicates_hide_the_interval_and_say_so(statistic):
    """Both statistics share one rule: under 90% finite replicates, no interval and a flag."""
    x, y, z, codes, w = _varies_in_one_class_only()
    if statistic == "correlate":
        res = stats.correlate(x, y, codes, method="pearson", weights=w)
    else:
        res = stats.partial_correlation(x, y, z, codes, weights=w)
    assert np.isfinite(res.r) and np.isnan(res.ci_low) and np.isnan(res.ci_high)
    assert 0 < res.replicates < 0.9 * 200
    assert np.isnan(res.p_value)
    assert res.flag == (
        f"only {res.replicates} of 200 bootstrap replicates defined; interval not reported"
    )


def test_feature_norm_z_ignores_class_shift():
    rng = np.random.default_rng(6)
    codes = np.repeat(np.arange(5), 8)
    x = rng.normal(size=40)
    shifted = x + np.array([0, 10, -3, 7, 100])[codes]
    z1, _ = standardisation.within_class_z(x, codes)
    z2, _ = standardisation.within_class_z(shifted, codes)
    np.testing.assert_allclose(z1, z2, atol=1e-9)


def test_within_class_z_by_hand_and_exclusions():
    x = np.array([1.0, 3.0, 5.0, 2.0, 2.0, 9.0, np.nan])
    codes = np.array([0, 0, 0, 1, 1, 2, 0])
    z, excluded = standardisation.within_class_z(x, codes, ddof=1, min_class_size=2)
    np.testing.assert_allclose(z[:3], [-1.0, 0.0, 1.0])  # mean 3, sample std 2
    assert excluded.tolist() == [False, False, False, True, True, True, False]
    assert np.isnan(z[3:]).all()  # class 1 constant, class 2 too small, NaN stays NaN
    z0, _ = standardisation.within_class_z(x, codes, ddof=0)
    np.testing.assert_allclose(z0[:3], np.array([-2.0, 0.0, 2.0]) / np.sqrt(8 / 3))


def test_shrinkage_z_defined_for_single_image_classes_and_near_z_for_large():
    rng = np.random.default_rng(7)
    sizes = np.r_[np.full(50, 200), np.ones(20, dtype=int)]
    codes = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.normal(size=len(codes)) + rng.normal(size=len(sizes))[codes]
    zs, info = standardisation.shrinkage_z(x, codes)
    z, _ = standardisation.within_class_z(x, codes)
    assert np.isfinite(zs).all()
    big = codes < 50
    assert np.corrcoef(zs[big], z[big])[0, 1] > 0.99
    assert np.all(zs[~big] == 0)  # a one-image class is its own mean
    assert info["classes_fitted"] == 50


def _limma_by_hand(s2, d):
    """Smyth (2004) §6.2 written out independently: moments of log s2, trigamma inverted by
    root finding (scipy.optimize.brentq), not featnorm's Newton iteration."""
    from scipy import optimize, special

    e = np.log(s2) - special.digamma(d / 2) + np.log(d / 2)
    excess = np.sum((e - e.mean()) ** 2) / (len(e) - 1) - np.mean(special.polygamma(1, d / 2))
    if excess <= 0:
        return np.exp(e.mean()), np.inf
    half_d0 = optimize.brentq(
        lambda t: special.polygamma(1, t) - excess, 1e-10, 1e10, xtol=1e-14, rtol=1e-14
    )
    d0 = 2 * half_d0
    return np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2)), d0


def test_shrinkage_z_equals_limma_formulas_worked_independently():
    """Classes of 2-30 images with unequal true variances (prior df finite): s0^2, d0, the
    moderated variance (d0 s0^2 + d s^2) / (d0 + d) and z about the class's own mean."""
    rng = np.random.default_rng(21)
    sizes = rng.integers(1, 31, size=60)
    codes = np.repeat(np.arange(60), sizes)
    sd = np.sqrt(4 / rng.chisquare(6, size=60))  # scaled-inverse-chi2 variances: d0 = 6
    x = 20 + rng.normal(size=60)[codes] * 3 + rng.normal(size=len(codes)) * sd[codes]
    z, info = standardisation.shrinkage_z(x, codes)
    frame = {g: x[codes == g] for g in range(60)}
    multi = [g for g in frame if len(frame[g]) > 1]
    s2 = np.array([np.var(frame[g], ddof=1) for g in multi])
    d = np.array([len(frame[g]) - 1.0 for g in multi])
    s0_sq, d0 = _limma_by_hand(s2, d)
    assert np.isfinite(d0) and 1 < d0 < 100
    assert info["prior_variance"] == pytest.approx(s0_sq, rel=1e-9)
    assert info["prior_df"] == pytest.approx(d0, rel=1e-7)
    for g, values in frame.items():
        dg = len(values) - 1.0
        s2g = np.var(values, ddof=1) if dg > 0 else 0.0
        moderated = (d0 * s0_sq + dg * s2g) / (d0 + dg)
        expected = (values - values.mean()) / np.sqrt(moderated)
        np.testing.assert_allclose(z[codes == g], expected, rtol=1e-7, atol=1e-9)


def test_shrinkage_z_with_infinite_prior_df_by_hand():
    """Every class is {m - 1, m, m + 1}: s^2 = 1, d = 2, so the log-variances have no spread,
    d0 = inf and s0^2 = exp(log 1 - digamma(1) + log 1) = exp(Euler's gamma) = 1.7810724180;
    z = (x - class mean) / sqrt(s0^2) = +-0.7493060 and 0."""
    codes = np.repeat(np.arange(4), 3)
    x = np.array([-1.0, 0.0, 1.0] * 4) + np.repeat([10.0, 20.0, -5.0, 0.5], 3)
    z, info = standardisation.shrinkage_z(x, codes)
    assert info["prior_df"] == np.inf
    assert info["prior_variance"] == pytest.approx(1.7810724180, abs=1e-9)
    np.testing.assert_allclose(z, np.tile([-0.7493060, 0.0, 0.7493060], 4), atol=1e-7)


def test_shrinkage_z_class_means_are_zero_so_no_between_class_variation_returns():
    rng = np.random.default_rng(22)
    codes = np.repeat(np.arange(30), rng.integers(2, 15, size=30))
    x = rng.normal(size=len(codes)) + 5 * rng.normal(size=30)[codes]
    z, _ = standardisation.shrinkage_z(x, codes)
    means = np.bincount(codes, z) / np.bincount(codes)
    np.testing.assert_allclose(means, 0, atol=1e-12)


def test_within_class_rank_by_hand():
    x = np.array([3.0, 1.0, 2.0, 5.0, 5.0, 7.0])
    codes = np.array([0, 0, 0, 1, 1, 2])
    r, excluded = standardisation.within_class_rank(x, codes, min_class_size=2)
    np.testing.assert_allclose(r[:5], [2.5 / 3, 0.5 / 3, 1.5 / 3, 0.5, 0.5])
    assert excluded.tolist() == [False] * 5 + [True] and np.isnan(r[5])


def test_class_size_residual_removes_the_trend():
    sizes = np.repeat([2, 5, 20, 100, 400], 30)
    rng = np.random.default_rng(8)
    x = 3 + 0.5 * np.log(sizes) + 0.01 * rng.normal(size=len(sizes))
    resid, coef = standardisation.class_size_residual(x, sizes, degree=1)
    assert coef[0] == pytest.approx(0.5, abs=0.01)
    assert abs(np.corrcoef(resid, np.log(sizes))[0, 1]) < 1e-6


@pytest.mark.parametrize("method", options.CORRELATION_METHODS)
def test_single_class_is_flagged_not_crashed(method):
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=50), rng.normal(size=50)
    w = bootstrap.cluster_bootstrap_weights(1, replicates=20, rng=rng)
    res = stats.correlate(x, y, np.zeros(50, dtype=int), method=method, weights=w)
    assert np.isfinite(res.r) and np.isnan(res.ci_low) and "single class" in res.flag


@pytest.mark.parametrize("method", options.CORRELATION_METHODS)
def test_constant_norm_is_flagged(method):
    rng = np.random.default_rng(10)
    codes = np.repeat(np.arange(10), 5)
    w = bootstrap.cluster_bootstrap_weights(10, replicates=20, rng=rng)
    res = stats.correlate(np.full(50, 3.0), rng.normal(size=50), codes, method=method, weights=w)
    assert np.isnan(res.r) and "constant" in res.flag


def test_nan_rows_are_left_out_and_counted():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=100), rng.normal(size=100)
    y[:10] = np.nan
    codes = np.arange(100) // 4
    w = bootstrap.cluster_bootstrap_weights(25, replicates=50, rng=rng)
    res = stats.correlate(x, y, codes, method="pearson", weights=w)
    assert res.n == 90 and res.r == pytest.approx(np.corrcoef(x[10:], y[10:])[0, 1])
    tiny = stats.correlate(x[:12], y[:12], codes[:12], method="pearson", weights=w)
    assert np.isnan(tiny.r) and "usable rows" in tiny.flag


def test_classes_of_size_one_keep_the_bootstrap_valid():
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=200), rng.normal(size=200)
    w = bootstrap.cluster_bootstrap_weights(200, replicates=100, rng=rng)
    res = stats.correlate(x, y, np.arange(200), method="spearman", weights=w)
    assert res.flag == "" and res.ci_low < res.r < res.ci_high


def test_quality_aligned_flips_lower_is_better():
    assert stats.quality_aligned(-0.3, -0.5, -0.1, lower_is_better=True) == (0.3, 0.1, 0.5)
    assert stats.quality_aligned(-0.3, -0.5, -0.1, lower_is_better=False) == (-0.3, -0.5, -0.1)


def test_unknown_method_names_the_allowed_ones():
    with pytest.raises(ValueError, match="method = 'pearsn' is not known; use one of pearson"):
        stats.correlate(np.ones(5), np.ones(5), np.zeros(5, int), method="pearsn", weights=None)


@pytest.mark.parametrize("levels", [3, 6, 40])
def test_kendall_iid_p_is_tie_corrected_like_scipy_asymptotic(levels):
    """On data with ties the i.i.d. p of Kendall's tau-b equals scipy's asymptotic p."""
    rng = np.random.default_rng(30 + levels)
    x = rng.integers(0, levels, size=500).astype(float)
    y = (x + rng.integers(0, levels, size=500) * 1.5).round()
    res = stats.correlate(x, y, np.arange(500), method="kendall", weights=None)
    expected = sps.kendalltau(x, y, method="asymptotic")
    assert res.r == pytest.approx(expected.statistic, abs=1e-12)
    assert res.p_value_iid == pytest.approx(expected.pvalue, rel=1e-9)


def test_bootstrap_p_counts_crossings_and_never_goes_below_its_resolution():
    reps = np.array([-0.5, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, np.nan])
    # 9 finite replicates; <= 0: two (-0.5 and the tie at 0), >= 0: eight
    assert bootstrap.bootstrap_p(reps) == pytest.approx(2 * (1 + 2) / 10)
    assert bootstrap.bootstrap_p(np.full(999, 0.3)) == pytest.approx(2 / 1000)
    assert bootstrap.bootstrap_p(np.linspace(-1, 1, 101)) == 1.0
    assert np.isnan(bootstrap.bootstrap_p(np.array([np.nan])))


def test_correlate_reports_bootstrap_p_and_the_wald_p_under_its_own_name():
    rng = np.random.default_rng(31)
    codes = np.repeat(np.arange(200), 10)
    x = rng.normal(size=2000)
    y = x + rng.normal(size=2000)
    w = bootstrap.cluster_bootstrap_weights(200, replicates=999, rng=rng)
    res = stats.correlate(x, y, codes, method="pearson", weights=w)
    assert res.p_value == pytest.approx(2 / 1000)  # every replicate is far above 0
    assert res.p_value_wald < 1e-20  # a normal-tail extrapolation, reported separately


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    # m = 4 finite: 0.01*4 = 0.04; 0.03*3 = 0.09; 0.04*2 = 0.08 -> 0.09 (monotone); 0.5*1 -> 0.5
    np.testing.assert_allclose(stats.holm(p), [0.04, 0.09, 0.09, np.nan, 0.5])


def _expanded(values, codes, counts):
    """Rows of a resampled data set: each row repeated as often as its class was drawn."""
    k = counts[codes].astype(int)
    return [np.repeat(v, k) for v in values]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("method,ref", [("spearman", sps.spearmanr), ("kendall", sps.kendalltau)])
def test_rank_replicates_match_exact_recomputation(method, ref, ties):
    """The Spearman/Kendall replicate approximations against exact coefficients recomputed on
    the same resampled rows (duplicated classes included): RMS < 0.005 (measured 0.0015-0.0018
    with these sizes; see ``stats.correlation_replicates``)."""
    rng = np.random.default_rng(11)
    sizes = rng.integers(2, 19, size=200)
    codes = np.repeat(np.arange(200), sizes)
    x = rng.normal(size=200)[codes] + rng.normal(size=len(codes))
    y = 0.5 * x + rng.normal(size=len(codes))
    if ties:  # 8 levels each
        x = np.digitize(x, np.quantile(x, np.linspace(0, 1, 9)[1:-1])).astype(float)
        y = np.digitize(y, np.quantile(y, np.linspace(0, 1, 9)[1:-1])).astype(float)
    w = bootstrap.cluster_bootstrap_weights(200, replicates=100, rng=rng)
    _, reps = stats.correlation_replicates(x, y, codes, method=method, weights=w)
    exact = np.array([ref(*_expanded((x, y), codes, w[b])).statistic for b in range(len(w))])
    rms = np.sqrt(np.mean((reps - exact) ** 2))
    assert rms < 0.005, rms


# ---------------------------------------------------------------------------------------------
# featnorm.analysis.contrasts: paired differences, within/between split, class-size bands
# ---------------------------------------------------------------------------------------------


def _study(seed, n_classes=80):
    """x (a 'standardised' column with NaNs), reference, y and codes with class effects."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, size=n_classes)
    codes = np.repeat(np.arange(n_classes), sizes)
    quality = rng.uniform(size=len(codes))
    y = 60 - 30 * quality + rng.normal(0, 5, len(codes))
    reference = 20 + rng.normal(size=n_classes)[codes] + quality + rng.normal(size=len(codes))
    x, _ = standardisation.within_class_z(reference, codes)
    return x, reference, y, codes


def _plain_cluster_bootstrap(stat, codes, draws):
    """A statistic recomputed on each resampled data set: the rows of each drawn class."""
    rows_of = {g: np.flatnonzero(codes == g) for g in np.unique(codes)}
    out = []
    for drawn in draws:
        idx = np.concatenate([rows_of.get(g, np.empty(0, dtype=int)) for g in drawn])
        out.append(stat(idx))
    return np.array(out)


def _pearson_idx(a, b):
    return lambda idx: np.corrcoef(a[idx], b[idx])[0, 1]


def test_paired_difference_equals_a_plain_loop_bootstrap_on_the_same_draws():
    x, ref, y, codes = _study(40)
    g, b = int(codes.max()) + 1, 300
    w = bootstrap.cluster_bootstrap_weights(g, replicates=b, rng=np.random.default_rng(41))
    draws = np.random.default_rng(41).integers(0, g, size=(b, g))  # the same draws, as indices
    res = contrasts.paired_difference(x, ref, y, codes, method="pearson", weights=w)
    keep = np.isfinite(x)
    xk, rk, yk, ck = x[keep], ref[keep], y[keep], codes[keep]
    delta = np.corrcoef(xk, yk)[0, 1] - np.corrcoef(rk, yk)[0, 1]
    assert res.delta == pytest.approx(delta, abs=1e-12)
    assert res.n == keep.sum() and res.n_classes == len(np.unique(ck))
    loop = _plain_cluster_bootstrap(
        lambda idx: np.corrcoef(xk[idx], yk[idx])[0, 1] - np.corrcoef(rk[idx], yk[idx])[0, 1],
        ck,
        draws,
    )
    lo, hi = np.quantile(loop, [0.025, 0.975])
    assert res.ci_low == pytest.approx(lo, abs=1e-9) and res.ci_high == pytest.approx(hi, abs=1e-9)
    crossings = min(np.sum(loop <= 0), np.sum(loop >= 0))
    assert res.p_value == pytest.approx(min(1, 2 * (1 + crossings) / (1 + b)), abs=1e-12)


def test_paired_difference_interval_agrees_with_a_separately_seeded_plain_bootstrap():
    """Different draws, same distribution: the percentile bounds agree within 0.02 (Monte
    Carlo error of 2,000-replicate 2.5 % / 97.5 % quantiles here is about 0.005)."""
    x, ref, y, codes = _study(42, n_classes=150)
    g = int(codes.max()) + 1
    w = bootstrap.cluster_bootstrap_weights(g, replicates=2000, rng=np.random.default_rng(43))
    res = contrasts.paired_difference(x, ref, y, codes, method="pearson", weights=w)
    keep = np.isfinite(x)
    xk, rk, yk, ck = x[keep], ref[keep], y[keep], codes[keep]
    draws = np.random.default_rng(44).integers(0, g, size=(2000, g))
    loop = _plain_cluster_bootstrap(
        lambda idx: np.corrcoef(xk[idx], yk[idx])[0, 1] - np.corrcoef(rk[idx], yk[idx])[0, 1],
        ck,
        draws,
    )
    lo, hi = np.quantile(loop, [0.025, 0.975])
    assert abs(res.ci_low - lo) < 0.02 and abs(res.ci_high - hi) < 0.02


def test_within_between_by_direct_numpy_on_a_hand_made_frame():
    # three classes; class means of x: 2, 11, 5; of y: 1, 4, 10; one singleton class
    x = np.array([1.0, 2.0, 3.0, 10.0, 12.0, 5.0, 4.0, 6.0, 7.5])
    y = np.array([0.0, 1.5, 1.5, 5.0, 3.0, 10.0, 9.0, 11.0, 2.0])
    codes = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3])
    w = bootstrap.cluster_bootstrap_weights(4, replicates=50, rng=np.random.default_rng(0))
    res = contrasts.within_between(x, y, codes, weights=w)
    mx = np.array([x[codes == g].mean() for g in range(4)])
    my = np.array([y[codes == g].mean() for g in range(4)])
    xc, yc = x - mx[codes], y - my[codes]
    assert res.r_total == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert res.r_within == pytest.approx(
        np.sum(xc * yc) / np.sqrt(np.sum(xc**2) * np.sum(yc**2)), abs=1e-12
    )
    assert res.r_between == pytest.approx(np.corrcoef(mx, my)[0, 1], abs=1e-12)
    n = np.bincount(codes)
    share_x = np.sum(n * (mx - x.mean()) ** 2) / np.sum((x - x.mean()) ** 2)
    share_y = np.sum(n * (my - y.mean()) ** 2) / np.sum((y - y.mean()) ** 2)
    assert res.between_share_x == pytest.approx(share_x, abs=1e-12)
    assert res.between_share_y == pytest.approx(share_y, abs=1e-12)


def test_within_between_replicates_equal_a_plain_loop_on_the_same_draws():
    _, ref, y, codes = _study(45)
    g, b = int(codes.max()) + 1, 200
    w = bootstrap.cluster_bootstrap_weights(g, replicates=b, rng=np.random.default_rng(46))
    draws = np.random.default_rng(46).integers(0, g, size=(b, g))
    res = contrasts.within_between(ref, y, codes, weights=w)
    within, between = [], []
    for drawn in draws:
        xs, ys, ms = [], [], []
        for cls in drawn:
            rows = codes == cls
            if rows.any():
                xs.append(ref[rows] - ref[rows].mean())
                ys.append(y[rows] - y[rows].mean())
                ms.append((ref[rows].mean(), y[rows].mean()))
        xs, ys, ms = np.concatenate(xs), np.concatenate(ys), np.array(ms)
        within.append(np.sum(xs * ys) / np.sqrt(np.sum(xs**2) * np.sum(ys**2)))
        between.append(np.corrcoef(ms[:, 0], ms[:, 1])[0, 1])
    for reps, lo, hi in (
        (within, res.r_within_ci_low, res.r_within_ci_high),
        (between, res.r_between_ci_low, res.r_between_ci_high),
    ):
        q = np.quantile(reps, [0.025, 0.975])
        assert lo == pytest.approx(q[0], abs=1e-9) and hi == pytest.approx(q[1], abs=1e-9)


def test_within_between_of_a_z_score_has_no_between_part():
    x, _, y, codes = _study(47)
    w = bootstrap.cluster_bootstrap_weights(
        int(codes.max()) + 1, replicates=50, rng=np.random.default_rng(0)
    )
    res = contrasts.within_between(x, y, codes, weights=w)
    assert res.between_share_x == pytest.approx(0, abs=1e-12)
    assert np.isnan(res.r_between) and "r_between undefined" in res.flag
    assert np.isfinite(res.r_within) and np.isfinite(res.r_within_ci_low)


def test_size_bands_double_and_refuse_bad_edges():
    assert contrasts.size_bands([2, 4, 8, 16, 32], 20) == [(2, 3), (4, 7), (8, 15), (16, 20)]
    assert contrasts.size_bands([2, 4], 3) == [(2, 3)]
    with pytest.raises(ValueError, match=r"analysis\.size_bins = \[4, 2\]"):
        contrasts.size_bands([4, 2], 10)


def test_percentile_interval_by_hand_and_its_one_rule():
    """numpy's linear quantiles at 0.5 -+ confidence / 2 of the finite replicates; NaN, with the
    reason, below 90 % finite (or below 2)."""
    reps = np.arange(101, dtype=np.float64)  # quantile q of 0..100 is 100 q
    lo, hi, n = bootstrap.percentile_interval(reps, 0.9)
    assert (lo, hi, n) == (pytest.approx(5.0), pytest.approx(95.0), 101)
    flags: list[str] = []
    reps[:11] = np.nan  # 90 of 101 finite: below 90 %
    lo, hi, n = bootstrap.percentile_interval(reps, 0.9, flags=flags, name="delta: ")
    assert np.isnan(lo) and np.isnan(hi) and n == 90
    assert flags == ["delta: only 90 of 101 bootstrap replicates defined; interval not reported"]
    assert np.isnan(bootstrap.percentile_interval(np.array([0.3]), 0.95)[0])  # one replicate
    assert bootstrap.percentile_interval(reps[11:], 0.9, drawn=100)[2] == 90  # 90 % of 100


def test_replicate_weights_are_the_dense_draws_block_by_block(monkeypatch):
    """The compact weights hold exactly the counts of ``cluster_bootstrap_weights`` with the same
    seed, whatever the block of replicates drawn at a time (an odd block over an odd number of
    classes included), and their products equal the dense products up to rounding."""
    g, b = 1001, 37
    draws = np.random.default_rng(3).integers(0, g, size=(b, g))  # the old one-call draw
    expected = np.stack([np.bincount(row, minlength=g) for row in draws]).astype(np.float64)
    monkeypatch.setattr(bootstrap, "_CHUNK_VALUES", 7 * g)  # 7 replicates per block
    w = bootstrap.ReplicateWeights.draw(g, replicates=b, rng=np.random.default_rng(3))
    assert w.shape == (b, g) and w.counts.dtype == np.uint8
    np.testing.assert_array_equal(w.dense(), expected)
    dense = bootstrap.cluster_bootstrap_weights(g, replicates=b, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(dense, expected)
    table = np.random.default_rng(1).normal(size=(g, 5))
    np.testing.assert_allclose(w @ table, expected @ table, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w @ table[:, 0], expected @ table[:, 0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", options.CORRELATION_METHODS)
def test_compact_weights_give_the_dense_results(method):
    """Seed handling: the same seed gives the same draws in either form, so r is identical and
    the interval equal up to float rounding (no Monte Carlo change)."""
    rng = np.random.default_rng(8)
    codes = np.repeat(np.arange(60), rng.integers(2, 9, 60))
    x = rng.normal(size=len(codes)) + 0.3 * codes / 60
    y = x + rng.normal(size=len(codes))
    dense = bootstrap.cluster_bootstrap_weights(60, replicates=300, rng=np.random.default_rng(5))
    compact = bootstrap.ReplicateWeights.draw(60, replicates=300, rng=np.random.default_rng(5))
    a = stats.correlate(x, y, codes, method=method, weights=dense)
    b = stats.correlate(x, y, codes, method=method, weights=compact)
    assert a.r == b.r and a.p_value == b.p_value
    np.testing.assert_allclose([a.ci_low, a.ci_high], [b.ci_low, b.ci_high], rtol=0, atol=1e-12)
    other = bootstrap.ReplicateWeights.draw(60, replicates=300, rng=np.random.default_rng(6))
    c = stats.correlate(x, y, codes, method=method, weights=other)
    assert c.r == a.r  # the point estimate never depends on the draws
    assert (c.ci_low, c.ci_high) != (a.ci_low, a.ci_high)  # another seed: other draws
