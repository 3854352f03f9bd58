"""Decoded uint8 images -> the model's input batch, bit-exact with each family's official code.

* AdaFace (``inference.to_input``): BGR, ``(x / 255 - 0.5) / 0.5`` computed in float64 and cast
  to float32, values in [-1, 1].
* MagFace (``gen_feat.py``: ``cv2.imread`` + ``ToTensor``): BGR, ``x / 255`` in float32, values
  in [0, 1].

Both are per-pixel maps of a uint8 value, so each is a 256-entry lookup table computed the
official way: identical results, and no per-image float64 arithmetic.

Images that are not 112x112 are resized (see :func:`fit_input_size`); the models expect aligned
112x112 crops, so a resized image is a warning sign that the data was not aligned.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from featnorm.embedding.models.iresnet import INPUT_SIZE_PX

__all__ = [
    "FAMILY_LUTS",
    "RESIZE_POLICY",
    "fit_input_size",
    "preprocess",
    "to_bgr",
    "to_input_array",
]

_LEVELS = np.arange(256, dtype=np.float64)

#: family -> float32 lookup table: uint8 value -> model input value.
FAMILY_LUTS: dict[str, np.ndarray] = {
    # float64 arithmetic then one cast, exactly as the official to_input does.
    "adaface": ((_LEVELS / 255.0 - 0.5) / 0.5).astype(np.float32),
    # ToTensor divides a float32 tensor by 255 (float32 arithmetic).
    "magface": np.arange(256, dtype=np.float32) / np.float32(255.0),
}

#: How images that are not 112x112 are brought to size (recorded in every output's metadata).
RESIZE_POLICY = (
    "cv2.resize to 112x112 without keeping the aspect ratio; INTER_AREA when both sides shrink, "
    "INTER_LINEAR otherwise; no cropping, no alignment (give aligned 112x112 crops)"
)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W) grey or (H, W, 3) BGR uint8 -> (H, W, 3) BGR uint8 (grey replicated to 3 channels)."""
    if image.dtype != np.uint8:
        raise ValueError(
            f"image dtype is {image.dtype}; expected uint8 (decode with featnorm.data.sources.read_image)"
        )
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ValueError(
        f"image shape is {image.shape}; expected (H, W) grey or (H, W, 3) BGR "
        "(decode with featnorm.data.sources.read_image, which drops alpha)"
    )


def fit_input_size(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Resize to 112x112 when needed, following :data:`RESIZE_POLICY`.

    Returns the (possibly new) array and whether it was resized.
    """
    height, width = image.shape[:2]
    if (height, width) == (INPUT_SIZE_PX, INPUT_SIZE_PX):
        return image, False
    if height < 1 or width < 1:
        raise ValueError(f"image has shape {image.shape}; it needs at least one pixel")
    shrinking = height >= INPUT_SIZE_PX and width >= INPUT_SIZE_PX
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    resized = cv2.resize(image, (INPUT_SIZE_PX, INPUT_SIZE_PX), interpolation=interpolation)
    return resized, True


def _lut(family: str) -> np.ndarray:
    if family not in FAMILY_LUTS:
        raise ValueError(
            f"family {family!r} is not known; use one of {', '.join(sorted(FAMILY_LUTS))}"
        )
    return FAMILY_LUTS[family]


def to_input_array(image: np.ndarray, family: str = "adaface") -> tuple[np.ndarray, bool]:
    """One decoded image -> (3, 112, 112) float32 model input (CHW, BGR), and whether it was resized.

    The one home of the per-image input values: :func:`preprocess` and the embed step's decoding
    workers (``featnorm.embedding.embed.ImageFiles``) both call it.
    """
    bgr, resized = fit_input_size(to_bgr(image))
    return _lut(family)[bgr.transpose(2, 0, 1)], resized


def preprocess(images: Sequence[np.ndarray], family: str = "adaface") -> torch.Tensor:
    """Decoded uint8 images -> the model's input batch.

    Parameters
    ----------
    images : sequence of ndarray, each (H, W) uint8 grey or (H, W, 3) uint8 BGR
        As ``cv2.imread`` / :func:`featnorm.data.sources.read_image` give them. Grey is replicated to
        three channels; sizes other than 112x112 are resized (:data:`RESIZE_POLICY`).
    family : {"adaface", "magface"}
        AdaFace: BGR in [-1, 1], bit-exact with the official float64 ``to_input``.
        MagFace: BGR in [0, 1], bit-exact with ``ToTensor``.

    Returns
    -------
    torch.Tensor of shape (N, 3, 112, 112), float32, contiguous, channel 0 = blue.
    """
    _lut(family)  # an unknown family is refused before anything else
    if len(images) == 0:
        raise ValueError("preprocess got no images; pass at least one decoded image")
    batch = np.empty((len(images), 3, INPUT_SIZE_PX, INPUT_SIZE_PX), dtype=np.float32)
    for i, image in enumerate(images):
        batch[i] = to_input_array(np.asarray(image), family)[0]
    return torch.from_numpy(batch)
