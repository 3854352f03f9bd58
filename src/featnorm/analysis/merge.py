"""One row per image: the manifest joined with its BRISQUE score and its feature norm.

Pure functions (DataFrames in, DataFrames out); reading and writing happens in
``featnorm.cli.analysis``. Rows in = rows out: an image without a score keeps its row, with the
reason in ``status``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from featnorm.analysis.columns import BRISQUE_COLUMN, NORM_COLUMN
from featnorm.data.splits import training_images
from featnorm.status import MISSING, NON_FINITE, OK

logger = logging.getLogger(__name__)

__all__ = ["merge_samples"]


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} lacks column(s) {missing}; it has {list(df.columns)}. "
            "Re-run the step that produces it."
        )
    if "sample_id" in df.columns and df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "sample_id"].iloc[:5].tolist()
        raise ValueError(f"{name} repeats sample_id values, e.g. {dup}; each image needs one row")


def _join_part(manifest_ids: pd.Series, part: pd.DataFrame, value: str, name: str) -> pd.DataFrame:
    extra = ~part["sample_id"].isin(manifest_ids)
    if extra.any():
        raise ValueError(
            f"{name} has {int(extra.sum())} sample_id(s) not in the manifest, e.g. "
            f"{part.loc[extra, 'sample_id'].iloc[:5].tolist()}; it was made from another "
            "manifest: re-run it"
        )
    return part[["sample_id", value, "status"]]


def merge_samples(
    manifest: pd.DataFrame, brisque: pd.DataFrame, embed: pd.DataFrame
) -> pd.DataFrame:
    """One row per manifest image with its BRISQUE score and feature norm.

    Parameters
    ----------
    manifest : DataFrame
        ``sample_id`` int64, ``path``, ``label`` int64, ``class_name`` (+ ground-truth columns).
    brisque : DataFrame
        All BRISQUE shards concatenated: ``sample_id``, ``brisque`` float64 (lower is better,
        NaN when not computable), ``status``.
    embed : DataFrame
        All embedding shards of one model concatenated: ``sample_id``, ``feature_norm``
        (higher meant to be better), ``status``; an ``embedding`` column is dropped.

    Returns
    -------
    DataFrame
        The manifest rows in manifest order (rows in = rows out) plus ``brisque``,
        ``feature_norm`` (float64), ``brisque_status``, ``embed_status`` (``missing`` when the
        image has no row there), ``class_size`` (training images of the class: see :func:`featnorm.data.splits.training_images`) and
        ``status``: ``ok`` when both scores are ok and finite, otherwise the reasons.

    Raises
    ------
    ValueError
        A table lacks a column, repeats a ``sample_id`` or has ids the manifest lacks.
    """
    _check_columns(manifest, ("sample_id", "label", "class_name"), "manifest")
    _check_columns(brisque, ("sample_id", BRISQUE_COLUMN, "status"), "BRISQUE table")
    _check_columns(embed, ("sample_id", NORM_COLUMN, "status"), "embedding table")
    ids = manifest["sample_id"]
    b = _join_part(ids, brisque, BRISQUE_COLUMN, "BRISQUE table").rename(
        columns={"status": "brisque_status"}
    )
    e = _join_part(ids, embed, NORM_COLUMN, "embedding table").rename(
        columns={"status": "embed_status"}
    )
    out = manifest.merge(b, on="sample_id", how="left", validate="one_to_one")
    out = out.merge(e, on="sample_id", how="left", validate="one_to_one")
    out[NORM_COLUMN] = out[NORM_COLUMN].astype(np.float64)
    out[BRISQUE_COLUMN] = out[BRISQUE_COLUMN].astype(np.float64)
    out["brisque_status"] = out["brisque_status"].fillna(MISSING)
    out["embed_status"] = out["embed_status"].fillna(MISSING)
    _set_status(out)
    out["class_size"] = training_images(out).groupby(out["label"]).transform("sum").astype(np.int64)
    counts = out["status"].value_counts()
    logger.info("merged %d images; status counts: %s", len(out), counts.to_dict())
    return out


def _set_status(out: pd.DataFrame) -> None:
    """Per row, in place: ``status`` ``ok`` when both scores are ok and finite, else the reasons
    (``brisque:<status>; embed:<status>``); a score that is not ok becomes NaN."""
    # a row marked ok with a non-finite value is not ok
    b_bad = (out["brisque_status"] == OK) & ~np.isfinite(out[BRISQUE_COLUMN])
    e_bad = (out["embed_status"] == OK) & ~np.isfinite(out[NORM_COLUMN])
    out.loc[b_bad, "brisque_status"] = NON_FINITE
    out.loc[e_bad, "embed_status"] = NON_FINITE
    b_ok = out["brisque_status"] == OK
    e_ok = out["embed_status"] == OK
    out.loc[~b_ok, BRISQUE_COLUMN] = np.nan
    out.loc[~e_ok, NORM_COLUMN] = np.nan
    reasons = np.where(b_ok, "", "brisque:" + out["brisque_status"].astype(str))
    reasons2 = np.where(e_ok, "", "embed:" + out["embed_status"].astype(str))
    joined = (
        pd.Series(reasons, index=out.index)
        .str.cat(pd.Series(reasons2, index=out.index), sep="; ")
        .str.strip("; ")
    )
    out["status"] = joined.where(joined != "", OK)
