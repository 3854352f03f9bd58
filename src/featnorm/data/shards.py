"""Static, deterministic, balanced sharding of the manifest."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["shard_of", "split"]


def shard_of(sample_id: np.ndarray, shards: int) -> np.ndarray:
    """Shard index of each sample: ``sample_id mod shards``.

    Round-robin over the class-sorted ids spreads every class (and so the large classes)
    over all shards, and shard sizes differ by at most one image.
    """
    return np.asarray(sample_id, dtype=np.int64) % shards


def split(manifest: pd.DataFrame, shards: int) -> list[pd.DataFrame]:
    """Split the manifest into ``shards`` tables; every row lands in exactly one.

    Raises ValueError when ``shards`` is below 1 or above the number of images (a shard would
    be empty).
    """
    if not 1 <= shards <= len(manifest):
        raise ValueError(
            f"shards = {shards} but the dataset has {len(manifest)} images; "
            f"use 1 <= shards <= {len(manifest)}"
        )
    which = shard_of(manifest["sample_id"].to_numpy(), shards)
    return [manifest[which == k].reset_index(drop=True) for k in range(shards)]
