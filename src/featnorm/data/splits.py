"""Which manifest rows are training images: a dataset fact that training and analysis share."""

from __future__ import annotations

import pandas as pd

__all__ = ["training_images"]


def training_images(samples: pd.DataFrame) -> pd.Series:
    """Boolean per row: does the image count towards its class size?

    Class size is what the model saw in training, as in the seed: where the manifest has a
    ``split`` column (the demo's held-out images), only ``split == "train"`` rows count;
    otherwise every row does.
    """
    if "split" in samples.columns:
        return (samples["split"] == "train").fillna(False).astype(bool)
    return pd.Series(True, index=samples.index)
