"""BRISQUE scores of images and of a shard table (the ``brisque`` step)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from featnorm.data.sources import read_image
from featnorm.quality.brisque.mscn import (
    DEFAULT_PRECISION,
    FEATURE_NAMES,
    FLAVOUR,
    MIN_ACTIVE_FRACTION,
    MIN_SIDE,
    N_FEATURES,
    features,
    features_and_status,
)
from featnorm.quality.brisque.svr import SvrModel, live_model
from featnorm.threads import set_threads

logger = logging.getLogger("featnorm.quality.brisque")


def score(
    images: Sequence[np.ndarray],
    *,
    model: SvrModel | None = None,
    precision: str = DEFAULT_PRECISION,
) -> np.ndarray:
    """BRISQUE score of each image with the LIVE model (flavour :data:`FLAVOUR`).

    Parameters
    ----------
    images : sequence of ndarray
        (H, W) grey or (H, W, 3) BGR uint8 arrays as ``cv2.imread`` gives them.
    model : SvrModel, optional
        Another SVR and range (:func:`load_libsvm_model`); default: the shipped LIVE model.
    precision : {"float32", "float64"}
        See :func:`features_and_status`.

    Returns
    -------
    ndarray, shape (N,), float64
        Raw SVR output, lower is better: about 0 to 20 for clean photographs, 60 to 100 for
        heavily distorted ones (not clamped; clean images can go below 0). NaN where the score
        is not computable; :func:`features_and_status` says why.

    References
    ----------
    Mittal, A., Moorthy, A. K. & Bovik, A. C. (2012). No-reference image quality assessment in
    the spatial domain. IEEE TIP 21(12), 4695-4708. doi:10.1109/TIP.2012.2214050
    """
    return (model or live_model()).predict(features(images, precision=precision))


def output_params(*, save_features: bool, precision: str = DEFAULT_PRECISION) -> dict:
    """Metadata of a BRISQUE table: flavour, model, policy constants (``featnorm.tableio`` params).

    A dict of JSON-able ``brisque_*`` values: flavour, model, precision, :data:`MIN_SIDE` (px),
    the near-flat active fraction, whether the features were saved, and the direction (lower is
    better).
    """
    return {
        "brisque_flavour": FLAVOUR,
        "brisque_model": "LIVE allmodel + allrange (BRISQUE release, UT Austin 2011)",
        "brisque_precision": precision,
        "brisque_min_side": MIN_SIDE,
        "brisque_min_active_fraction": MIN_ACTIVE_FRACTION,
        "brisque_save_features": save_features,
        "brisque_direction": "lower is better",
    }


def _score_files(
    paths: list[str], *, batch_size: int, precision: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode and score ``paths`` in batches: scores (N,) float64, features (N, 36) float64 and
    statuses (N,) object; NaN where the status is not ``ok``."""
    model = live_model()
    n = len(paths)
    scores = np.full(n, np.nan)
    feats = np.full((n, N_FEATURES), np.nan)
    status = np.empty(n, dtype=object)
    for a in range(0, n, batch_size):
        decoded = [read_image(p) for p in paths[a : a + batch_size]]
        good = [k for k, d in enumerate(decoded) if d.ok]
        for k, d in enumerate(decoded):
            status[a + k] = d.status
        if good:
            f, st = features_and_status([decoded[k].image for k in good], precision=precision)
            rows = a + np.asarray(good)
            feats[rows] = f
            scores[rows] = model.predict(f)
            status[rows] = st
        logger.info("brisque: %d / %d images", min(a + batch_size, n), n)
    return scores, feats, status


def score_table(
    shard: pd.DataFrame,
    *,
    threads: int,
    save_features: bool,
    batch_size: int = 256,
    precision: str = DEFAULT_PRECISION,
) -> pd.DataFrame:
    """Score every image of a shard table (one row per manifest row, in the same order).

    Parameters
    ----------
    shard : DataFrame
        Manifest rows with at least ``sample_id`` (int64) and ``path`` (str, opened with
        :func:`featnorm.data.sources.read_image`).
    threads : int
        Threads for OpenCV and OpenBLAS (:func:`set_threads`); per-image work is sequential, so
        use 1 and run one process per core (the workflow runs one job per shard).
    save_features : bool
        Also return the 36 features as float64 columns named ``brisque_<feature>``.
    batch_size : int
        Images decoded and scored per call (bounds memory: a batch holds its decoded images).
    precision : {"float32", "float64"}
        See :func:`features_and_status`.

    Returns
    -------
    DataFrame
        ``sample_id`` int64, ``brisque`` float64 (NaN when not computable), ``status`` str
        (``ok``, a decode status of :func:`featnorm.data.sources.read_image`, or a reason of this
        module), optionally the feature columns. Rows in = rows out.
    """
    missing = {"sample_id", "path"} - set(shard.columns)
    if missing:
        raise ValueError(
            f"shard table lacks columns {sorted(missing)}; it has {list(shard.columns)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive integer")
    set_threads(threads)
    paths = shard["path"].astype(str).tolist()
    scores, feats, status = _score_files(paths, batch_size=batch_size, precision=precision)
    out = pd.DataFrame(
        {
            "sample_id": shard["sample_id"].to_numpy(dtype=np.int64),
            "brisque": scores,
            "status": status.astype(str),
        }
    )
    if save_features:
        for j, name in enumerate(FEATURE_NAMES):
            out[f"brisque_{name}"] = feats[:, j]
    counts = out["status"].value_counts().to_dict()
    logger.info("brisque: statuses %s", counts)
    return out
