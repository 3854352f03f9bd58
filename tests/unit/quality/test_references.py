"""featnorm.quality.references and .head: each reference against a hand computation or scipy,
determinism, NaN policy, rows in = rows out, and the head's checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr, wasserstein_distance

from featnorm import status
from featnorm.quality import head, references
from featnorm.quality.references import SddSettings

# Genuine similarities are stored as float16: |error| <= 2^-11 per value near 1, so a W1 (a
# mean of gaps) is within 5e-4 of its float64 value.
FLOAT16_W1 = 5e-4


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _exact_sdd(emb: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """W1 of all genuine against all impostor similarities, by plain loops and scipy: SDD when
    m covers every other image (nothing is sampled)."""
    sims = _unit(emb) @ _unit(emb).T
    out = []
    for i in range(len(codes)):
        genuine = [sims[i, j] for j in range(len(codes)) if codes[j] == codes[i] and j != i]
        impostor = [sims[i, j] for j in range(len(codes)) if codes[j] != codes[i]]
        out.append(wasserstein_distance(genuine, impostor) if genuine else np.nan)
    return np.array(out)


def test_wasserstein_rows_equals_scipy_with_weights_and_padding():
    rng = np.random.default_rng(3)
    u, v = rng.normal(size=(6, 9)), rng.normal(size=(6, 5))
    u_weights = rng.random((6, 9))
    u_weights[:, 7:] = 0  # padding slots
    u_weights /= u_weights.sum(axis=1, keepdims=True)
    v_weights = np.full((6, 5), 0.2)
    got = references.wasserstein_rows(u, u_weights, v, v_weights)
    want = [wasserstein_distance(u[r], v[r], u_weights[r], v_weights[r]) for r in range(6)]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_centre_similarity_by_hand():
    """Class 0: e1 = (1, 0), e2 = (0, 1), e3 = (1, 1)/sqrt 2. The mean of e2 and e3 points at
    67.5 degrees, so e1's value is cos 67.5 deg; e3's others are e1 and e2, mean along e3: 1.
    Class 1 has one image: NaN."""
    emb = np.array([[1, 0], [0, 1], [1, 1], [3, -1]], dtype=np.float16)
    got = references.centre_similarity(emb, np.array([0, 0, 0, 1]))
    np.testing.assert_allclose(got[:3], [np.cos(np.radians(67.5))] * 2 + [1.0], atol=1e-3)
    assert np.isnan(got[3])


def test_centre_similarity_equals_a_loop_over_many_classes_in_small_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 16)).astype(np.float16)
    codes = rng.integers(0, 40, 300)
    monkeypatch.setattr(references, "BLOCK_ELEMENTS", 16 * 20)  # ~20 rows: classes split chunks
    got = references.centre_similarity(emb, codes)
    unit = _unit(emb)
    for i in range(300):
        others = unit[(codes == codes[i]) & (np.arange(300) != i)]
        mean = others.mean(axis=0)
        assert got[i] == pytest.approx(unit[i] @ mean / np.linalg.norm(mean), abs=1e-6)


@pytest.mark.parametrize(
    ("sizes", "m"), [((3, 3), 24), ((3, 3, 3), 6), ((2, 5, 1), 24), ((4, 7, 5), 20)]
)
def test_sdd_quality_equals_scipy_when_m_covers_every_image(sizes, m):
    """With m >= every class's other members and every other class's images, nothing is
    sampled: SDD is W1(all genuine, all impostor) exactly (up to float16 storage)."""
    rng = np.random.default_rng(len(sizes) + m)
    codes = np.repeat(np.arange(len(sizes)), sizes)
    emb = rng.normal(size=(len(codes), 8)).astype(np.float16)
    got = references.sdd_quality(emb, codes, SddSettings(similarities=m, resamplings=3, seed=0))
    want = _exact_sdd(emb, codes)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], atol=FLOAT16_W1)


def _clustered(n_classes: int, per_class: int, seed: int):
    """Embeddings of identities with per-image noise (a real signal for SDD to find)."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_classes), per_class)
    centres = rng.normal(size=(n_classes, 32))
    noise = rng.uniform(0.3, 3.0, size=len(codes))
    emb = centres[codes] + noise[:, None] * rng.normal(size=(len(codes), 32)) / np.sqrt(2)
    return emb.astype(np.float16), codes, noise


def test_sdd_quality_same_seed_same_values_other_seed_close_ranks():
    emb, codes, noise = _clustered(30, 40, seed=1)
    settings = SddSettings(similarities=8, resamplings=4, seed=0)
    a = references.sdd_quality(emb, codes, settings)
    assert np.array_equal(a, references.sdd_quality(emb, codes, settings))
    b = references.sdd_quality(emb, codes, SddSettings(similarities=8, resamplings=4, seed=1))
    assert not np.array_equal(a, b)  # the seed draws other similarities
    assert spearmanr(a, b).statistic > 0.8  # ... of the same quantity
    # noisier images lie further from their class (-0.78 with these seeds)
    assert spearmanr(a, noise).statistic < -0.7


@pytest.mark.parametrize("seed", range(5))
def test_sdd_quality_draws_m_distinct_genuine_others(seed):
    """Class 0: 12 images near one direction; class 1: 30 copies of the opposite direction,
    so every impostor similarity of image i is the same c_i and lies below every genuine
    one. Then W1 = mean(genuine draw) - c_i exactly. With k = 1 and m = 10 of the 11 others
    drawn *without* replacement, that mean lies between the means of the lowest and the
    highest 10; a draw with replacement would leave that band for most images."""
    rng = np.random.default_rng(seed)
    base = np.eye(16)[0]
    own = base + 0.6 * rng.normal(size=(12, 16)) / 4
    emb = np.vstack([own, np.tile(-base, (30, 1))]).astype(np.float16)
    codes = np.repeat([0, 1], [12, 30])
    got = references.sdd_quality(emb, codes, SddSettings(similarities=10, resamplings=1, seed=seed))
    sims = _unit(emb) @ _unit(emb).T
    for i in range(12):
        others = np.sort(np.delete(sims[i, :12], i))
        c = sims[i, 12]
        assert others[0] > c  # the two sets do not overlap
        low, high = others[:10].mean() - c, others[1:].mean() - c
        assert low - FLOAT16_W1 <= got[i] <= high + FLOAT16_W1, (i, low, got[i], high)


