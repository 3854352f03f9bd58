"""Face-quality references computed from a model's own embeddings: how useful an image is to
*this* recognition model, as face-quality research labels quality.

All three are per image, oriented **higher = better**, NaN where not defined:

* ``centre_similarity``: cosine of the image's L2-normalised embedding to the mean of the
  L2-normalised embeddings of the *other* images of its class (the kind of label eDifFIQA
  distils; Babnik et al., IEEE T-BIOM 2024, doi:10.1109/TBIOM.2024.3376236). NaN for the only
  image of its class. Range [-1, 1].
* ``sdd_quality``: SDD-FIQA's pseudo label (Ou et al., CVPR 2021,
  pp. 7670-7679, arXiv:2103.05977): the 1-D Wasserstein-1 distance between the image's genuine
  similarities (to ``m`` other images of its class, drawn without replacement; all of them when
  the class has ``m`` or fewer others) and its impostor similarities (to ``m`` images of other
  classes, drawn uniformly without replacement), averaged over ``k`` resamplings. ``m = 24`` and
  ``k = 12`` as in the reference implementation (Tencent/TFace, branch ``quality``,
  ``generate_pseudo_labels/gen_pseudo_labels.py``). That script also min-max scales each
  resampling's distances to [0, 100] before averaging; featnorm keeps the distance in cosine
  units (the scaling is affine per resampling and barely moves the ranking). NaN for the only
  image of its class. Range [0, 2].
* ``certainty_ratio``: CR-FIQA's target (Boutros et al., CVPR 2023,
  pp. 5836-5845, arXiv:2112.06592): ``CCS / (NNCCS + 1 + eps)``, CCS the cosine of the
  embedding to its own class centre in the margin head (``head.kernel``, embedding_dim x
  classes, columns L2-normalised), NNCCS the largest cosine to another class's centre, cosines
  clipped to [-1, 1] as the reference ``CR_FIQA_LOSS`` does, ``eps = 1e-9``. Needs a head whose
  columns are the dataset's labels (:func:`head_mismatch`). Range about [-1, 1e9] (positive
  when the own centre is closer than 0).

Only images whose embedding is ``ok`` take part, as members of a class and as impostors.

These references are built from the same genuine similarities the EDC measures, so they are
never EDC proxies (that would be circular): they are compared with the norm by correlation only.

Memory: the embeddings stay float16 (N x D x 2 bytes); work is done in blocks of at most
``BLOCK_ELEMENTS`` float32 values; SDD keeps every image's genuine draws as float16
(N x k x m x 2 bytes: 290 MB for CASIA-WebFace's 494k images at m = 24, k = 12).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.status import OK, SINGLE_IMAGE_CLASS

logger = logging.getLogger(__name__)

__all__ = [
    "BLOCK_ELEMENTS",
    "CENTRE_SIMILARITY",
    "CERTAINTY_RATIO",
    "CR_EPSILON",
    "REFERENCE_COLUMNS",
    "SDD_QUALITY",
    "SDD_RESAMPLINGS",
    "SDD_SIMILARITIES",
    "SddSettings",
    "centre_similarity",
    "certainty_ratio",
    "head_mismatch",
    "join_references",
    "reference_table",
    "sdd_quality",
    "unit_rows",
    "wasserstein_rows",
]

CENTRE_SIMILARITY = "centre_similarity"
SDD_QUALITY = "sdd_quality"
CERTAINTY_RATIO = "certainty_ratio"
#: the reference columns, all higher = better
REFERENCE_COLUMNS = (CENTRE_SIMILARITY, SDD_QUALITY, CERTAINTY_RATIO)

SDD_SIMILARITIES = 24  # m: TFace gen_pseudo_labels.py, fix_num=24 (genuine and impostor alike)
SDD_RESAMPLINGS = 12  # k: the same script averages 12 resamplings
CR_EPSILON = 1e-9  # CR-FIQA: keeps NNCCS + 1 + eps > 0 for NNCCS = -1
# At most this many float32 values per working block (64 MB): bounds memory at any scale.
BLOCK_ELEMENTS = 16 * 2**20
# The impostor pool of a block, per resampling, holds this many times m images; each image of
# the block draws its m impostors from the pool members outside its class. Blocks are random
# image subsets, so sharing a pool correlates no class with anything.
_POOL_FACTOR = 2


@dataclass(frozen=True)
class SddSettings:
    """SDD-FIQA's sampling: ``similarities`` per side (m), ``resamplings`` (k), ``seed``."""

    similarities: int = SDD_SIMILARITIES
    resamplings: int = SDD_RESAMPLINGS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("similarities", "resamplings"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"references.sdd.{name} = {getattr(self, name)} must be >= 1 "
                    f"(SDD-FIQA uses m = {SDD_SIMILARITIES}, k = {SDD_RESAMPLINGS})"
                )


