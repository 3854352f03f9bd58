"""The error-versus-discard characteristic from the workflow's tables: ``edc.csv`` and
``edc_curve.csv`` of one model, on all pairs and per split stratum (the characteristic itself,
its definitions and references are in :mod:`featnorm.evaluation.edc`)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from featnorm.analysis.columns import QUALITY_REFERENCES, edc_proxy_columns
from featnorm.evaluation.edc import (
    CURVE_COLUMNS,
    IDEAL,
    RANDOM,
    TABLE_COLUMNS,
    EdcResult,
    edc,
    pair_quality,
)
from featnorm.evaluation.pairs import ALL_STRATUM, MIXED_STRATUM

__all__ = [
    "ALL_SCOPE",
    "GAP_CLOSED",
    "LOWER_IS_BETTER",
    "EdcSettings",
    "evaluate",
    "gap_closed",
    "proxy_columns",
    "scopes",
]

logger = logging.getLogger(__name__)

ALL_SCOPE = ALL_STRATUM  # the EDC over all pairs is the pairs' "all" stratum
# negated so that every quality is higher = better
LOWER_IS_BETTER = {ref.column for ref in QUALITY_REFERENCES if ref.lower_is_better}


GAP_CLOSED = "gap_closed"
# the rows that share one random and one ideal reference
_BLOCK = ["model", "split", "fmr", "discard_limit"]


def gap_closed(table: pd.DataFrame) -> pd.Series:
    """Share of the random-to-ideal pAUC gap each row closes: (random - pauc) / (random -
    ideal), with ``random`` and ``ideal`` the pAUC of those rows of the same (model, split,
    fmr, discard_limit). 1 = as good as discarding the errors first, 0 = no better than a
    random order, < 0 = worse; ``random`` and ``ideal`` rows give 0 and 1. NaN where the gap is
    0 (no false non-match to discard) or a reference row is missing.
    """
    index = pd.MultiIndex.from_frame(table[_BLOCK])
    ref = {
        name: table[table["quality"] == name].set_index(_BLOCK)["pauc"].reindex(index).to_numpy()
        for name in (RANDOM, IDEAL)
    }
    gap = ref[RANDOM] - ref[IDEAL]
    with np.errstate(invalid="ignore", divide="ignore"):
        closed = (ref[RANDOM] - table["pauc"].to_numpy(np.float64)) / gap
    return pd.Series(np.where(gap > 0, closed, np.nan), index=table.index, name=GAP_CLOSED)


def proxy_columns(samples: pd.DataFrame, norm_columns: list[str]) -> list[str]:
    """The quality proxies present in ``samples``: the norm columns, then the registered quality
    references that are EDC proxies (``featnorm.analysis.columns.QUALITY_REFERENCES``: BRISQUE,
    ``true_quality``)."""
    return edc_proxy_columns(samples.columns, norm_columns)


def scopes(pairs: pd.DataFrame) -> list[str]:
    """``all``, then every split stratum of ``pairs`` other than ``all`` and ``mixed``."""
    names = (
        []
        if "split" not in pairs.columns
        else sorted(s for s in pd.unique(pairs["split"]) if s not in (ALL_SCOPE, MIXED_STRATUM))
    )
    return [ALL_SCOPE, *names]


@dataclass(frozen=True)
class EdcSettings:
    """The options of :func:`edc` (see there), as the workflow's ``evaluation:`` keys give them."""

    fmrs: list[float]
    limits: list[float]
    step: float
    replicates: int
    confidence: float
    seed: int


def _pair_members(
    samples: pd.DataFrame, pairs: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows in ``samples`` of the pairs' members a and b, labels, genuine mask; checked."""
    index = pd.Index(samples["sample_id"].to_numpy())
    a = index.get_indexer(pairs["sample_id_a"].to_numpy())
    b = index.get_indexer(pairs["sample_id_b"].to_numpy())
    if (a < 0).any() or (b < 0).any():
        raise ValueError(
            f"{int((a < 0).sum() + (b < 0).sum())} pair member(s) are not in "
            "samples.parquet; the pairs come from other samples: re-run draw_pairs"
        )
    labels = samples["label"].to_numpy()
    genuine = pairs["genuine"].to_numpy(bool)
    if (labels[a][genuine] != labels[b][genuine]).any():
        raise ValueError(
            "a genuine pair joins two identities: pairs.parquet does not match "
            "samples.parquet; re-run draw_pairs"
        )
    return a, b, labels, genuine


def evaluate(
    samples: pd.DataFrame,
    pairs: pd.DataFrame,
    *,
    model: str,
    proxies: list[str],
    settings: EdcSettings,
) -> EdcResult:
    """``edc.csv`` and ``edc_curve.csv`` of one model, on all pairs and per split stratum.

    Parameters
    ----------
    samples : DataFrame
        ``samples.parquet``: ``sample_id``, ``label`` and the proxy columns.
    pairs : DataFrame
        ``pairs.parquet``: ``sample_id_a``, ``sample_id_b``, ``score``, ``genuine`` (+ ``split``).
    proxies : list of str
        Columns of ``samples`` to evaluate; those in ``LOWER_IS_BETTER`` are negated.
    settings : EdcSettings

    Returns
    -------
    EdcResult with ``model`` and ``split`` in front of each table, :func:`gap_closed` last.
    """
    a, b, labels, genuine = _pair_members(samples, pairs)
    image_q = {name: samples[name].to_numpy(np.float64) for name in proxies}
    image_q = {name: -q if name in LOWER_IS_BETTER else q for name, q in image_q.items()}
    tables, curves = [], []
    for scope in scopes(pairs):
        sel = (
            np.ones(len(pairs), bool)
            if scope == ALL_SCOPE
            else (pairs["split"] == scope).to_numpy()
        )
        g = sel & genuine
        imp = sel & ~genuine
        if not g.any() or not imp.any():
            logger.warning(
                "scope %s: %d genuine, %d impostor pairs; no EDC",
                scope,
                int(g.sum()),
                int(imp.sum()),
            )
            continue
        qualities = {name: pair_quality(q, a[g], b[g]) for name, q in image_q.items()}
        res = edc(
            pairs["score"].to_numpy()[g],
            labels[a[g]],
            pairs["score"].to_numpy()[imp],
            qualities,
            **asdict(settings),
        )
        for frame, out in ((res.table, tables), (res.curves, curves)):
            frame.insert(0, "split", scope)
            frame.insert(0, "model", model)
            out.append(frame)
    return _result(tables, curves)


def _result(tables: list[pd.DataFrame], curves: list[pd.DataFrame]) -> EdcResult:
    """The scopes' tables in one, with :func:`gap_closed`; the empty result when none."""
    if not tables:  # an empty result, not a failed workflow: the summary says why
        return _no_scope_result()
    table = pd.concat(tables, ignore_index=True)
    table[GAP_CLOSED] = gap_closed(table)
    return EdcResult(table, pd.concat(curves, ignore_index=True))


def _no_scope_result() -> EdcResult:
    """The empty tables (with their columns) of a model with no scope to evaluate, logged."""
    logger.warning(
        "no scope has both genuine and impostor pairs (they need identities with "
        "two ok images, and two identities): edc.csv has no rows"
    )
    return EdcResult(
        pd.DataFrame(columns=["model", "split", *TABLE_COLUMNS, GAP_CLOSED]),
        pd.DataFrame(columns=["model", "split", *CURVE_COLUMNS]),
    )
