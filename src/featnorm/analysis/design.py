"""The cluster-bootstrap design one model's tables share: which rows enter, their class index,
the replicate weights and the quality references present.

Every table of a model (correlations, paired differences, within/between split) draws its
weights from one generator seeded by ``analysis.seed`` over all classes of ``samples``, so with
the same seed they resample the same classes in every replicate and their intervals are
mutually consistent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.analysis.bootstrap import ReplicateWeights, class_codes
from featnorm.analysis.columns import QualityReference, references_in
from featnorm.status import OK

__all__ = ["Resampling", "resampling"]


@dataclass(frozen=True)
class Resampling:
    """What every bootstrap table of one model shares.

    ``ok``: (N,) bool, rows with status ok (the only rows that enter); ``codes``: (N,) int64
    class index of every row; ``weights``: the (B, G) class counts per replicate (None when
    there is no class or none was asked for); ``references``: the registered quality references present.
    """

    ok: np.ndarray
    codes: np.ndarray
    weights: ReplicateWeights | None
    references: list[QualityReference]


def resampling(
    samples: pd.DataFrame, *, replicates: int, seed: int, draw: bool = True
) -> Resampling:
    """The shared bootstrap design of ``samples`` (see :class:`Resampling`): one generator
    ``numpy.random.default_rng(seed)`` draws ``replicates`` rows of class counts over all
    classes of ``samples`` (unless ``draw`` is False: the class-size bands draw their own)."""
    if replicates < 1:
        raise ValueError(f"analysis.bootstrap_replicates = {replicates} must be >= 1")
    ok = (samples["status"] == OK).to_numpy(dtype=bool)
    codes = class_codes(samples["label"])
    n_classes = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    weights = (
        ReplicateWeights.draw(n_classes, replicates=replicates, rng=rng)
        if n_classes >= 1 and draw
        else None
    )
    return Resampling(ok, codes, weights, references_in(samples.columns))
