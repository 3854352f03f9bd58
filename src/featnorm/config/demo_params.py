"""Parameters and class-size law of the embedded demo dataset: plain data, free of OpenCV.

The workflow checks ``dataset.demo`` and counts the demo's images while Snakemake parses it, on a
login node that may have no OpenCV; :mod:`featnorm.data.demo` draws the images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featnorm.options import DEMO_IMAGE_FORMATS

__all__ = ["DemoParams", "class_sizes", "image_count"]


@dataclass(frozen=True)
class DemoParams:
    """Generator parameters; defaults mirror workflow/schemas/config.schema.yaml."""

    identities: int = 320
    min_images: int = 2
    max_images: int = 160
    zipf_exponent: float = 0.7
    image_format: str = "jpg"
    seed: int = 0
    holdout: int = 4

    def __post_init__(self):
        if self.identities < 2:
            raise ValueError(f"dataset.demo.identities = {self.identities}; use 2 or more")
        if not 2 <= self.min_images <= self.max_images:
            raise ValueError(
                f"dataset.demo.min_images = {self.min_images}, max_images = {self.max_images}; "
                "need 2 <= min_images <= max_images"
            )
        if self.holdout < 0:
            raise ValueError(f"dataset.demo.holdout = {self.holdout}; use 0 or more")
        if self.image_format not in DEMO_IMAGE_FORMATS:
            raise ValueError(
                f"dataset.demo.image_format = {self.image_format!r}; "
                f"use {' or '.join(DEMO_IMAGE_FORMATS)}"
            )


def class_sizes(params: DemoParams) -> np.ndarray:
    """Images per identity, ndarray of shape (identities,) int64, largest first."""
    rank = np.arange(1, params.identities + 1, dtype=np.float64)
    sizes = np.rint(params.max_images * rank ** (-params.zipf_exponent))
    return np.clip(sizes, params.min_images, params.max_images).astype(np.int64)


def image_count(params: DemoParams) -> int:
    """Images the generator writes: the class sizes plus ``holdout`` held-out images per identity."""
    return int(class_sizes(params).sum()) + params.identities * params.holdout
