"""Tests of the analysis tables: merge contract, class statistics, policies, correlation and
contrast tables, Table 1 and the summary built from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from featnorm import options
from featnorm.analysis import (
    class_stats,
    columns,
    contrast_tables,
    correlations,
    merge,
    standardisation,
)
from featnorm.report import summary, table1

POLICIES = list(options.STANDARDISATION_POLICIES)


def _tables(seed=0, n_classes=40, ground_truth=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 25, size=n_classes)
    labels = np.repeat(np.arange(n_classes), sizes)
    n = len(labels)
    manifest = pd.DataFrame(
        {
            "sample_id": np.arange(n, dtype=np.int64),
            "path": [f"img/{i}.png" for i in range(n)],
            "label": labels.astype(np.int64),
            "class_name": [f"id{label:03d}" for label in labels],
        }
    )
    quality = rng.uniform(0, 1, n)
    if ground_truth:
        manifest["true_quality"] = quality
        manifest["blur_sigma"] = 1 - quality
    brisque = pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "brisque": 60 - 40 * quality + rng.normal(0, 3, n),
            "status": "ok",
        }
    )
    norm = 20 + np.log(sizes)[labels] + 2 * quality + rng.normal(0, 0.5, n)
    embed = pd.DataFrame(
        {"sample_id": np.arange(n), "feature_norm": norm.astype(np.float32), "status": "ok"}
    )
    return manifest, brisque, embed


def _prepared(**kw):
    m, b, e = _tables(**kw)
    merged = merge.merge_samples(m, b, e)
    samples, info = standardisation.standardise(
        merged, policies=POLICIES, min_class_size=2, ddof=1, residual_degree=2
    )
    return samples, info


def test_rows_in_equal_rows_out_with_failed_and_missing_rows():
    m, b, e = _tables()
    b.loc[3, ["brisque", "status"]] = [np.nan, "decode_failed"]
    e = e.drop(index=5)
    b.loc[7, "brisque"] = np.inf  # marked ok but not finite
    out = merge.merge_samples(m, b, e)
    assert len(out) == len(m) and out["sample_id"].tolist() == m["sample_id"].tolist()
    assert out.loc[3, "status"] == "brisque:decode_failed"
    assert out.loc[5, "status"] == "embed:missing" and np.isnan(out.loc[5, "feature_norm"])
    assert out.loc[7, "status"] == "brisque:non_finite" and np.isnan(out.loc[7, "brisque"])
    assert (out["status"] == "ok").sum() == len(m) - 3
    assert out["class_size"].tolist() == m.groupby("label")["sample_id"].transform("size").tolist()


def test_merge_refuses_ids_not_in_manifest_and_duplicates():
    m, b, e = _tables()
    extra = pd.concat([b, pd.DataFrame({"sample_id": [10**6], "brisque": [1.0], "status": ["ok"]})])
    with pytest.raises(ValueError, match="not in the manifest"):
        merge.merge_samples(m, extra, e)
    with pytest.raises(ValueError, match="repeats sample_id"):
        merge.merge_samples(m, b, pd.concat([e, e.iloc[:1]]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['feature_norm'\]"):
        merge.merge_samples(m, b, e.drop(columns="feature_norm"))


def test_standardise_adds_one_column_per_policy_and_counts_exclusions():
    samples, info = _prepared()
    for col in columns.norm_columns(POLICIES):
        assert samples[col].dtype == np.float64
    singletons = samples.groupby("label")["sample_id"].transform("size") < 2
    assert samples.loc[singletons, "z_excluded"].all()
    assert samples.loc[singletons, "feature_norm_z"].isna().all()
    assert samples["feature_norm_shrinkage_z"].notna().all()
    assert info["z_excluded_images"] == int(singletons.sum())


def test_unknown_policy_names_the_allowed_ones():
    with pytest.raises(ValueError, match="'zscore'; use any of z, shrinkage_z, rank, residual"):
        columns.norm_columns(["zscore"])


def test_class_stats_by_hand():
    samples, _ = _prepared()
    cs = class_stats.class_stats(samples)
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
    merged = merge.merge_samples(m, b, e)
    train_counts = pd.Series(~holdout).groupby(m["label"]).sum()  # an independent count
    assert merged["class_size"].tolist() == m["label"].map(train_counts).tolist()
    cs = class_stats.class_stats(merged).set_index("label")
    kept = train_counts[train_counts > 0]
    assert sorted(cs.index) == sorted(kept.index)
    assert cs["n"].sort_index().tolist() == kept.sort_index().tolist()
    train_means = (
        e.loc[~holdout, "feature_norm"].astype(float).groupby(m.loc[~holdout, "label"]).mean()
    )
    assert np.allclose(cs["norm_mean"].sort_index(), train_means.sort_index())
    c = correlations.correlation_table(
        merged,
        model="demo",
        x_columns=["feature_norm"],
        methods=["spearman"],
        replicates=20,
        confidence=0.95,
        seed=0,
    )
    effect = c[c["x"] == "class_size"].iloc[0]
    expected = spearmanr(kept.sort_index(), train_means.sort_index()).statistic
    assert effect["n"] == len(kept) and effect["r"] == pytest.approx(expected)


def test_correlation_table_contract_sign_convention_and_class_size_effect():
    samples, _ = _prepared()
    c = correlations.correlation_table(
        samples,
        model="demo",
        x_columns=columns.norm_columns(POLICIES),
        methods=list(options.CORRELATION_METHODS),
        replicates=200,
        confidence=0.95,
        seed=0,
    )
    for col in [
        "model",
        "x",
        "y",
        "method",
        "n",
        "r",
        "ci_low",
        "ci_high",
        "p_value",
        "quality_aligned_r",
        "ci_method",
    ]:
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
    again = correlations.correlation_table(
        samples,
        model="demo",
        x_columns=columns.norm_columns(POLICIES),
        methods=list(options.CORRELATION_METHODS),
        replicates=200,
        confidence=0.95,
        seed=0,
    )
    pd.testing.assert_frame_equal(c, again)


def test_without_ground_truth_only_brisque_is_a_reference():
    m, b, e = _tables(ground_truth=False)
    samples, _ = standardisation.standardise(
        merge.merge_samples(m, b, e),
        policies=["z"],
        min_class_size=2,
        ddof=1,
        residual_degree=1,
    )
    c = correlations.correlation_table(
        samples,
        model="m",
        x_columns=columns.norm_columns(["z"]),
        methods=["pearson"],
        replicates=50,
        confidence=0.9,
        seed=1,
    )
    assert set(c["y"]) == {"brisque", "brisque | log class_size", "class_norm_mean"}


def test_table1_and_comparison_across_models():
    samples, _ = _prepared()
    cols = columns.norm_columns(["z"])
    tables = [
        correlations.correlation_table(
            samples,
            model=m,
            x_columns=cols,
            methods=["pearson"],
            replicates=50,
            confidence=0.95,
            seed=s,
        )
        for m, s in (("a", 0), ("b", 1))
    ]
    corr = pd.concat(tables, ignore_index=True)
    t1 = table1.table1(corr)
    assert t1.models == ["a", "b"]
    assert t1.frame["norm"].tolist() == cols
    assert t1.frame["seed_r"].tolist() == [0.053, 0.204]
    assert t1.frame["seed_sign"].tolist() == ["ambiguous", "ambiguous"]
    assert t1.frame["a_r"].tolist() == t1.frame["b_r"].tolist()  # same data, same estimates
    np.testing.assert_allclose(t1.frame["a_quality_aligned_r"], -t1.frame["a_r"])  # flipped
    md = table1.table1_markdown(t1, confidence=0.95, demo=True)
    assert "negative" in md and "0.204" in md and "| feature_norm_z |" in md
    assert "a: quality-aligned r" in md and "b: quality-aligned r" in md
    assert "sign ambiguous" in md and "pipeline check on synthetic data" in md
    assert "pipeline check" not in table1.table1_markdown(t1, confidence=0.95)
    comp = correlations.compare_models(corr)
    assert len(comp) == len(corr) and np.allclose(comp["r_minus_first"], 0)


def _holm_loop(p):
    """Holm (1979) step by step: reject in ascending order while p_(i) <= alpha / (m - i)."""
    idx = [i for i in range(len(p)) if np.isfinite(p[i])]
    idx.sort(key=lambda i: p[i])
    m, out, running = len(idx), np.full(len(p), np.nan), 0.0
    for rank, i in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def test_p_holm_adjusts_over_every_row_of_the_model():
    samples, _ = _prepared()
    c = correlations.correlation_table(
        samples,
        model="m",
        x_columns=columns.norm_columns(POLICIES),
        methods=list(options.CORRELATION_METHODS),
        replicates=300,
        confidence=0.95,
        seed=3,
    )
    np.testing.assert_allclose(c["p_holm"], _holm_loop(c["p_value"].to_numpy()))
    assert (c["p_value"].dropna() >= 2 / 301 - 1e-12).all()  # never below the resolution
    assert (c["p_holm"].dropna() >= c["p_value"].dropna()).all()


def test_contrast_tables_follow_the_contract_and_share_the_correlations_draws():
    samples, _ = _prepared()
    cols = columns.norm_columns(POLICIES)
    kw = {"model": "m", "x_columns": cols, "replicates": 200, "confidence": 0.95, "seed": 4}
    corr = correlations.correlation_table(samples, methods=["pearson", "spearman"], **kw)
    diff = contrast_tables.differences_table(samples, methods=["pearson", "spearman"], **kw)
    assert list(diff.columns[:12]) == [
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
    ]
    assert len(diff) == (len(cols) - 1) * 2 * 2  # x != feature_norm, 2 references, 2 methods
    np.testing.assert_allclose(diff["delta"], diff["r_x"] - diff["r_reference"], atol=1e-15)
    np.testing.assert_allclose(
        diff["quality_aligned_delta"], np.where(diff["lower_is_better"], -1, 1) * diff["delta"]
    )
    # shrinkage_z is defined wherever the norm is: its r and interval bounds come from the same
    # rows and draws as in correlations.csv
    key = ["x", "y", "method"]
    both = diff.merge(corr, on=key, suffixes=("", "_corr"))
    shrink = both[both["x"] == "feature_norm_shrinkage_z"]
    np.testing.assert_allclose(shrink["r_x"], shrink["r"], atol=1e-12)
    dec = contrast_tables.decomposition_table(samples, **kw)
    assert len(dec) == len(cols) * 2
    z = dec[dec["x"] == "feature_norm_z"].iloc[0]
    assert z["between_share_x"] < 1e-12 and np.isnan(z["r_between"])
    bands = contrast_tables.by_class_size_table(
        samples, methods=["pearson"], size_bins=[2, 4, 8, 16], **kw
    )
    raw = bands[(bands["x"] == "feature_norm") & (bands["y"] == "brisque")]
    size = samples["class_size"]
    assert raw["n"].sum() == ((samples["status"] == "ok") & (size >= 2)).sum()
    assert raw["n_classes"].sum() == samples.loc[size >= 2, "label"].nunique()
    assert raw["size_low"].tolist() == [2, 4, 8, 16][: len(raw)]
    band = raw.iloc[1]
    part = samples[(size >= band["size_low"]) & (size <= band["size_high"])]
    assert band["r"] == pytest.approx(part["feature_norm"].corr(part["brisque"]), abs=1e-12)


def test_summary_states_the_change_with_its_ci_and_does_not_read_the_seed():
    samples, info = _prepared()
    cols = columns.norm_columns(POLICIES)
    kw = {"model": "m", "x_columns": cols, "replicates": 200, "confidence": 0.95, "seed": 0}
    res = summary.ModelResults(
        correlations=correlations.correlation_table(samples, methods=["pearson"], **kw),
        class_stats=class_stats.class_stats(samples),
        samples=samples,
        standardise=info,
        differences=contrast_tables.differences_table(samples, methods=["pearson"], **kw),
        decomposition=contrast_tables.decomposition_table(samples, **kw),
        by_class_size=contrast_tables.by_class_size_table(
            samples, methods=["pearson"], size_bins=[2, 8], **kw
        ),
    )
    text = summary.render({"m": res}, confidence=0.95)
    z = res.differences[
        (res.differences["x"] == "feature_norm_z") & (res.differences["y"] == "brisque")
    ].iloc[0]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("- feature_norm_z: delta"))
    assert f"{z['delta']:+.3f} [{z['ci_low']:+.3f}, {z['ci_high']:+.3f}]" in line
    direction = "strengthened" if z["quality_aligned_delta"] > 0 else "weakened"
    assert direction in line if (z["ci_low"] > 0 or z["ci_high"] < 0) else "no change" in line
    assert "pipeline check on synthetic data" in text and "Holm" in text
    seed_lines = [ln for ln in text.splitlines() if "0.053" in ln or "0.204" in ln]
    assert seed_lines and all("agrees" not in ln and "disagrees" not in ln for ln in seed_lines)
    assert "of the feature norm's variance" in text and "by class size" in text


def test_class_size_band_interval_equals_a_plain_stratified_loop():
    """Band i resamples its own k classes with generator default_rng([seed, i]): the same draws
    taken as class indices by a plain loop give the same percentile interval."""
    samples, _ = _prepared()
    bands = contrast_tables.by_class_size_table(
        samples,
        model="m",
        x_columns=["feature_norm"],
        methods=["pearson"],
        size_bins=[2, 8],
        replicates=300,
        confidence=0.9,
        seed=5,
    )
    row = bands[(bands["y"] == "brisque")].iloc[1]  # band 1: classes of >= 8 images
    part = samples[(samples["class_size"] >= 8) & (samples["status"] == "ok")]
    labels = np.sort(part["label"].unique())
    draws = np.random.default_rng([5, 1]).integers(0, len(labels), size=(300, len(labels)))
    reps = []
    for drawn in draws:
        rs = pd.concat([part[part["label"] == labels[i]] for i in drawn])
        reps.append(np.corrcoef(rs["feature_norm"], rs["brisque"])[0, 1])
    lo, hi = np.quantile(reps, [0.05, 0.95])
    assert row["size_low"] == 8 and row["n_classes"] == len(labels)
    assert row["ci_low"] == pytest.approx(lo, abs=1e-9) and row["ci_high"] == pytest.approx(
        hi, abs=1e-9
    )


def test_a_registered_reference_joins_every_table(monkeypatch):
    """One entry in QUALITY_REFERENCES puts a new reference in correlations, differences,
    decomposition, class-size bands and (as an EDC proxy, when it is one) the EDC proxies."""
    from featnorm.evaluation import edc_tables

    samples, _ = _prepared()
    rng = np.random.default_rng(7)
    samples["centre_similarity"] = samples["true_quality"] + rng.normal(0, 0.1, len(samples))
    new = columns.QualityReference("centre_similarity", lower_is_better=False, edc_proxy=False)
    monkeypatch.setattr(columns, "QUALITY_REFERENCES", (*columns.QUALITY_REFERENCES, new))
    kw = {"model": "m", "x_columns": columns.norm_columns(["z"]), "replicates": 50}
    kw.update(confidence=0.95, seed=0)
    tables = {
        "correlations": correlations.correlation_table(samples, methods=["pearson"], **kw),
        "differences": contrast_tables.differences_table(samples, methods=["pearson"], **kw),
        "decomposition": contrast_tables.decomposition_table(samples, **kw),
        "by_class_size": contrast_tables.by_class_size_table(
            samples, methods=["pearson"], size_bins=[2, 8], **kw
        ),
    }
    for name, table in tables.items():
        rows = table[table["y"] == "centre_similarity"]
        assert len(rows), f"{name} lacks the registered reference"
        assert not rows["lower_is_better"].astype(bool).any(), name
    # registry order: brisque, true_quality, then the new one
    assert pd.unique(tables["correlations"]["y"])[:3].tolist() == [
        "brisque",
        "true_quality",
        "centre_similarity",
    ]
    proxies = edc_tables.proxy_columns(samples, ["feature_norm"])
    assert proxies == ["feature_norm", "brisque", "true_quality"]  # not an EDC proxy


def test_table1_names_its_models_without_parsing_columns():
    """Model names with the table's own suffixes in them still come back whole."""
    samples, _ = _prepared()
    kw = {"x_columns": ["feature_norm"], "methods": ["pearson"], "replicates": 20}
    kw.update(confidence=0.95, seed=0)
    corr = pd.concat(
        [correlations.correlation_table(samples, model=m, **kw) for m in ("x_ci_low", "b_n")]
    )
    t1 = table1.table1(corr)
    assert t1.models == ["x_ci_low", "b_n"]
    md = table1.table1_markdown(t1, confidence=0.95)
    assert "x_ci_low: r [95 % CI] (n)" in md and "b_n: quality-aligned r" in md