def unit_rows(block: np.ndarray) -> np.ndarray:
    """Rows of ``block`` (float16 or float32) as float32 unit vectors (a zero row stays 0)."""
    rows = np.asarray(block, dtype=np.float32)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norm, out=np.zeros_like(rows), where=norm > 0)


def _class_order(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row order that groups each class (stable), and the start of each class in it (C + 1)."""
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=int(codes.max()) + 1 if len(codes) else 0)
    return order, np.concatenate([[0], np.cumsum(counts)])


def _class_chunks(starts: np.ndarray, max_rows: int) -> Iterator[tuple[int, int]]:
    """Ranges [first class, end class) of whole classes holding at most ``max_rows`` rows (one
    class alone when it is larger)."""
    first, n_classes = 0, len(starts) - 1
    while first < n_classes:
        end = first + 1
        while end < n_classes and starts[end + 1] - starts[first] <= max_rows:
            end += 1
        yield first, end
        first = end


def centre_similarity(embeddings: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Cosine of each image to the mean of the other images of its class (higher = better).

    Parameters
    ----------
    embeddings : ndarray of shape (N, D), float16 or float32
        Embeddings of the ok images (re-normalised to unit length here).
    codes : ndarray of shape (N,), int
        Class index 0 .. C - 1 of each row.

    Returns
    -------
    ndarray of shape (N,), float64 in [-1, 1]; NaN for the only image of its class.
    """
    codes = np.asarray(codes, dtype=np.int64)
    out = np.full(len(codes), np.nan)
    if not len(codes):
        return out
    order, starts = _class_order(codes)
    max_rows = max(1, BLOCK_ELEMENTS // (2 * embeddings.shape[1]))  # float64 rows: 2 values
    for first, end in _class_chunks(starts, max_rows):
        rows = order[starts[first] : starts[end]]
        unit = unit_rows(embeddings[rows]).astype(np.float64)
        local = starts[first:end] - starts[first]
        sizes = np.diff(starts[first : end + 1])
        nonempty = sizes > 0
        sums = np.add.reduceat(unit, local[nonempty], axis=0)
        others = np.repeat(sums, sizes[nonempty], axis=0) - unit  # sum of the other members
        norm = np.linalg.norm(others, axis=1)
        alone = np.repeat(sizes[nonempty], sizes[nonempty]) < 2
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.einsum("ij,ij->i", unit, others) / norm
        cos[alone | (norm == 0)] = np.nan
        out[rows] = np.clip(cos, -1.0, 1.0)
    return out


def wasserstein_rows(
    u: np.ndarray, u_weights: np.ndarray, v: np.ndarray, v_weights: np.ndarray
) -> np.ndarray:
    """1-D Wasserstein-1 distance between two weighted samples, row by row.

    ``u`` (R, a) and ``v`` (R, b) hold the values; ``u_weights`` and ``v_weights`` (same shapes)
    their weights, each row summing to 1 (a zero weight drops a value, e.g. padding). Equals
    ``scipy.stats.wasserstein_distance(u[r], v[r], u_weights[r], v_weights[r])`` per row: the
    integral of |F_u - F_v| over the line, summed over the gaps between sorted values.

    Returns ndarray of shape (R,), float64, >= 0.
    """
    values = np.concatenate([u, v], axis=1).astype(np.float64)
    weights = np.concatenate([u_weights, -np.asarray(v_weights)], axis=1).astype(np.float64)
    order = np.argsort(values, axis=1, kind="stable")
    values = np.take_along_axis(values, order, axis=1)
    cdf_gap = np.cumsum(np.take_along_axis(weights, order, axis=1), axis=1)[:, :-1]
    return np.sum(np.abs(cdf_gap) * np.diff(values, axis=1), axis=1)


def _other_positions(n: int) -> np.ndarray:
    """(n, n - 1): for row i, the indices 0 .. n - 1 without i."""
    p = np.arange(n - 1)[None, :]
    return p + (p >= np.arange(n)[:, None])


def _genuine_draws(
    embeddings: np.ndarray, codes: np.ndarray, m: int, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Every image's genuine similarities per resampling, float16 (N, k, m), ascending in the
    first ``count`` slots, and ``count`` (N,) = min(m, class size - 1).

    A class with at most m others gives each image all of them, the same in every resampling
    (as the reference does). A larger class is put in a random cyclic order per resampling and
    each image takes the m members after it: for any one image, a uniformly random m-subset of
    the others (without replacement), at O(n m) instead of O(n^2) draws.
    """
    draws = np.zeros((len(codes), k, m), np.float16)
    count = np.zeros(len(codes), np.int64)
    order, starts = _class_order(codes)
    after = np.arange(1, m + 1)
    for c in range(len(starts) - 1):
        rows = order[starts[c] : starts[c + 1]]
        n = len(rows)
        if n < 2:
            continue
        unit = unit_rows(embeddings[rows])
        count[rows] = min(m, n - 1)
        if n - 1 > m:
            cycles = rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)  # (k, n)
            position = np.argsort(cycles, axis=1)
            partners = np.take_along_axis(  # (k, n, m): the m members after each image
                cycles[:, None, :], (position[:, :, None] + after) % n, axis=2
            )
        piece = max(1, BLOCK_ELEMENTS // (n * max(k, 1)))  # rows of the Gram matrix at a time
        for s in range(0, n, piece):
            mine = slice(s, min(n, s + piece))
            gram = unit[mine] @ unit.T  # (piece, n)
            if n - 1 <= m:
                sims = np.take_along_axis(gram, _other_positions(n)[mine], axis=1)
                draws[rows[mine], :, : n - 1] = np.sort(sims, axis=1)[:, None, :]
            else:
                sims = np.take_along_axis(gram[None], partners[:, mine], axis=2)  # (k, piece, m)
                draws[rows[mine]] = np.sort(sims, axis=2).transpose(1, 0, 2)
    return draws, count


def _impostor_block(
    unit: np.ndarray,
    own: np.ndarray,
    embeddings: np.ndarray,
    codes: np.ndarray,
    m: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One resampling's impostor similarities of a block of images (B, m; 0 in an empty
    slot), their weights (1 / drawn, 0 in an empty slot) and how many were drawn (B,).

    The pool is a uniformly random sample of the images without replacement, in random order;
    each image takes its first m members outside its class, so for any one image the draws are
    a uniformly random m-subset of the other classes' images.
    """
    n = len(codes)
    pool = rng.choice(n, size=min(n, _POOL_FACTOR * m), replace=False)
    pool_codes = codes[pool]
    members = unit_rows(embeddings[pool])  # (P, D)
    # most images: no member of their class among the first m, which they take as they are
    impostors = unit @ members[:m].T  # (B, min(P, m))
    if impostors.shape[1] < m:  # fewer images than m: pad, the rows are redone below
        impostors = np.pad(impostors, ((0, 0), (0, m - impostors.shape[1])))
    weights = np.full((len(unit), m), 1.0 / m)
    drawn = np.full(len(unit), m)
    rows = np.flatnonzero(np.isin(own, pool_codes[:m]) | (len(pool) < m))
    if len(rows):  # the others take the first m members outside their class
        outside = pool_codes[None, :] != own[rows, None]  # (rows, P)
        rank = np.cumsum(outside, axis=1)
        row, col = np.nonzero(outside & (rank <= m))
        drawn[rows] = np.minimum(rank[:, -1], m)
        impostors[rows] = 0.0
        weights[rows] = 0.0
        slot = rank[row, col] - 1
        impostors[rows[row], slot] = np.einsum("ij,ij->i", unit[rows[row]], members[col])
        weights[rows[row], slot] = 1.0 / drawn[rows[row]]
    return impostors, weights, drawn


def sdd_quality(embeddings: np.ndarray, codes: np.ndarray, settings: SddSettings) -> np.ndarray:
    """SDD-FIQA quality of each image: mean over k resamplings of W1(genuine, impostor).

    Parameters
    ----------
    embeddings : ndarray of shape (N, D), float16 or float32
        Embeddings of the ok images.
    codes : ndarray of shape (N,), int
        Class index 0 .. C - 1 of each row.
    settings : SddSettings
        m, k and the seed: the same seed and inputs give the same values.

    Returns
    -------
    ndarray of shape (N,), float64 in [0, 2], higher = better; NaN for the only image of its
    class, and for every image when there is no other class.
    """
    codes = np.asarray(codes, dtype=np.int64)
    m, k = settings.similarities, settings.resamplings
    out = np.full(len(codes), np.nan)
    if len(codes) == 0 or codes.min() == codes.max():
        return out
    started = time.perf_counter()
    genuine_rng, impostor_rng = (np.random.default_rng([settings.seed, s]) for s in (0, 1))
    genuine, count = _genuine_draws(embeddings, codes, m, k, genuine_rng)
    block = max(1, BLOCK_ELEMENTS // ((k + _POOL_FACTOR) * m))
    permutation = impostor_rng.permutation(len(codes))  # random blocks
    for s in range(0, len(codes), block):
        rows = permutation[s : s + block]
        rows = rows[count[rows] > 0]
        out[rows] = _block_distance(
            unit_rows(embeddings[rows]),
            genuine[rows],
            count[rows],
            codes[rows],
            embeddings,
            codes,
            impostor_rng,
        )
    logger.info(
        "sdd_quality of %d images (m = %d, k = %d) in %.1f s",
        int(np.isfinite(out).sum()),
        m,
        k,
        time.perf_counter() - started,
    )
    return out


def _block_distance(
    unit: np.ndarray,
    genuine: np.ndarray,
    count: np.ndarray,
    own: np.ndarray,
    embeddings: np.ndarray,
    codes: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Mean W1 over the resamplings of a block of images (B,), NaN where no resampling drew
    an impostor; ``genuine`` (B, k, m) ascending in the first ``count`` slots."""
    b, k, m = genuine.shape
    genuine = genuine.astype(np.float32)
    genuine_weights = np.where(np.arange(m) < count[:, None], 1.0 / count[:, None], 0.0)
    total = np.zeros(b)
    resamplings = np.zeros(b, np.int64)  # those that drew an impostor
    for r in range(k):
        impostors, impostor_weights, drawn = _impostor_block(unit, own, embeddings, codes, m, rng)
        # both sides m equally weighted values: W1 is the mean gap of the sorted values
        even = (count == m) & (drawn == m)
        if even.all():
            distance = np.abs(genuine[:, r] - np.sort(impostors, axis=1)).mean(axis=1)
        else:
            distance, rest = np.empty(b), ~even
            distance[rest] = wasserstein_rows(
                genuine[rest, r], genuine_weights[rest], impostors[rest], impostor_weights[rest]
            )
            gaps = genuine[even, r] - np.sort(impostors[even], axis=1)
            distance[even] = np.abs(gaps).mean(axis=1)
        total += np.where(drawn > 0, distance, 0.0)
        resamplings += drawn > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(resamplings > 0, total / resamplings, np.nan)


def head_mismatch(classes: int, labels: np.ndarray) -> str | None:
    """Why a margin head of ``classes`` columns cannot serve ``labels``, or None when it can
    (its columns are the labels 0 .. classes - 1: the largest label + 1 equals ``classes``)."""
    labels = np.asarray(labels)
    if not len(labels):
        return "the dataset has no labels"
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high + 1 != classes:
        return (
            f"the checkpoint's head has {classes} classes but the dataset's labels run "
            f"{low}..{high} ({high + 1} classes): the head was trained on other classes"
        )
    return None


def certainty_ratio(
    embeddings: np.ndarray, labels: np.ndarray, kernel: np.ndarray, *, eps: float = CR_EPSILON
) -> np.ndarray:
    """CR-FIQA certainty ratio CCS / (NNCCS + 1 + eps) of each image (higher = better).

    Parameters
    ----------
    embeddings : ndarray of shape (N, D), float16 or float32
    labels : ndarray of shape (N,), int: the head column of each image's class.
    kernel : ndarray of shape (D, C): the margin head's class centres (columns, any length).
    eps : float, CR-FIQA's 1e-9.

    Returns
    -------
    ndarray of shape (N,), float64.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if kernel.shape[0] != embeddings.shape[1]:
        raise ValueError(
            f"the head's class centres have {kernel.shape[0]} dimensions, the embeddings "
            f"{embeddings.shape[1]}: the checkpoint does not belong to this model"
        )
    centres = unit_rows(np.asarray(kernel, np.float32).T).T  # (D, C), unit columns
    out = np.empty(len(labels))
    block = max(1, BLOCK_ELEMENTS // max(centres.shape[1], 1))
    for s in range(0, len(labels), block):
        cos = np.clip(unit_rows(embeddings[s : s + block]) @ centres, -1.0, 1.0)
        idx = np.arange(len(cos))
        own = labels[s : s + block]
        ccs = cos[idx, own].astype(np.float64)
        cos[idx, own] = -np.inf
        nnccs = cos.max(axis=1).astype(np.float64) if cos.shape[1] > 1 else np.full(len(cos), -1.0)
        out[s : s + block] = ccs / (nnccs + 1.0 + eps)
    return out


def reference_table(
    samples: pd.DataFrame,
    embeddings: np.ndarray,
    *,
    sdd: SddSettings,
    kernel: np.ndarray | None,
) -> tuple[pd.DataFrame, dict]:
    """The references of every image: one row per row of ``samples`` (rows in = rows out).

    Parameters
    ----------
    samples : DataFrame
        One row per manifest image: ``sample_id``, ``label`` (int64) and ``embed_status``
        (``ok`` or the embedding stage's reason).
    embeddings : ndarray of shape (number of ok rows, D), float16 or float32
        The embeddings of the rows whose ``embed_status`` is ok, in their order.
    sdd : SddSettings
    kernel : ndarray of shape (D, C) or None
        The margin head's class centres whose columns are the labels (see
        :func:`head_mismatch`); None leaves ``certainty_ratio`` out.

    Returns
    -------
    (DataFrame, dict)
        ``sample_id``, ``status`` (the embedding's reason, ``single_image_class`` for the only
        ok image of a class, else ``ok``), ``centre_similarity``, ``sdd_quality`` and, with a
        kernel, ``certainty_ratio`` (float64, NaN where not defined); and the counts per status.
    """
    ok = (samples["embed_status"] == OK).to_numpy()
    if int(ok.sum()) != len(embeddings):
        raise ValueError(f"{int(ok.sum())} ok images but {len(embeddings)} embeddings")
    codes = pd.factorize(samples["label"].to_numpy()[ok], sort=True)[0].astype(np.int64)
    table = pd.DataFrame({"sample_id": samples["sample_id"].to_numpy()})
    status = samples["embed_status"].astype(str).to_numpy().copy()
    alone = np.bincount(codes)[codes] < 2 if len(codes) else np.zeros(0, bool)
    status[np.flatnonzero(ok)[alone]] = SINGLE_IMAGE_CLASS
    table["status"] = status
    columns = {
        CENTRE_SIMILARITY: lambda: centre_similarity(embeddings, codes),
        SDD_QUALITY: lambda: sdd_quality(embeddings, codes, sdd),
    }
    if kernel is not None:
        labels = samples["label"].to_numpy()[ok]
        columns[CERTAINTY_RATIO] = lambda: certainty_ratio(embeddings, labels, kernel)
    for name, compute in columns.items():
        started = time.perf_counter()
        values = np.full(len(table), np.nan)
        values[ok] = compute()
        table[name] = values
        logger.info(
            "%s: %d of %d images finite in %.1f s",
            name,
            int(np.isfinite(values).sum()),
            len(values),
            time.perf_counter() - started,
        )
    counts = {str(k): int(v) for k, v in table["status"].value_counts().items()}
    logger.info("references of %d images; status counts: %s", len(table), counts)
    return table, counts


def join_references(samples: pd.DataFrame, references: pd.DataFrame) -> pd.DataFrame:
    """``samples`` with the reference columns of ``references`` (a :func:`reference_table`) and
    its status as ``references_status``, matched on ``sample_id``; rows in = rows out.

    Raises ValueError when the two tables do not hold the same images (the references were
    computed from another manifest: re-run the references step).
    """
    left = pd.Index(samples["sample_id"])
    right = pd.Index(references["sample_id"])
    if len(left) != len(right) or not left.isin(right).all() or right.has_duplicates:
        raise ValueError(
            f"references table has {len(right)} rows for {len(left)} images, or other "
            "sample_ids: it was made from another manifest; re-run the references step"
        )
    part = references.rename(columns={"status": "references_status"})
    part = part[["sample_id", "references_status", *(c for c in REFERENCE_COLUMNS if c in part)]]
    return samples.merge(part, on="sample_id", how="left", validate="one_to_one")
