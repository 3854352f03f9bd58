"""Public API: BRISQUE as the original LIVE release computes it (see featnorm.quality.brisque).

``featnorm.brisque.score(images)`` is stable (DESIGN.md, Python API); the implementation lives in
the quality stage.
"""

from featnorm.quality.brisque import (
    DEFAULT_PRECISION,
    FEATURE_NAMES,
    FLAVOUR,
    MIN_SIDE,
    features,
    features_and_status,
    live_model,
    score,
)

__all__ = [
    "DEFAULT_PRECISION",
    "FEATURE_NAMES",
    "FLAVOUR",
    "MIN_SIDE",
    "features",
    "features_and_status",
    "live_model",
    "score",
]
