"""What the analysis tables correlate: the norm columns (x), the registry of quality references
(y), and the typed key of one table row.

Every table (``correlations.csv``, ``differences.csv``, ``decomposition.csv``,
``by_class_size.csv``, the comparison, the EDC proxies) iterates ``QUALITY_REFERENCES`` in its
order, so a new reference column in ``samples.parquet`` joins every table by one entry there::

    QualityReference("centre_similarity", lower_is_better=False, edc_proxy=False)

``lower_is_better`` gives the sign of agreement (BRISQUE: lower is better, so a norm that agrees
with it has a negative r; ``quality_aligned_*`` columns flip that sign). ``edc_proxy`` is False
for references built from the genuine comparison scores that the EDC itself measures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.analysis.stats import quality_aligned
from featnorm.options import STANDARDISATION_POLICIES
from featnorm.quality.references import REFERENCE_COLUMNS

__all__ = [
    "BRISQUE_COLUMN",
    "BRISQUE_GIVEN_CLASS_SIZE",
    "CLASS_SIZE_EFFECT",
    "GROUND_TRUTH_QUALITY",
    "NORM_COLUMN",
    "QUALITY_REFERENCES",
    "QualityReference",
    "RowKey",
    "edc_proxy_columns",
    "norm_columns",
    "references_in",
    "row_keys",
    "table_columns",
    "table_rows",
    "with_quality_aligned",
]

NORM_COLUMN = "feature_norm"
BRISQUE_COLUMN = "brisque"
GROUND_TRUTH_QUALITY = "true_quality"


@dataclass(frozen=True)
class QualityReference:
    """One y column of the tables.

    ``column``: its name in ``samples.parquet``; ``lower_is_better``: True for BRISQUE-like
    scales, None for a y that is not a quality (the class-size row); ``edc_proxy``: also a
    quality proxy of the EDC; ``given``: the covariate a partial correlation holds fixed.
    """

    column: str
    lower_is_better: bool | None
    edc_proxy: bool = True
    given: str | None = None

    @property
    def label(self) -> str:
        """The ``y`` value of a table row: the column, or ``"<column> | <given>"``."""
        return self.column if self.given is None else f"{self.column} | {self.given}"


# The registry: y columns correlated with every norm column, in table order.
QUALITY_REFERENCES: tuple[QualityReference, ...] = (
    QualityReference(BRISQUE_COLUMN, lower_is_better=True),
    QualityReference(GROUND_TRUTH_QUALITY, lower_is_better=False),
    # face-quality references from the model's own embeddings (featnorm.quality.references):
    # higher = better, and never EDC proxies (they are built from the genuine scores it measures)
    *(QualityReference(c, lower_is_better=False, edc_proxy=False) for c in REFERENCE_COLUMNS),
)
# The partial-correlation row: BRISQUE given log(class size).
BRISQUE_GIVEN_CLASS_SIZE = QualityReference(BRISQUE_COLUMN, True, given="log class_size")


@dataclass(frozen=True)
class RowKey:
    """One row of a correlation-like table: x column, y reference and method."""

    x: str
    y: QualityReference
    method: str


# The class-size effect row: Spearman over classes of (class_size, class mean norm).
CLASS_SIZE_EFFECT = RowKey("class_size", QualityReference("class_norm_mean", None), "spearman")


def norm_columns(policies: list[str] | tuple[str, ...]) -> list[str]:
    """The norm columns the analysis correlates: the raw norm, then one per policy."""
    for p in policies:
        if p not in STANDARDISATION_POLICIES:
            raise ValueError(
                f"analysis.policies contains {p!r}; use any of {', '.join(STANDARDISATION_POLICIES)}"
            )
    return [NORM_COLUMN] + [f"{NORM_COLUMN}_{p}" for p in policies]


def references_in(columns: Iterable[str]) -> list[QualityReference]:
    """The registered quality references among ``columns``, in registry order."""
    present = set(columns)
    return [ref for ref in QUALITY_REFERENCES if ref.column in present]


def edc_proxy_columns(columns: Iterable[str], norms: list[str]) -> list[str]:
    """The EDC's quality proxies among ``columns``: ``norms``, then the references that are
    EDC proxies, in registry order."""
    present = set(columns)
    return [c for c in norms if c in present] + [
        ref.column for ref in references_in(present) if ref.edc_proxy
    ]


def table_columns(available: Iterable[str], x_columns: list[str]) -> list[str]:
    """The columns of ``samples.parquet`` (its ``available`` ones) that the correlation,
    difference, decomposition and band tables read: the row's class, status, class size and
    split, the x columns and the registered references present."""
    available = list(available)
    wanted = ["label", "status", "class_size", "split", *x_columns]
    wanted += [ref.column for ref in references_in(available)]
    return [c for c in dict.fromkeys(wanted) if c in available]


def row_keys(
    references: Iterable[QualityReference],
    x_columns: Iterable[str],
    methods: Iterable[str],
    *,
    skip_x: str | None = None,
) -> Iterator[RowKey]:
    """Every (y, x, method) of a table, y outermost (the tables' row order); ``skip_x`` is
    left out (the paired differences' reference column)."""
    x_columns, methods = list(x_columns), list(methods)
    for y in references:
        for x in x_columns:
            if x == skip_x:
                continue
            for m in methods:
                yield RowKey(x, y, m)


def table_rows(
    samples: pd.DataFrame,
    rows: np.ndarray,
    keys: Iterable[RowKey],
    compute: Callable[[RowKey, np.ndarray, np.ndarray], dict],
) -> list[dict]:
    """The one loop of every table: ``compute(key, x, y)`` per key, with x and y the float64
    values of ``key.x`` and ``key.y.column`` on ``rows`` (a boolean mask or index of
    ``samples``; each column is converted once)."""
    values: dict[str, np.ndarray] = {}

    def column(name: str) -> np.ndarray:
        if name not in values:
            values[name] = samples[name].to_numpy(np.float64)[rows]
        return values[name]

    return [compute(key, column(key.x), column(key.y.column)) for key in keys]


def with_quality_aligned(
    row: dict,
    lower_is_better: bool | None,
    value: str = "r",
    low: str = "ci_low",
    high: str = "ci_high",
) -> dict:
    """``row`` with ``quality_aligned_<value>`` and its ``quality_aligned_ci_low``/``_ci_high``
    added: the sign flipped for a lower-is-better reference so that agreement reads positive;
    NaN when the row has no quality reference (``lower_is_better`` None)."""
    names = (f"quality_aligned_{value}", "quality_aligned_ci_low", "quality_aligned_ci_high")
    if lower_is_better is None:
        row.update(dict.fromkeys(names, np.nan))
    else:
        aligned = quality_aligned(row[value], row[low], row[high], lower_is_better=lower_is_better)
        row.update(zip(names, aligned, strict=True))
    return row
