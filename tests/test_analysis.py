"""Tests of featnorm.analysis: merge contract, class statistics, policies, correlation table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from featnorm import analysis, standardisation, stats

POLICIES = list(standardisation.POLICIES)


def _tables(seed=0, n_classes=40, ground_truth=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, size=n_classes)
    labels = np.repeat(np.arange(n_classes), sizes)
    n = len(labels)
    manifest = pd.DataFrame({
        "sample_id": np.arange(n, dtype=np.int64), "path": [f"img/{i}.png" for i in range(n)],
        "label": labels.astype(np.int64), "class_name": [f"id{label:03d}" for label in labels],
    })
    quality = rng.uniform(0, 1, n)
    if ground_truth:
        manifest["true_quality"] = quality
        manifest["blur_sigma"] = 1 - quality
    brisque = pd.DataFrame({"sample_id": np.arange(n), "brisque": 60 - 40 * quality
                            + rng.normal(0, 3, n), "status": "ok"})
    norm = 20 + np.log(sizes)[labels] + 2 * quality + rng.normal(0, 0.5, n)
    embed = pd.DataFrame({"sample_id": np.arange(n), "feature_norm": norm.astype(np.float32),
                          "status": "ok"})
    return manifest, brisque, embed


def _prepared(**kw):
    m, b, e = _tables(**kw)
    merged = analysis.merge_samples(m, b, e)
    samples, info = analysis.standardise(merged, policies=POLICIES, min_class_size=2, ddof=1,
                                         residual_degree=2)
    return samples, info


def test_rows_in_equal_rows_out_with_failed_and_missing_rows():
    m, b, e = _tables()
    b.loc[3, ["brisque", "status"]] = [np.nan, "decode_failed"]
    e = e.drop(index=5)
    b.loc[7, "brisque"] = np.inf  # marked ok but not finite
    out = analysis.merge_samples(m, b, e)
    assert len(out) == len(m) and out["sample_id"].tolist() == m["sample_id"].tolist()
    assert out.loc[3, "status"] == "brisque:decode_failed"
    assert out.loc[5, "status"] == "embed:missing" and np.isnan(out.loc[5, "feature_norm"])
    assert out.loc[7, "status"] == "brisque:non_finite" and np.isnan(out.loc[7, "brisque"])
    assert (out["status"] == "ok").sum() == len(m) - 3
    assert out["class_size"].tolist() == m.groupby("label")["sample_id"].transform("size").tolist()


def test_merge_refuses_ids_not_in_manifest_and_duplicates():
    m, b, e = _tables()
    extra = pd.concat([b, pd.DataFrame({"sample_id": [10**6], "brisque": [1.0],
                                        "status": ["ok"]})])
    with pytest.raises(ValueError, match="not in the manifest"):
        analysis.merge_samples(m, extra, e)
    with pytest.raises(ValueError, match="repeats sample_id"):
        analysis.merge_samples(m, b, pd.concat([e, e.iloc[:1]]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['feature_norm'\]"):
        analysis.merge_samples(m, b, e.drop(columns="feature_norm"))


def test_standardise_adds_one_column_per_policy_and_counts_exclusions():
    samples, info = _prepared()
    for col in analysis.norm_columns(POLICIES):
        assert samples[col].dtype == np.float64
    singletons = samples.groupby("label")["sample_id"].transform("size") < 2
    assert samples.loc[singletons, "z_excluded"].all()
    assert samples.loc[singletons, "feature_norm_z"].isna().all()
    assert samples["feature_norm_shrinkage_z"].notna().all()
    assert info["z_excluded_images"] == int(singletons.sum())


def test_unknown_policy_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'zscore'; use any of z, shrinkage_z, rank, residual"):
        analysis.norm_columns(["zscore"])


def test_class_stats_by_hand():
    samples, _ = _prepared()
    cs = analysis.class_stats(samples)
    assert cs["n"].is_monotonic_decreasing
    one = cs.iloc[0]
    rows = samples[samples["label"] == one["label"]]
    assert one["n"] == len(rows)
    assert one["norm_mean"] == pytest.approx(rows["feature_norm"].mean())
    assert one["brisque_std"] == pytest.approx(rows["brisque"].std(ddof=1))
    assert one["true_quality_mean"] == pytest.approx(rows["true_quality"].mean())


def test_class_size_counts_the_training_split_only():
    """With a split column, class n, class_size and the class-size effect see training images only.

    Held-out images get a norm far below the training images; if they entered the class means,
    classes with more held-out images would look smaller-normed.
    """
    m, b, e = _tables(seed=3)
    rng = np.random.default_rng(5)
    holdout = rng.random(len(m)) < 0.3
    m["split"] = np.where(holdout, "holdout", "train")
    e.loc[holdout, "feature_norm"] = np.float32(1.0)
    merged = analysis.merge_samples(m, b, e)
    train_counts = pd.Series(~holdout).groupby(m["label"]).sum()  # an independent count
    assert merged["class_size"].tolist() == m["label"].map(train_counts).tolist()
    cs = analysis.class_stats(merged).set_index("label")
    kept = train_counts[train_counts > 0]
    assert sorted(cs.index) == sorted(kept.index)
    assert cs["n"].sort_index().tolist() == kept.sort_index().tolist()
    train_means = e.loc[~holdout, "feature_norm"].astype(float).groupby(m.loc[~holdout, "label"]).mean()
    assert np.allclose(cs["norm_mean"].sort_index(), train_means.sort_index())
    c = analysis.correlation_table(merged, model="demo", x_columns=["feature_norm"],
                                   methods=["spearman"], replicates=20, confidence=0.95, seed=0)
    effect = c[c["x"] == "class_size"].iloc[0]
    expected = spearmanr(kept.sort_index(), train_means.sort_index()).statistic
    assert effect["n"] == len(kept) and effect["r"] == pytest.approx(expected)


def test_correlation_table_contract_sign_convention_and_class_size_effect():
    samples, _ = _prepared()
    c = analysis.correlation_table(samples, model="demo", x_columns=analysis.norm_columns(POLICIES),
                                   methods=list(stats.METHODS), replicates=200, confidence=0.95,
                                   seed=0)
    for col in ["model", "x", "y", "method", "n", "r", "ci_low", "ci_high", "p_value",
                "quality_aligned_r", "ci_method"]:
        assert col in c.columns
    raw = c[(c["x"] == "feature_norm") & (c["y"] == "brisque") & (c["method"] == "pearson")]
    # the norm rises with quality and BRISQUE falls: negative signed r, positive aligned r
    assert raw["r"].iloc[0] < 0 and raw["quality_aligned_r"].iloc[0] == -raw["r"].iloc[0]
    gt = c[(c["x"] == "feature_norm") & (c["y"] == "true_quality") & (c["method"] == "pearson")]
    assert gt["r"].iloc[0] > 0 and gt["quality_aligned_r"].iloc[0] == gt["r"].iloc[0]
    size = c[c["x"] == "class_size"].iloc[0]
    assert size["r"] > 0.5 and size["ci_low"] > 0  # built in: norm grows with log class size
    assert (c["ci_low"] <= c["r"]).all() and (c["r"] <= c["ci_high"]).all()
    # same seed, same table
    again = analysis.correlation_table(samples, model="demo",
                                       x_columns=analysis.norm_columns(POLICIES),
                                       methods=list(stats.METHODS), replicates=200,
                                       confidence=0.95, seed=0)
    pd.testing.assert_frame_equal(c, again)


def test_without_ground_truth_only_brisque_is_a_reference():
    m, b, e = _tables(ground_truth=False)
    samples, _ = analysis.standardise(analysis.merge_samples(m, b, e), policies=["z"],
                                      min_class_size=2, ddof=1, residual_degree=1)
    c = analysis.correlation_table(samples, model="m", x_columns=analysis.norm_columns(["z"]),
                                   methods=["pearson"], replicates=50, confidence=0.9, seed=1)
    assert set(c["y"]) == {"brisque", "brisque | log class_size", "class_norm_mean"}


def test_table1_and_comparison_across_models():
    samples, _ = _prepared()
    cols = analysis.norm_columns(["z"])
    tables = [analysis.correlation_table(samples, model=m, x_columns=cols, methods=["pearson"],
                                         replicates=50, confidence=0.95, seed=s)
              for m, s in (("a", 0), ("b", 1))]
    corr = pd.concat(tables, ignore_index=True)
    t1 = analysis.table1(corr)
    assert t1["norm"].tolist() == cols
    assert t1["seed_r"].tolist() == [0.053, 0.204]
    assert t1["a_r"].tolist() == t1["b_r"].tolist()  # same data, same point estimates
    md = analysis.table1_markdown(t1, confidence=0.95)
    assert "negative" in md and "0.204" in md and "| feature_norm_z |" in md
    comp = analysis.compare_models(corr)
    assert len(comp) == len(corr) and np.allclose(comp["r_minus_first"], 0)
