"""featnorm.evaluation.edc: thresholds, FNMR after discarding, pAUC, ties, references and the bootstrap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featnorm.evaluation import edc, edc_tables

IMPOSTORS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95], np.float32)
GENUINE = np.array([0.5, 0.96, 0.97, 0.8, 0.99], np.float32)


def _brute_threshold(imp: np.ndarray, fmr: float) -> float:
    """Plain loop: the smallest candidate (observed scores and one above the top) with
    share(imp >= t) <= fmr."""
    candidates = sorted(set(imp.tolist()) | {float(np.nextafter(imp.max(), np.float32(2)))})
    for t in candidates:
        if sum(1 for s in imp if s >= t) / len(imp) <= fmr:
            return t
    raise AssertionError("unreachable")


def test_hand_worked_case():
    """Ten impostors, five genuine pairs of quality 1..5, worked by hand.

    FMR 0.1 allows one impostor at or above t, so t = 0.95 (FMR exactly 0.1). Genuine scores
    0.5 and 0.8 fall below it: fnmr_at_0 = 2/5. Discarding fraction f removes 5f pairs of the
    lowest quality, the first of which is an error, so for f <= 0.2
    FNMR(f) = (2 - 5f) / (5 - 5f): 0.4, 1/3, 0.25 at f = 0, 0.1, 0.2, and the trapezoid with
    step 0.1 is 0.1 * (0.4/2 + 1/3 + 0.25/2) = 0.0658333. The exact integral over [0, 0.2] is
    0.2 - 0.6 ln(1/0.8) = 0.0661139; random: 0.4 * 0.2 = 0.08.
    """
    t, fmr_obs = edc.threshold_at_fmr(IMPOSTORS, 0.1)
    assert t == pytest.approx(0.95) and fmr_obs == pytest.approx(0.1)
    q = np.array([1.0, 2, 3, 4, 5])
    grid = edc.discard_grid([0.2], 0.1)
    np.testing.assert_allclose(grid, [0, 0.1, 0.2])
    np.testing.assert_allclose(edc.fnmr_curve(q, t > GENUINE, grid), [0.4, 1 / 3, 0.25])
    res = edc.edc(
        GENUINE,
        np.arange(5),
        IMPOSTORS,
        {"q": q},
        fmrs=[0.1],
        limits=[0.2],
        step=0.1,
        replicates=20,
        confidence=0.95,
        seed=0,
    ).table.set_index("quality")
    assert res.loc["q", "pauc"] == pytest.approx(0.1 * (0.4 / 2 + 1 / 3 + 0.25 / 2))
    assert res.loc["q", "fnmr_at_0"] == pytest.approx(0.4)
    assert res.loc["random", "pauc"] == pytest.approx(0.08)
    fine = edc.edc(
        GENUINE,
        np.arange(5),
        IMPOSTORS,
        {"q": q},
        fmrs=[0.1],
        limits=[0.2],
        step=0.001,
        replicates=5,
        confidence=0.95,
        seed=0,
    ).table.set_index("quality")
    assert fine.loc["q", "pauc"] == pytest.approx(0.2 - 0.6 * np.log(1 / 0.8), abs=1e-6)
    # ideal discards both errors first: on [0, 0.2] it equals q's curve here
    assert fine.loc["ideal", "pauc"] == pytest.approx(fine.loc["q", "pauc"])


@pytest.mark.parametrize("fmr", [0.05, 0.1, 0.2, 0.25, 0.5, 0.01])
@pytest.mark.parametrize(
    "imp",
    [
        IMPOSTORS,
        np.array([0.5, 0.5, 0.5, 0.1], np.float32),
        np.array([0.3, 0.3, 0.2, 0.2, 0.2, 0.1], np.float32),
    ],
)
def test_threshold_matches_a_plain_loop(imp: np.ndarray, fmr: float):
    t, fmr_obs = edc.threshold_at_fmr(imp, fmr)
    assert t == pytest.approx(_brute_threshold(imp, fmr), abs=0)
    assert fmr_obs == pytest.approx(np.mean(imp >= np.float32(t))) and fmr_obs <= fmr


def test_ties_are_averaged_and_row_order_does_not_matter():
    """Qualities 1, 1, 3, 4, 5 with errors at rows 0 and 3: the tied block {0, 1} holds one
    error in two pairs, so discarding one pair (f = 0.2) removes half an error in expectation:
    FNMR(0.2) = (2 - 0.5) / 4 = 0.375, whichever of the tied rows comes first."""
    q = np.array([1.0, 1, 3, 4, 5])
    err = np.array([True, False, False, True, False])
    grid = np.array([0.0, 0.2, 0.4])
    np.testing.assert_allclose(edc.fnmr_curve(q, err, grid), [0.4, 0.375, 1 / 3])
    perm = np.array([1, 0, 4, 3, 2])
    np.testing.assert_allclose(edc.fnmr_curve(q[perm], err[perm], grid), [0.4, 0.375, 1 / 3])


def test_constant_quality_equals_the_random_expectation():
    rng = np.random.default_rng(3)
    err = rng.uniform(size=1000) < 0.1
    curve = edc.fnmr_curve(np.zeros(1000), err, edc.discard_grid([0.3], 0.01))
    np.testing.assert_allclose(curve, err.mean())


def test_missing_quality_is_discarded_first():
    q = np.array([np.nan, 2.0, 3.0, 4.0])
    err = np.array([True, False, False, False])
    assert edc.fnmr_curve(q, err, np.array([0.25]))[0] == pytest.approx(0.0)


def test_weights_equal_duplicated_pairs():
    """A bootstrap weight of k on a pair is the same as that pair appearing k times
    (independent check of the weighted prefix sums, including ties)."""
    rng = np.random.default_rng(5)
    n = 400
    q = rng.integers(0, 40, size=n).astype(float)  # many ties
    err = rng.uniform(size=n) < 0.2
    w = rng.integers(0, 4, size=n)
    grid = edc.discard_grid([0.2, 0.3], 0.01)
    weighted = edc.fnmr_curve(q, err, grid, weights=w.astype(float))
    dup = np.repeat(np.arange(n), w)
    np.testing.assert_allclose(weighted, edc.fnmr_curve(q[dup], err[dup], grid), atol=1e-12)


def test_short_prefix_falls_back_to_all_pairs(monkeypatch):
    """The prefix shortcut gives the same result as summing over all pairs."""
    rng = np.random.default_rng(8)
    n, g = 3000, 60
    ident = rng.integers(0, g, size=n)
    scores = rng.normal(0.5, 0.2, size=n).astype(np.float32)
    q = np.round(rng.normal(size=n), 1)
    imp = rng.normal(0.0, 0.2, size=5000).astype(np.float32)
    kw = dict(fmrs=[0.01], limits=[0.3], step=0.01, replicates=30, confidence=0.9, seed=2)
    full = edc.edc(scores, ident, imp, {"q": q}, **kw).table
    monkeypatch.setattr(edc, "_PREFIX_MARGIN", 0.5)  # too short for every replicate
    short = edc.edc(scores, ident, imp, {"q": q}, **kw).table
    pd.testing.assert_frame_equal(full, short)


def _simulated(seed: int, n_ids: int = 300, per_id: int = 12):
    """Genuine pairs whose score noise grows as quality falls; 30,000 impostors around 0."""
    rng = np.random.default_rng(seed)
    ident = np.repeat(np.arange(n_ids), per_id)
    quality = rng.uniform(size=len(ident))
    scores = (0.6 - rng.normal(0.0, 0.05 + 0.35 * (1 - quality)) ** 2 * 3).astype(np.float32)
    imp = rng.normal(0.0, 0.1, size=30_000).astype(np.float32)
    return ident, quality, scores, imp


def test_random_quality_is_within_its_ci_of_the_expectation():
    ident, _, scores, imp = _simulated(0)
    rng = np.random.default_rng(11)  # the outcome depends on this seed only through noise
    res = edc.edc(
        scores,
        ident,
        imp,
        {"noise": rng.uniform(size=len(scores))},
        fmrs=[1e-2],
        limits=[0.2, 0.3],
        step=0.001,
        replicates=200,
        confidence=0.95,
        seed=0,
    ).table.set_index(["quality", "discard_limit"])
    for limit in (0.2, 0.3):
        row = res.loc[("noise", limit)]
        expected = row["fnmr_at_0"] * limit
        assert res.loc[("random", limit), "pauc"] == pytest.approx(expected)
        assert row["ci_low"] <= expected <= row["ci_high"], row


def test_true_quality_beats_random_and_ideal_is_lowest():
    ident, quality, scores, imp = _simulated(1)
    res = edc.edc(
        scores,
        ident,
        imp,
        {"true_quality": quality},
        fmrs=[1e-3, 1e-2],
        limits=[0.2, 0.3],
        step=0.001,
        replicates=100,
        confidence=0.95,
        seed=0,
    ).table
    for _, part in res.groupby(["fmr", "discard_limit"]):
        p = part.set_index("quality")["pauc"]
        assert p["ideal"] < p["true_quality"] < p["random"], p
        assert part.set_index("quality").loc["true_quality", "ci_high"] < p["random"]


def test_curves_table_and_columns():
    ident, quality, scores, imp = _simulated(2, n_ids=40)
    res = edc.edc(
        scores,
        ident,
        imp,
        {"feature_norm": quality, "other": -quality},
        fmrs=[1e-2],
        limits=[0.2],
        step=0.05,
        replicates=10,
        confidence=0.95,
        seed=0,
    )
    assert {
        "quality",
        "fmr",
        "threshold",
        "discard_limit",
        "pauc",
        "ci_low",
        "ci_high",
        "n_genuine",
        "n_impostor",
        "fnmr_at_0",
    } <= set(res.table.columns)
    assert set(res.curves.columns) == {"quality", "fmr", "discard_fraction", "fnmr"}
    assert sorted(res.curves["discard_fraction"].unique()) == pytest.approx(
        [0, 0.05, 0.1, 0.15, 0.2]
    )
    t = res.table.set_index("quality")
    assert t.loc["feature_norm", "delta_vs_feature_norm"] == 0
    assert t.loc["other", "delta_vs_feature_norm"] == pytest.approx(
        t.loc["other", "pauc"] - t.loc["feature_norm", "pauc"]
    )
    assert t.loc["other", "delta_ci_low"] > 0  # reversed quality is clearly worse


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"limits": [1.2]}, r"discard_limits has 1\.2"),
        ({"step": 0.0}, r"discard_step = 0\.0"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    args = dict(fmrs=[0.1], limits=[0.2], step=0.1, replicates=2, confidence=0.95, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        edc.edc(GENUINE, np.arange(5), IMPOSTORS, {"q": np.arange(5.0)}, **args)


def _frames(with_split: bool):
    """samples + pairs frames as the workflow writes them, from featnorm.evaluation.pairs."""
    from featnorm.evaluation import pairs

    rng = np.random.default_rng(21)
    n_ids, per_id = 40, 8
    label = np.repeat(np.arange(n_ids), per_id)
    quality = rng.uniform(size=len(label))
    centres = rng.normal(size=(n_ids, 32))
    emb = centres[label] + rng.normal(size=(len(label), 32)) * (0.3 + 2 * (1 - quality))[:, None]
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float16)
    samples = pd.DataFrame(
        {
            "sample_id": np.arange(len(label)) + 100,
            "label": label,
            "feature_norm": quality + rng.normal(0, 0.3, len(label)),
            "brisque": 50 - 40 * quality,
            "true_quality": quality,
        }
    )
    if with_split:
        samples["split"] = np.where(np.arange(len(label)) % per_id < 3, "holdout", "train")
    table = pairs.pairs_table(
        samples, emb, max_genuine_per_class=100, impostor_pairs_per_stratum=5000, seed=0
    )
    return samples, table


def _settings(replicates: int) -> edc_tables.EdcSettings:
    return edc_tables.EdcSettings(
        fmrs=[0.01], limits=[0.2], step=0.01, replicates=replicates, confidence=0.95, seed=0
    )


@pytest.mark.parametrize("with_split", [False, True])
def test_evaluate_all_pairs_and_each_split(with_split: bool):
    samples, table = _frames(with_split)
    proxies = edc_tables.proxy_columns(samples, ["feature_norm", "feature_norm_z"])
    assert proxies == ["feature_norm", "brisque", "true_quality"]
    res = edc_tables.evaluate(samples, table, model="m", proxies=proxies, settings=_settings(20))
    expected = {"all", "holdout", "train"} if with_split else {"all"}
    assert set(res.table["split"]) == expected and set(res.table["model"]) == {"m"}
    for split, part in res.table.groupby("split"):
        sel = table if split == "all" else table[table["split"] == split]
        assert (part["n_genuine"] == sel["genuine"].sum()).all()
        assert (part["n_impostor"] == (~sel["genuine"]).sum()).all()
    # BRISQUE is negated: 50 - 40 q orders images exactly as q does
    p = res.table.set_index(["split", "quality"])["pauc"]
    assert p[("all", "brisque")] == pytest.approx(p[("all", "true_quality")])


def test_evaluate_refuses_pairs_of_other_samples():
    samples, table = _frames(False)
    table.loc[0, "sample_id_a"] = 99_999
    with pytest.raises(ValueError, match="not in samples.parquet"):
        edc_tables.evaluate(
            samples, table, model="m", proxies=["feature_norm"], settings=_settings(2)
        )


def test_no_genuine_pairs_gives_an_empty_table_not_a_failure():
    samples, table = _frames(False)
    res = edc_tables.evaluate(
        samples,
        table[~table["genuine"]],
        model="m",
        proxies=["feature_norm"],
        settings=_settings(2),
    )
    assert res.table.empty and {"model", "split", "pauc"} <= set(res.table.columns)


@pytest.mark.parametrize("with_split", [False, True])
def test_gap_closed_equals_its_formula_on_every_row(with_split: bool):
    """gap_closed = (random - pauc) / (random - ideal), the references of the row's own
    (split, fmr, discard_limit): recomputed here by a loop over the rows."""
    samples, table = _frames(with_split)
    proxies = edc_tables.proxy_columns(samples, ["feature_norm"])
    settings = edc_tables.EdcSettings(
        fmrs=[0.01, 0.05], limits=[0.2, 0.3], step=0.01, replicates=2, confidence=0.95, seed=0
    )
    res = edc_tables.evaluate(samples, table, model="m", proxies=proxies, settings=settings)
    t = res.table
    assert list(t.columns)[-1] == "gap_closed"
    for _, row in t.iterrows():
        same = (
            (t["split"] == row["split"])
            & (t["fmr"] == row["fmr"])
            & (t["discard_limit"] == row["discard_limit"])
        )
        random_pauc = t.loc[same & (t["quality"] == "random"), "pauc"].item()
        ideal_pauc = t.loc[same & (t["quality"] == "ideal"), "pauc"].item()
        want = (random_pauc - row["pauc"]) / (random_pauc - ideal_pauc)
        assert row["gap_closed"] == pytest.approx(want, rel=1e-12)
    by_quality = t.groupby("quality")["gap_closed"]
    assert np.allclose(by_quality.get_group("random"), 0)
    assert np.allclose(by_quality.get_group("ideal"), 1)
    assert (by_quality.get_group("true_quality") > 0).all()  # the planted quality helps


def test_gap_closed_is_nan_without_errors_to_discard():
    t = pd.DataFrame(
        {
            "model": "m",
            "split": "all",
            "fmr": 0.01,
            "discard_limit": 0.2,
            "quality": ["random", "ideal", "q"],
            "pauc": [0.0, 0.0, 0.0],
        }
    )
    assert edc_tables.gap_closed(t).isna().all()


def test_face_quality_references_are_never_edc_proxies():
    """They are built from the genuine similarities the EDC measures (circular)."""
    samples = pd.DataFrame(
        {c: [0.0] for c in ["feature_norm", "brisque", "centre_similarity", "sdd_quality"]}
    )
    assert edc_tables.proxy_columns(samples, ["feature_norm"]) == ["feature_norm", "brisque"]