def test_sdd_quality_nan_for_a_lone_image_and_for_a_single_class():
    emb = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float16)
    got = references.sdd_quality(emb, np.array([0, 0, 0, 0, 1]), SddSettings())
    assert np.isnan(got[4]) and np.isfinite(got[:4]).all()
    assert np.isnan(references.sdd_quality(emb, np.zeros(5, int), SddSettings())).all()


@pytest.mark.parametrize("name", ["similarities", "resamplings"])
def test_sdd_settings_refuse_zero(name):
    with pytest.raises(ValueError, match=f"references.sdd.{name} = 0"):
        SddSettings(**{name: 0})


def test_certainty_ratio_by_hand():
    """Centres (unnormalised on purpose) at 0, 90 and 180 degrees. e = (1, 0) of class 0:
    CCS 1, NNCCS max(0, -1) = 0, CR = 1 / (1 + eps). e = (0.6, 0.8) of class 1: CCS 0.8,
    NNCCS 0.6, CR = 0.8 / 1.6 = 0.5."""
    kernel = np.array([[3.0, 0.0, -2.0], [0.0, 5.0, 0.0]])
    emb = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float16)
    got = references.certainty_ratio(emb, np.array([0, 1]), kernel)
    np.testing.assert_allclose(got, [1 / (1 + references.CR_EPSILON), 0.5], rtol=1e-3)


def test_certainty_ratio_equals_a_loop():
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(50, 16)).astype(np.float16)
    kernel = rng.normal(size=(16, 9))
    labels = rng.integers(0, 9, 50)
    got = references.certainty_ratio(emb, labels, kernel)
    cos = _unit(emb) @ (kernel / np.linalg.norm(kernel, axis=0))
    for i in range(50):
        nn = max(cos[i, c] for c in range(9) if c != labels[i])
        assert got[i] == pytest.approx(cos[i, labels[i]] / (nn + 1 + 1e-9), abs=1e-6)


def test_certainty_ratio_refuses_a_head_of_another_width():
    with pytest.raises(ValueError, match="does not belong to this model"):
        references.certainty_ratio(np.ones((2, 4), np.float16), np.zeros(2, int), np.ones((3, 2)))


def test_head_mismatch():
    assert references.head_mismatch(3, np.array([0, 2, 1, 2])) is None
    assert "4 classes but" in references.head_mismatch(4, np.array([0, 1, 2]))
    assert "run -1..1" in references.head_mismatch(2, np.array([-1, 1]))


def test_reference_table_keeps_every_row_with_its_status():
    """Rows in = rows out: a failed embedding keeps its reason, the lone ok image of a class
    is single_image_class (NaN centre and SDD, but a certainty ratio)."""
    rng = np.random.default_rng(0)
    samples = pd.DataFrame(
        {
            "sample_id": np.arange(7),
            "label": [0, 0, 0, 1, 1, 2, 2],
            "embed_status": ["ok", "ok", "ok", "ok", status.TOO_SMALL, "ok", "ok"],
        }
    )
    emb = rng.normal(size=(6, 8)).astype(np.float16)
    table, counts = references.reference_table(
        samples, emb, sdd=SddSettings(), kernel=rng.normal(size=(8, 3))
    )
    assert list(table["sample_id"]) == list(range(7))
    assert list(table["status"]) == ["ok"] * 3 + [
        status.SINGLE_IMAGE_CLASS,
        status.TOO_SMALL,
        "ok",
        "ok",
    ]
    assert counts == {"ok": 5, status.SINGLE_IMAGE_CLASS: 1, status.TOO_SMALL: 1}
    assert table.loc[[3, 4], ["centre_similarity", "sdd_quality"]].isna().all().all()
    assert np.isfinite(table.loc[3, "certainty_ratio"]) and np.isnan(
        table.loc[4, "certainty_ratio"]
    )
    no_head, _ = references.reference_table(samples, emb, sdd=SddSettings(), kernel=None)
    assert "certainty_ratio" not in no_head.columns


def test_join_references_adds_columns_and_refuses_other_images():
    samples = pd.DataFrame({"sample_id": [5, 6, 7], "label": [0, 0, 1]})
    refs = pd.DataFrame(
        {"sample_id": [7, 5, 6], "status": ["a", "b", "c"], "centre_similarity": [0.1, 0.2, 0.3]}
    )
    joined = references.join_references(samples, refs)
    assert list(joined["references_status"]) == ["b", "c", "a"]
    assert list(joined["centre_similarity"]) == [0.2, 0.3, 0.1]
    with pytest.raises(ValueError, match="another manifest"):
        references.join_references(samples, refs.iloc[:2])


def test_read_head_kernel_reads_the_adaface_layout_and_says_why_not(tmp_path):
    kernel = torch.randn(8, 5)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"model.x": torch.ones(1), "head.kernel": kernel}}, path)
    got, reason = head.read_head_kernel(str(path))
    assert reason is None and np.array_equal(got, kernel.numpy())
    torch.save({"model.x": torch.ones(1)}, path)
    got, reason = head.read_head_kernel(str(path))
    assert got is None and "no margin head" in reason
