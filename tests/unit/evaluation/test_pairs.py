"""featnorm.evaluation.pairs: genuine and impostor pairs never cross identity wrongly, are distinct,
respect the caps, are deterministic for a seed; scores are cosine similarities."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from featnorm.evaluation import pairs

LABELS = np.repeat(np.arange(6), [2, 3, 7, 1, 12, 4])


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_triangle_numbering_matches_triu_indices(n: int):
    i, j = pairs._triangle_pairs(n, np.arange(n * (n - 1) // 2))
    ti, tj = np.triu_indices(n, k=1)
    np.testing.assert_array_equal(i, ti)
    np.testing.assert_array_equal(j, tj)


def test_triangle_numbering_at_casia_class_size():
    """Linear index -> (i, j) and back, for the largest CASIA-WebFace class (~800 images) and
    beyond, where float rounding of the square root could misplace a row."""
    n = 100_000
    linear = np.random.default_rng(0).integers(0, n * (n - 1) // 2, size=10_000)
    linear = np.concatenate([linear, [0, n * (n - 1) // 2 - 1]])
    i, j = pairs._triangle_pairs(n, linear)
    assert (i < j).all() and (j < n).all()
    back = i * n - i * (i + 1) // 2 + (j - i - 1)  # row-major position of (i, j)
    np.testing.assert_array_equal(back, linear)


def test_genuine_pairs_are_all_within_identity_pairs_below_the_cap():
    a, b = pairs.genuine_pairs(LABELS, max_per_class=1000, seed=0)
    expected = {
        (x, y) for x, y in itertools.combinations(range(len(LABELS)), 2) if LABELS[x] == LABELS[y]
    }
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == expected
    assert len(a) == len(expected)


def test_genuine_cap_samples_without_replacement():
    a, b = pairs.genuine_pairs(LABELS, max_per_class=5, seed=0)
    assert (LABELS[a] == LABELS[b]).all() and (a < b).all()
    got = pd.Series(LABELS[a]).value_counts().sort_index()
    sizes = np.bincount(LABELS)
    expected = {g: min(5, s * (s - 1) // 2) for g, s in enumerate(sizes) if s > 1}
    assert got.to_dict() == expected
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(a)


def test_sampling_is_deterministic_and_depends_on_the_seed():
    kw = dict(max_genuine_per_class=4, impostor_pairs_per_stratum=30)
    first = pairs.draw_pairs(LABELS, seed=7, **kw)
    pd.testing.assert_frame_equal(first, pairs.draw_pairs(LABELS, seed=7, **kw))
    assert not first.equals(pairs.draw_pairs(LABELS, seed=8, **kw))


@pytest.mark.parametrize("asked", [10, 60, 10_000])
def test_impostors_are_distinct_cross_identity_and_capped(asked: int):
    n = len(LABELS)
    existing = sum(1 for x, y in itertools.combinations(range(n), 2) if LABELS[x] != LABELS[y])
    a, b = pairs.impostor_pairs(
        LABELS, (np.arange(n), None), n_pairs=asked, rng=np.random.default_rng(1)
    )
    assert len(a) == min(asked, existing)
    assert (LABELS[a] != LABELS[b]).all() and (a < b).all()
    assert len(set(zip(a.tolist(), b.tolist(), strict=True))) == len(a)


def test_impostor_draw_is_uniform_over_pairs():
    """Every cross-identity pair is equally likely: over many draws of 20 pairs from 3 images
    per side of a 2-identity set, each of the 9 pairs turns up about 20/9 of the time."""
    labels = np.repeat([0, 1], [3, 3])
    hits = np.zeros((6, 6))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        a, b = pairs.impostor_pairs(labels, (np.arange(6), None), n_pairs=1, rng=rng)
        hits[a, b] += 1
    counts = hits[:3, 3:].ravel()
    assert counts.sum() == 3000
    assert np.abs(counts / 3000 - 1 / 9).max() < 0.03


def test_split_strata_keep_pairs_inside_their_split():
    rng = np.random.default_rng(2)
    split = np.where(rng.uniform(size=len(LABELS)) < 0.3, "holdout", "train")
    drawn = pairs.draw_pairs(
        LABELS, split=split, max_genuine_per_class=100, impostor_pairs_per_stratum=50, seed=0
    )
    assert set(drawn["split"]) <= {"holdout", "train", "mixed"}
    sa, sb = split[drawn["a"]], split[drawn["b"]]
    same = drawn["split"] != "mixed"
    assert (sa[same] == drawn.loc[same, "split"]).all() and (sb[same] == sa[same]).all()
    assert (sa[~same] != sb[~same]).all()
    gen = drawn["genuine"].to_numpy()
    assert (LABELS[drawn["a"]][gen] == LABELS[drawn["b"]][gen]).all()
    assert (LABELS[drawn["a"]][~gen] != LABELS[drawn["b"]][~gen]).all()
    # below the cap every within-identity pair appears exactly once, in its stratum
    key = set(zip(drawn.loc[gen, "a"], drawn.loc[gen, "b"], strict=True))
    expected = {
        (x, y) for x, y in itertools.combinations(range(len(LABELS)), 2) if LABELS[x] == LABELS[y]
    }
    assert key == expected and gen.sum() == len(expected)


def test_cosine_scores_match_a_plain_loop():
    rng = np.random.default_rng(4)
    emb = rng.normal(size=(30, 16))
    emb16 = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float16)
    a, b = rng.integers(0, 30, size=(2, 100))
    got = pairs.cosine_scores(emb16, a, b, block=7)
    x = emb16.astype(np.float64)
    for k in range(100):
        u, v = x[a[k]], x[b[k]]
        assert got[k] == pytest.approx(u @ v / np.sqrt((u @ u) * (v @ v)), abs=1e-6)
    assert got.dtype == np.float32


def test_cosine_scores_are_the_same_whether_the_matrix_is_converted_once_or_per_block(
    monkeypatch,
):
    rng = np.random.default_rng(5)
    emb16 = rng.normal(size=(40, 16)).astype(np.float16)
    emb16[3] = 0  # a zero row: NaN either way
    a, b = rng.integers(0, 40, size=(2, 200))
    once = pairs.cosine_scores(emb16, a, b, block=9)
    monkeypatch.setattr(pairs, "LIFT_BYTES", 0)  # too big to convert once: per block
    per_block = pairs.cosine_scores(emb16, a, b, block=9)
    np.testing.assert_array_equal(once, per_block)


def test_pairs_table_uses_sample_ids_and_excludes_nothing_it_is_given():
    rng = np.random.default_rng(6)
    samples = pd.DataFrame({"sample_id": np.arange(len(LABELS)) * 10 + 3, "label": LABELS})
    emb = rng.normal(size=(len(LABELS), 8)).astype(np.float16)
    table = pairs.pairs_table(
        samples, emb, max_genuine_per_class=10, impostor_pairs_per_stratum=20, seed=0
    )
    assert list(table.columns) == ["sample_id_a", "sample_id_b", "score", "genuine", "split"]
    assert (table["sample_id_a"] < table["sample_id_b"]).all()
    label = dict(zip(samples["sample_id"], samples["label"], strict=True))
    same = table["sample_id_a"].map(label) == table["sample_id_b"].map(label)
    assert (same == table["genuine"]).all() and set(table["split"]) == {"all"}


def test_embedding_matrix_reads_fixed_size_lists():
    arr = pa.array([[1.0, 0.0], [0.0, 1.0]], type=pa.list_(pa.float16(), 2))
    np.testing.assert_array_equal(pairs.embedding_matrix(arr), [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="missing"):
        pairs.embedding_matrix(pa.array([[1.0, 0.0], None], type=pa.list_(pa.float16(), 2)))


@pytest.mark.parametrize("with_split", [False, True])
def test_pairs_and_edc_steps_from_tables(tmp_path, with_split: bool):
    """`featnorm pairs` and `featnorm edc` on written tables: non-ok images take no part, the
    split column (when present) gives per-split EDC rows."""
    from featnorm import tableio
    from featnorm.cli.main import main

    rng = np.random.default_rng(9)
    label = np.repeat(np.arange(20), 6)
    n = len(label)
    quality = rng.uniform(size=n)
    emb = rng.normal(size=(20, 512))[label] + rng.normal(size=(n, 512)) * (2 - quality)[:, None]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    status = np.where(np.arange(n) % 17 == 5, "brisque:too_small", "ok")
    samples = pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "label": label,
            "status": status,
            "feature_norm": quality,
            "brisque": 40 - 20 * quality,
        }
    )
    if with_split:
        samples["split"] = np.where(np.arange(n) % 6 < 2, "holdout", "train")
    tableio.write_table(samples, tmp_path / "samples.parquet")
    shards = []
    for k, idx in enumerate(np.array_split(np.arange(n), 2)):
        part = pd.DataFrame(
            {
                "sample_id": idx,
                "feature_norm": quality[idx].astype(np.float32),
                "status": "ok",
                "resized": False,
                "embedding": list(emb[idx].astype(np.float16)),
            }
        )
        path = tmp_path / f"shard-{k}.parquet"
        schema = pa.schema(
            [
                ("sample_id", pa.int64()),
                ("feature_norm", pa.float32()),
                ("status", pa.string()),
                ("resized", pa.bool_()),
                ("embedding", pa.list_(pa.float16(), 512)),
            ]
        )
        tableio.write_table(part, path, schema=schema)
        shards.append(str(path))
    out = tmp_path / "pairs.parquet"
    assert (
        main(
            [
                "pairs",
                "--samples",
                str(tmp_path / "samples.parquet"),
                "--embed",
                *shards,
                "--max-genuine-per-class",
                "8",
                "--impostor-pairs",
                "500",
                "--seed",
                "3",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    table = tableio.read_table(out)
    e16 = emb.astype(np.float16).astype(np.float64)  # what the shards store
    a, b = e16[table["sample_id_a"]], e16[table["sample_id_b"]]
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(table["score"], cosine, atol=2e-6)  # float32 scoring
    ids = np.arange(n)[::-1]
    mapped = pairs.read_embeddings(shards, ids, scratch=tmp_path)
    assert isinstance(mapped, np.memmap) and (tmp_path / "embeddings.f16").exists()
    np.testing.assert_array_equal(mapped, pairs.read_embeddings(shards, ids))
    bad = set(samples.loc[samples["status"] != "ok", "sample_id"])
    assert not bad & (set(table["sample_id_a"]) | set(table["sample_id_b"]))
    assert tableio.read_metadata(out)["images_excluded"] == len(bad)
    assert (
        main(
            [
                "edc",
                "--samples",
                str(tmp_path / "samples.parquet"),
                "--pairs",
                str(out),
                "--model",
                "m",
                "--policies",
                "--fmrs",
                "0.01",
                "--discard-limits",
                "0.2",
                "--discard-step",
                "0.01",
                "--replicates",
                "10",
                "--confidence",
                "0.9",
                "--seed",
                "0",
                "--output",
                str(tmp_path / "edc.csv"),
                "--curves",
                str(tmp_path / "edc_curve.csv"),
            ]
        )
        == 0
    )
    edc = pd.read_csv(tmp_path / "edc.csv")
    assert set(edc["split"]) == ({"all", "holdout", "train"} if with_split else {"all"})
    assert set(edc["quality"]) == {"feature_norm", "brisque", "ideal", "random"}
