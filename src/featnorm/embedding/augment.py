"""AdaFace's training augmentation: random crop, low resolution and photometric jitter.

The official AdaFace recipe (Kim, Jain & Liu, CVPR 2022, doi:10.1109/CVPR52688.2022.01819;
``--crop_augmentation_prob 0.2 --low_res_augmentation_prob 0.2
--photometric_augmentation_prob 0.2``) applies, to each training image independently and in this
order, each with the same probability:

* **crop**: a rectangle of U(0.2, 1) of the image's area with aspect ratio log-uniform in
  [3/4, 4/3] (torchvision ``RandomResizedCrop.get_params``: 10 tries, else the whole image) is
  kept where it is and everything outside it is set to zero (black), not resized;
* **low resolution**: down-sampling to ``int(U(0.2, 1) * 112)`` px and back to 112 px, each
  resize with an interpolation picked uniformly from nearest, bilinear, area, bicubic, Lanczos;
* **photometric**: torchvision ``ColorJitter(brightness=0.5, contrast=0.5, saturation=0.5,
  hue=0)``: factors U(0.5, 1.5) applied in random order, truncating to uint8 after each, as PIL
  does. Brightness scales the pixels, contrast blends with the mean grey level, saturation blends
  with the grey image (ITU-R 601-2 luma in PIL's fixed-point form, PIL's ``L`` mode).

Images stay uint8 BGR (the trainer's layout); the horizontal flip stays in the trainer, after
this step, as in the official data loader. Held-out images never reach it: the trainer only
loads the training split. The draws come from one ``numpy.random.Generator`` per training run,
so a seed gives the same augmented batches.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

__all__ = ["AUGMENT_STREAM", "JITTERS", "Augmenter", "jitter"]

AUGMENT_STREAM = 2  # rng stream id of the augmentation draws: default_rng([seed, AUGMENT_STREAM])
_CROP_AREA = (0.2, 1.0)  # share of the image area kept by the crop
_CROP_RATIO = (3 / 4, 4 / 3)  # aspect ratio (width / height) of the kept rectangle
_CROP_TRIES = 10  # torchvision's attempts before it falls back to the whole image
_LOW_RES_SIDE = (0.2, 1.0)  # side of the down-sampled image, as a share of 112 px
_INTERPOLATIONS = (
    cv2.INTER_NEAREST,
    cv2.INTER_LINEAR,
    cv2.INTER_AREA,
    cv2.INTER_CUBIC,
    cv2.INTER_LANCZOS4,
)
JITTERS = ("brightness", "contrast", "saturation")  # ColorJitter's (hue is 0)
_JITTER = 0.5  # ColorJitter strength: factors drawn from U(1 - 0.5, 1 + 0.5)


class Augmenter:
    """Applies the AdaFace augmentation to uint8 BGR batches (module docstring).

    ``prob`` in [0, 1] is the probability of each of the three augmentations (0.2 in the official
    recipe; 0 leaves every image untouched); ``seed`` seeds the draws.
    """

    def __init__(self, prob: float, seed: int):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"train.augment_prob = {prob}; use a probability in [0, 1]")
        self.prob = prob
        self.rng = np.random.default_rng([seed, AUGMENT_STREAM])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """A new (B, 3, H, W) uint8 batch; each image augmented independently."""
        images = batch.permute(0, 2, 3, 1).numpy().copy()  # NHWC for OpenCV
        for image in images:
            if self.rng.random() < self.prob:
                image[:] = self.crop(image)
            if self.rng.random() < self.prob:
                image[:] = self.low_resolution(image)
            if self.rng.random() < self.prob:
                image[:] = self.photometric(image)
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()

    def crop(self, image: np.ndarray) -> np.ndarray:
        """Zero everything outside a random rectangle (RandomResizedCrop's parameters)."""
        h, w = image.shape[:2]
        top, left, ch, cw = 0, 0, h, w  # the fallback: the whole image
        for _ in range(_CROP_TRIES):
            area = h * w * self.rng.uniform(*_CROP_AREA)
            ratio = math.exp(self.rng.uniform(*np.log(_CROP_RATIO)))
            cw_try = int(round(math.sqrt(area * ratio)))
            ch_try = int(round(math.sqrt(area / ratio)))
            if 0 < cw_try <= w and 0 < ch_try <= h:
                ch, cw = ch_try, cw_try
                top = int(self.rng.integers(0, h - ch + 1))
                left = int(self.rng.integers(0, w - cw + 1))
                break
        out = np.zeros_like(image)
        out[top : top + ch, left : left + cw] = image[top : top + ch, left : left + cw]
        return out

    def low_resolution(self, image: np.ndarray) -> np.ndarray:
        """Down-sample to a random side and back, with random interpolations."""
        h, w = image.shape[:2]
        side = max(1, int(self.rng.uniform(*_LOW_RES_SIDE) * h))
        down, up = (_INTERPOLATIONS[int(k)] for k in self.rng.integers(0, len(_INTERPOLATIONS), 2))
        small = cv2.resize(image, (side, side), interpolation=down)
        return cv2.resize(small, (w, h), interpolation=up)

    def photometric(self, image: np.ndarray) -> np.ndarray:
        """Brightness, contrast and saturation jitter in random order (hue unchanged)."""
        out = image
        for k in self.rng.permutation(len(JITTERS)):
            out = jitter(out, JITTERS[k], self.rng.uniform(1 - _JITTER, 1 + _JITTER))
        return out


def jitter(image: np.ndarray, kind: str, factor: float) -> np.ndarray:
    """PIL's ``ImageEnhance`` ``kind`` (``brightness``, ``contrast`` or ``saturation``) on a uint8
    BGR image: blend ``factor`` of the image with (1 - ``factor``) of black, the mean grey level
    or the grey image, truncated to uint8 as PIL's ``Image.blend`` does; 1 leaves it unchanged."""
    x = image.astype(np.float32)
    b, g, r = (image[..., c].astype(np.int64) for c in range(3))
    grey = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.float32)  # PIL's "L"
    if kind == "brightness":
        target = np.zeros_like(x)
    elif kind == "contrast":
        target = np.full_like(x, int(grey.mean() + 0.5))
    elif kind == "saturation":
        target = np.repeat(grey[..., None], 3, axis=2)
    else:
        raise ValueError(f"jitter kind {kind!r}; use one of {', '.join(JITTERS)}")
    return np.clip(np.trunc(target + np.float32(factor) * (x - target)), 0, 255).astype(np.uint8)
