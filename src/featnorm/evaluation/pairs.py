"""Comparison pairs for the error-versus-discard characteristic: genuine and impostor pairs with
their cosine similarity.

Genuine pairs are all within-identity pairs of images, capped per identity
(``max_genuine_per_class``; above the cap a uniform sample without replacement). Impostor pairs
are ``impostor_pairs`` distinct cross-identity pairs drawn uniformly over all cross-identity image
pairs (every such pair equally likely, so identities weigh by their images), capped by how many
exist. Only images with status ``ok`` take part.

Strata: when the samples carry a ``split`` column (the demo's train / holdout), pairs are drawn
per stratum, a stratum being one split (both images in it) or ``mixed`` (the two images in
different splits); the cap and the impostor count apply per stratum, and the ``split`` column of
the output names the stratum. Without a ``split`` column there is one stratum, ``all``.

Determinism: every random draw comes from ``numpy.random.default_rng([seed, stratum, label])``
(genuine, per identity) or ``default_rng([seed, stratum, IMPOSTOR_STREAM])``: the same inputs and
seed give the same pairs, and an identity's genuine sample does not depend on the other
identities.

Memory: the embeddings are held once as float16 (N x 512 x 2 bytes: 506 MB for CASIA-WebFace's
494k images) and scores are computed in blocks of ``SCORE_BLOCK`` pairs, so the peak is that
matrix plus the pair index arrays (24 bytes per pair) plus one block (a few tens of MB).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "ALL_STRATUM",
    "MIXED_STRATUM",
    "SCORE_BLOCK",
    "cosine_scores",
    "draw_pairs",
    "embedding_matrix",
    "genuine_pairs",
    "impostor_pairs",
    "output_schema",
    "pairs_table",
    "read_embeddings",
]

logger = logging.getLogger(__name__)

ALL_STRATUM = "all"
MIXED_STRATUM = "mixed"
SCORE_BLOCK = 32768  # pairs per scored block: 2 x 32768 x 512 float32 = 128 MB at most
LIFT_BYTES = 512 * 2**20  # a float32 copy of the embeddings up to this size is made once
IMPOSTOR_STREAM = 2**31 - 1  # rng stream id of the impostor draw (labels are the genuine ids)
# Impostors are enumerated (then sampled) rather than drawn by rejection when the request is at
# least this share of all existing impostor pairs: rejection would then take many rounds.
_ENUMERATE_SHARE = 0.25
_MAX_ENUMERATED = 50_000_000  # candidate pairs enumerated at most (800 MB of int64 keys)
_MAX_ROUNDS = 64  # rejection rounds before giving up (never reached below _ENUMERATE_SHARE)


def _triangle_pairs(n: int, linear: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row/column (i < j) of the upper-triangle pairs of ``n`` items numbered 0..n(n-1)/2-1
    row by row: (0,1), (0,2), ..., (0,n-1), (1,2), ..."""
    linear = np.asarray(linear, dtype=np.int64)
    # rows from the end: with m = C(n,2) - 1 - linear, the row from the end r solves
    # r(r+1)/2 <= m < (r+1)(r+2)/2
    total = n * (n - 1) // 2
    m = total - 1 - linear
    r = ((np.sqrt(8.0 * m + 1) - 1) // 2).astype(np.int64)
    # float rounding: step r down/up until the bracket holds
    r -= (r * (r + 1) // 2 > m).astype(np.int64)
    r += ((r + 1) * (r + 2) // 2 <= m).astype(np.int64)
    i = n - 2 - r
    j = n - 1 - (m - r * (r + 1) // 2)
    return i, j


def _capped(total: int, cap: int, stream: tuple[int, int, int]) -> np.ndarray:
    """Pair numbers ``0 .. total - 1`` of one identity, or a sorted uniform sample of ``cap`` of
    them without replacement when there are more; ``stream`` = (seed, stratum, label) seeds it."""
    if total <= cap:
        return np.arange(total, dtype=np.int64)
    seed, stratum, label = stream
    rng = np.random.default_rng([seed, stratum, int(label) & 0xFFFFFFFF])
    return np.sort(rng.choice(total, size=cap, replace=False))


def genuine_pairs(
    labels: np.ndarray, *, max_per_class: int, seed: int, stratum: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """All within-identity pairs of positions, at most ``max_per_class`` per identity.

    Parameters
    ----------
    labels : ndarray of shape (N,), int64
        Identity of each image (position).
    max_per_class : int >= 1
        Cap per identity; above it a uniform sample without replacement of that many pairs.
    seed, stratum : int
        The draw of identity ``g`` uses ``default_rng([seed, stratum, g])``.

    Returns
    -------
    a, b : ndarray of shape (P,), int64
        Positions with ``a < b`` and ``labels[a] == labels[b]``, grouped by identity (ascending
        label), within an identity in row-major triangle order.
    """
    if max_per_class < 1:
        raise ValueError(f"evaluation.max_genuine_per_class = {max_per_class}; it must be >= 1")
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    uniq, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    out_a: list[np.ndarray] = []
    out_b: list[np.ndarray] = []
    for g, start, n in zip(uniq, starts, counts, strict=True):
        if n < 2:
            continue
        linear = _capped(n * (n - 1) // 2, max_per_class, (seed, stratum, g))
        i, j = _triangle_pairs(int(n), linear)
        members = order[start : start + n]
        pa_, pb_ = members[i], members[j]
        out_a.append(np.minimum(pa_, pb_))
        out_b.append(np.maximum(pa_, pb_))
    if not out_a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_a), np.concatenate(out_b)


def _existing_impostors(labels_a: np.ndarray, labels_b: np.ndarray | None) -> int:
    """Cross-identity pairs within one group (``labels_b`` None) or between two groups."""
    if labels_b is None:
        n = len(labels_a)
        sizes = np.unique(labels_a, return_counts=True)[1].astype(np.int64)
        return int(n * (n - 1) // 2 - (sizes * (sizes - 1) // 2).sum())
    ua, ca = np.unique(labels_a, return_counts=True)
    ub, cb = np.unique(labels_b, return_counts=True)
    _, ia, ib = np.intersect1d(ua, ub, return_indices=True)
    return int(len(labels_a) * len(labels_b) - (ca[ia].astype(np.int64) * cb[ib]).sum())


def impostor_pairs(
    labels: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray | None],
    *,
    n_pairs: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct cross-identity pairs drawn uniformly, capped by what exists.

    Parameters
    ----------
    labels : ndarray of shape (N,), int64
    groups : (positions_a, positions_b or None)
        None: pairs within ``positions_a``; otherwise one image from each group (disjoint).
    n_pairs : int >= 0
        Pairs asked for; fewer when fewer exist (all of them, then).
    rng : numpy.random.Generator

    Returns
    -------
    a, b : ndarray of shape (P,), int64, positions with ``a < b`` and different labels, sorted.
    """
    pos_a, pos_b = groups
    pos_a = np.asarray(pos_a, dtype=np.int64)
    within = pos_b is None
    lab_a = labels[pos_a]
    lab_b = None if within else labels[np.asarray(pos_b, dtype=np.int64)]
    existing = _existing_impostors(lab_a, lab_b)
    want = min(int(n_pairs), existing)
    if want <= 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    n_a = len(pos_a)
    n_b = n_a if within else len(pos_b)
    candidates = n_a * (n_a - 1) // 2 if within else n_a * n_b
    if want >= _ENUMERATE_SHARE * existing and candidates <= _MAX_ENUMERATED:
        # enumerate every pair (few exist), keep the cross-identity ones, sample without replacement
        if within:
            i, j = np.triu_indices(n_a, k=1)
        else:
            i, j = np.divmod(np.arange(n_a * n_b, dtype=np.int64), n_b)
        keys = _keys(pos_a, pos_b, i, j, labels)
        keys = keys[keys >= 0]
        keys = np.sort(rng.choice(keys, size=want, replace=False))
    else:
        keys = np.sort(_draw_keys(pos_a, pos_b, labels, (n_a, n_b), want, rng))
    n_total = len(labels)
    return keys // n_total, keys % n_total


def _draw_keys(
    pos_a: np.ndarray,
    pos_b: np.ndarray | None,
    labels: np.ndarray,
    sizes: tuple[int, int],
    want: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``want`` distinct cross-identity pair keys (unsorted), drawn uniformly with replacement
    in rounds (``sizes``: images in group a and b) and deduplicated in draw order."""
    n_a, n_b = sizes
    keys = np.empty(0, np.int64)
    for _ in range(_MAX_ROUNDS):
        need = want - len(keys)
        draw = int(need * 1.1) + 16
        i = rng.integers(0, n_a, size=draw)
        j = rng.integers(0, n_b, size=draw)
        new = _keys(pos_a, pos_b, i, j, labels)
        new = new[new >= 0]
        # keep first occurrences in draw order, so the set is a uniform sample w/o replacement
        merged = np.concatenate([keys, new])
        _, first = np.unique(merged, return_index=True)
        merged = merged[np.sort(first)]
        keys = merged[:want]
        if len(keys) == want:
            return keys
    raise RuntimeError(  # pragma: no cover - needs an adversarial label layout
        f"drew only {len(keys)} of {want} impostor pairs in {_MAX_ROUNDS} rounds (almost "
        "all image pairs share an identity); lower evaluation.impostor_pairs"
    )


def _keys(pos_a, pos_b, i, j, labels) -> np.ndarray:
    """Canonical key ``min * N + max`` of each candidate pair; -1 for same identity or self."""
    a = pos_a[i]
    b = pos_a[j] if pos_b is None else np.asarray(pos_b, dtype=np.int64)[j]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    keys = lo * len(labels) + hi
    return np.where((labels[a] != labels[b]) & (a != b), keys, -1)


def _strata(split: np.ndarray | None) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, positions_a, positions_b or None) per stratum, in a fixed order."""
    if split is None:
        return [(ALL_STRATUM, np.arange(0), None)]
    names = sorted(pd.unique(split).tolist())
    out: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        (str(s), np.flatnonzero(split == s), None) for s in names
    ]
    for x in range(len(names)):
        for y in range(x + 1, len(names)):
            out.append(
                (
                    MIXED_STRATUM,
                    np.flatnonzero(split == names[x]),
                    np.flatnonzero(split == names[y]),
                )
            )
    return out


def draw_pairs(
    labels: np.ndarray,
    *,
    split: np.ndarray | None = None,
    max_genuine_per_class: int,
    impostor_pairs_per_stratum: int,
    seed: int,
) -> pd.DataFrame:
    """Genuine and impostor pairs of image positions, per stratum (see the module docstring).

    Parameters
    ----------
    labels : ndarray of shape (N,), int64
        Identity of each eligible image.
    split : ndarray of shape (N,) of str, or None
    max_genuine_per_class : int >= 1
    impostor_pairs_per_stratum : int >= 0
    seed : int

    Returns
    -------
    DataFrame with ``a``, ``b`` (positions, a < b), ``genuine`` (bool) and ``split`` (stratum).
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    parts = []
    for s_index, (name, pos_a, pos_b) in enumerate(_strata(split)):
        if split is None:
            pos_a = np.arange(n)
        if pos_b is None:
            ga, gb = genuine_pairs(
                labels[pos_a], max_per_class=max_genuine_per_class, seed=seed, stratum=s_index
            )
            ga, gb = pos_a[ga], pos_a[gb]
        else:
            ga, gb = _cross_genuine(
                labels,
                pos_a,
                pos_b,
                max_per_class=max_genuine_per_class,
                seed=seed,
                stratum=s_index,
            )
        rng = np.random.default_rng([seed, s_index, IMPOSTOR_STREAM])
        ia, ib = impostor_pairs(labels, (pos_a, pos_b), n_pairs=impostor_pairs_per_stratum, rng=rng)
        logger.info("stratum %s: %d genuine, %d impostor pairs", name, len(ga), len(ia))
        parts.append(
            pd.DataFrame(
                {
                    "a": np.concatenate([ga, ia]),
                    "b": np.concatenate([gb, ib]),
                    "genuine": np.concatenate([np.ones(len(ga), bool), np.zeros(len(ia), bool)]),
                    "split": name,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _cross_genuine(labels, pos_a, pos_b, *, max_per_class, seed, stratum):
    """Same-identity pairs with one image in each group, capped per identity."""
    out_a, out_b = [], []
    la, lb = labels[pos_a], labels[pos_b]
    for g in np.intersect1d(la, lb):
        ma, mb = pos_a[la == g], pos_b[lb == g]
        linear = _capped(len(ma) * len(mb), max_per_class, (seed, stratum, g))
        x, y = ma[linear // len(mb)], mb[linear % len(mb)]
        out_a.append(np.minimum(x, y))
        out_b.append(np.maximum(x, y))
    if not out_a:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_a), np.concatenate(out_b)


def embedding_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow fixed-size-list embedding column as an (N, D) float16 matrix (no float copy
    beyond one)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"{column.null_count} embedding(s) are missing among the rows asked for")
    dim = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float16, copy=False).reshape(-1, dim)


def read_embeddings(
    paths: list[str], sample_ids: np.ndarray, *, scratch: str | os.PathLike | None = None
) -> np.ndarray:
    """The embeddings of ``sample_ids`` (in that order) from embedding shard tables, as an
    (N, D) float16 matrix; one shard is in memory at a time besides the matrix.

    ``scratch``: a folder for a memory-mapped matrix file (``embeddings.f16``): the matrix
    (1 KB per 512-d image: 4.3 GB for WebFace4M, 12.6 GB for WebFace12M) then lives in the page
    cache, which the kernel can evict, instead of the process's own memory. Default: in memory.

    Raises ValueError when a shard has no ``embedding`` column or an id has no embedding.
    """
    import pyarrow.parquet as pq

    index = pd.Index(np.asarray(sample_ids))
    emb: np.ndarray | None = None
    filled = np.zeros(len(index), bool)
    for path in paths:
        if "embedding" not in pq.read_schema(path).names:
            raise ValueError(
                f"{path} has no embedding column; evaluation.edc stores it (it "
                "implies embed.save_embeddings): re-run the embed step"
            )
        table = pq.read_table(path, columns=["sample_id", "embedding"])
        row = index.get_indexer(table.column("sample_id").to_numpy())
        keep = np.flatnonzero(row >= 0)
        if len(keep) == 0:
            continue
        matrix = embedding_matrix(table.column("embedding").take(pa.array(keep)))
        if emb is None:
            emb = _matrix((len(index), matrix.shape[1]), scratch)
        emb[row[keep]] = matrix
        filled[row[keep]] = True
    if len(index) == 0:  # nothing eligible: an empty matrix of the stored width
        dim = pq.read_schema(paths[0]).field("embedding").type.list_size if paths else 0
        return np.zeros((0, dim), np.float16)
    if emb is None or not filled.all():
        missing = len(index) if emb is None else int((~filled).sum())
        raise ValueError(
            f"{missing} of {len(index)} ok image(s) have no embedding in the shards given"
        )
    return emb


def _matrix(shape: tuple[int, int], scratch: str | os.PathLike | None) -> np.ndarray:
    """A zeroed float16 matrix: in memory, or memory-mapped to ``scratch``/embeddings.f16."""
    if scratch is None:
        return np.zeros(shape, np.float16)
    return np.memmap(Path(scratch) / "embeddings.f16", dtype=np.float16, mode="w+", shape=shape)


def cosine_scores(
    embeddings: np.ndarray, a: np.ndarray, b: np.ndarray, *, block: int = SCORE_BLOCK
) -> np.ndarray:
    """Cosine similarity of rows ``a[k]`` and ``b[k]`` of ``embeddings``, float32 in [-1, 1]
    (higher = more alike).

    ``embeddings`` (N, D) may be float16: each block is lifted to float32 and every row is
    re-normalised there (float16 storage moves a unit vector's norm by about 1e-3), so the score
    is the cosine of the stored vectors up to float32 rounding. A zero row gives NaN.
    """
    # float16 -> float32 conversion is numpy's slow part: done once for the whole matrix when
    # that copy is small, else per gathered block; the values (and so the scores) are the same
    lifted = embeddings.astype(np.float32) if embeddings.size * 4 <= LIFT_BYTES else None

    def rows(index) -> np.ndarray:
        return lifted[index] if lifted is not None else embeddings[index].astype(np.float32)

    out = np.empty(len(a), dtype=np.float32)
    inv = np.empty(len(embeddings), dtype=np.float32)
    for s in range(0, len(embeddings), block):
        part = rows(slice(s, s + block))
        with np.errstate(divide="ignore"):
            inv[s : s + block] = 1.0 / np.sqrt(np.einsum("ij,ij->i", part, part))
    inv[~np.isfinite(inv)] = np.nan
    for s in range(0, len(a), block):
        xa = rows(a[s : s + block])
        xb = rows(b[s : s + block])
        out[s : s + block] = (
            np.einsum("ij,ij->i", xa, xb) * inv[a[s : s + block]] * inv[b[s : s + block]]
        )
    return out


def output_schema() -> pa.Schema:
    """Parquet schema of ``pairs.parquet``."""
    return pa.schema(
        [
            pa.field("sample_id_a", pa.int64()),
            pa.field("sample_id_b", pa.int64()),
            pa.field("score", pa.float32()),
            pa.field("genuine", pa.bool_()),
            pa.field("split", pa.string()),
        ]
    )


def pairs_table(
    samples: pd.DataFrame,
    embeddings: np.ndarray,
    *,
    max_genuine_per_class: int,
    impostor_pairs_per_stratum: int,
    seed: int,
) -> pd.DataFrame:
    """``pairs.parquet`` from the eligible samples and their embeddings.

    Parameters
    ----------
    samples : DataFrame
        The images that take part (status ok), with ``sample_id`` and ``label`` (and ``split``
        when present), row k matching ``embeddings[k]``.
    embeddings : ndarray of shape (N, D), float16 or float32
        L2-normalised embeddings (re-normalised in float32 anyway).
    max_genuine_per_class, impostor_pairs_per_stratum, seed : int
        See :func:`draw_pairs`.

    Returns
    -------
    DataFrame ``sample_id_a``, ``sample_id_b`` (a < b), ``score`` float32 cosine similarity,
    ``genuine`` bool, ``split`` (stratum; ``all`` without a split column).
    """
    if len(samples) != len(embeddings):
        raise ValueError(f"{len(samples)} samples but {len(embeddings)} embeddings")
    started = time.perf_counter()
    split = samples["split"].astype(str).to_numpy() if "split" in samples.columns else None
    drawn = draw_pairs(
        samples["label"].to_numpy(np.int64),
        split=split,
        max_genuine_per_class=max_genuine_per_class,
        impostor_pairs_per_stratum=impostor_pairs_per_stratum,
        seed=seed,
    )
    a, b = drawn["a"].to_numpy(), drawn["b"].to_numpy()
    ids = samples["sample_id"].to_numpy(np.int64)
    score = cosine_scores(embeddings, a, b)
    logger.info("scored %d pairs in %.1f s", len(a), time.perf_counter() - started)
    sid_a, sid_b = ids[a], ids[b]
    return pd.DataFrame(
        {
            "sample_id_a": np.minimum(sid_a, sid_b),
            "sample_id_b": np.maximum(sid_a, sid_b),
            "score": score,
            "genuine": drawn["genuine"].to_numpy(),
            "split": drawn["split"].to_numpy(),
        }
    )