def test_steps_read_only_their_columns_and_give_the_in_memory_tables(tmp_path):
    """The correlate and by-class-size steps read the columns they use, strings in Arrow, and
    write what the table functions give on the whole frame."""
    from featnorm import tableio
    from featnorm.cli.main import main

    samples, _ = _prepared()
    samples["path"] = samples["path"].astype(str)
    tableio.write_table(samples, tmp_path / "samples.parquet")
    kw = {"model": "m", "x_columns": columns.norm_columns(["z"]), "methods": ["pearson"]}
    kw.update(replicates=40, confidence=0.95, seed=2)
    flags = ["--samples", str(tmp_path / "samples.parquet"), "--model", "m", "--policies", "z"]
    flags += ["--methods", "pearson", "--replicates", "40", "--confidence", "0.95", "--seed", "2"]
    main(["correlate", *flags, "--output", str(tmp_path / "c.csv")])
    expected = correlations.correlation_table(samples, **kw)
    pd.testing.assert_frame_equal(tableio.read_csv(tmp_path / "c.csv"), _csv_round_trip(expected))
    main(["by-class-size", *flags, "--size-bins", "2", "8", "--output", str(tmp_path / "b.csv")])
    bands = contrast_tables.by_class_size_table(samples, size_bins=[2, 8], **kw)
    pd.testing.assert_frame_equal(tableio.read_csv(tmp_path / "b.csv"), _csv_round_trip(bands))
    assert set(columns.table_columns(samples.columns, ["feature_norm"])) == {
        "label",
        "status",
        "class_size",
        "split",
        "feature_norm",
        "brisque",
        "true_quality",
    } - ({"split"} - set(samples.columns))


def _csv_round_trip(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as its CSV reads back."""
    import io

    from featnorm import tableio

    return tableio.read_csv(io.StringIO(table.to_csv(index=False)))
