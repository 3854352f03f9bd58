"""Per-class statistics of the merged table (``class_stats.parquet``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from featnorm.analysis.columns import BRISQUE_COLUMN, NORM_COLUMN
from featnorm.data.splits import training_images
from featnorm.status import OK

__all__ = ["class_stats"]

# Manifest columns that are identifiers, not per-image measurements to summarise per class.
_ID_COLUMNS = ("sample_id", "label", "class_name", "path")


def _ground_truth_columns(samples: pd.DataFrame) -> list[str]:
    known = set(_ID_COLUMNS) | {BRISQUE_COLUMN, NORM_COLUMN, "class_size", "z_excluded"}
    return [
        c
        for c in samples.columns
        if c not in known
        and not c.startswith(f"{NORM_COLUMN}_")
        and pd.api.types.is_numeric_dtype(samples[c])
        and not pd.api.types.is_bool_dtype(samples[c])
    ]


def class_stats(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per class: size and summaries of the norm, BRISQUE and ground truth.

    Returns
    -------
    DataFrame
        Computed over the training images (:func:`featnorm.data.splits.training_images`: split ``train`` where the
        manifest has a split, as the seed's classes hold only what the model saw; every row
        otherwise): ``label``, ``class_name``, ``n`` (images), ``n_ok`` (rows with status
        ok), ``norm_mean``/``norm_std``/``norm_median`` (std with ddof = 1, NaN for n < 2) over
        rows with a norm, ``brisque_mean``/``brisque_std``/``brisque_median`` over rows with a
        BRISQUE score, ``<column>_mean`` for each numeric ground-truth column (demo) and
        ``z_excluded``; sorted by ``n`` descending, then ``label``.
    """
    samples = samples[training_images(samples).to_numpy()]
    g = samples.groupby("label", sort=True)
    out = pd.DataFrame(
        {
            "class_name": g["class_name"].first(),
            "n": g.size().astype(np.int64),
            "n_ok": (samples["status"] == OK)
            .groupby(samples["label"], sort=True)
            .sum()
            .astype(np.int64),
            "norm_mean": g[NORM_COLUMN].mean(),
            "norm_std": g[NORM_COLUMN].std(ddof=1),
            "norm_median": g[NORM_COLUMN].median(),
            "brisque_mean": g[BRISQUE_COLUMN].mean(),
            "brisque_std": g[BRISQUE_COLUMN].std(ddof=1),
            "brisque_median": g[BRISQUE_COLUMN].median(),
        }
    )
    for c in _ground_truth_columns(samples):
        out[f"{c}_mean"] = g[c].mean()
    if "z_excluded" in samples.columns:
        out["z_excluded"] = g["z_excluded"].first().astype(bool)
    out = out.reset_index().sort_values(["n", "label"], ascending=[False, True])
    return out.reset_index(drop=True)
