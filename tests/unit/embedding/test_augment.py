"""featnorm.embedding.augment: AdaFace's crop, low-resolution and photometric augmentation."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from featnorm.embedding.augment import JITTERS, Augmenter, jitter

_PIL_ENHANCERS = {
    "brightness": ImageEnhance.Brightness,
    "contrast": ImageEnhance.Contrast,
    "saturation": ImageEnhance.Color,
}


def _batch(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 3, 112, 112), dtype=np.uint8))


@pytest.mark.parametrize("kind", JITTERS)
def test_jitter_equals_pil_image_enhance(kind):
    """Independent reference: PIL's ImageEnhance (what torchvision's ColorJitter calls on PIL
    images), on the RGB view of the same pixels; exact, as both truncate to uint8."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)  # BGR
    for factor in [0.5, 0.77, 1.0, 1.31, 1.5]:
        pil = _PIL_ENHANCERS[kind](Image.fromarray(image[..., ::-1])).enhance(factor)
        np.testing.assert_array_equal(jitter(image, kind, factor), np.asarray(pil)[..., ::-1])
    with pytest.raises(ValueError, match="jitter kind 'hue'"):
        jitter(image, "hue", 1.1)


def test_crop_keeps_a_rectangle_in_place_and_zeroes_the_rest():
    """RandomResizedCrop's rectangle (area share 0.2..1, aspect 3/4..4/3), not resized."""
    augmenter = Augmenter(1.0, seed=0)
    image = np.random.default_rng(2).integers(1, 256, (112, 112, 3), dtype=np.uint8)
    for _ in range(50):
        out = augmenter.crop(image)
        rows, cols = np.nonzero(out.any(axis=2))
        top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        np.testing.assert_array_equal(out[top:bottom, left:right], image[top:bottom, left:right])
        assert out.sum() == out[top:bottom, left:right].sum()
        h, w = bottom - top, right - left
        assert 0.2 * 112 * 112 - 2 * 112 <= h * w <= 112 * 112
        assert 0.75 - 0.02 <= w / h <= 4 / 3 + 0.02 or (h, w) == (112, 112)


def test_low_resolution_loses_fine_detail():
    """Down-up sampling to a side in [0.2, 1) of 112 px removes most of a fine checkerboard."""
    augmenter = Augmenter(1.0, seed=0)
    board = np.indices((112, 112)).sum(axis=0) % 2 * 255
    image = np.repeat(board[..., None], 3, axis=2).astype(np.uint8)
    detail = [np.abs(np.diff(augmenter.low_resolution(image).astype(float), axis=1)).mean()]
    for _ in range(30):
        detail.append(np.abs(np.diff(augmenter.low_resolution(image).astype(float), axis=1)).mean())
    assert np.median(detail) < 0.5 * 255


def test_probability_zero_leaves_images_alone_and_one_changes_every_image():
    batch = _batch()
    assert torch.equal(Augmenter(0.0, seed=0)(batch), batch)
    changed = Augmenter(1.0, seed=0)(batch)
    assert changed.shape == batch.shape and changed.dtype == torch.uint8
    assert all(not torch.equal(a, b) for a, b in zip(changed, batch, strict=True))
    assert torch.equal(batch, _batch())  # the input is not modified in place


def test_the_same_seed_gives_the_same_augmentation():
    batch = _batch()
    assert torch.equal(Augmenter(0.5, seed=3)(batch), Augmenter(0.5, seed=3)(batch))
    assert not torch.equal(Augmenter(0.5, seed=3)(batch), Augmenter(0.5, seed=4)(batch))


def test_each_augmentation_happens_with_its_probability():
    """About prob of the images get each augmentation: 0.2 of 2000 = 400 +- 4 sd."""
    augmenter = Augmenter(0.2, seed=0)
    counts = dict.fromkeys(["crop", "low_resolution", "photometric"], 0)
    for name in counts:
        method = getattr(augmenter, name)

        def count(image, name=name, method=method):
            counts[name] += 1
            return method(image)

        setattr(augmenter, name, count)
    augmenter(_batch(n=2000))
    for name, n in counts.items():
        assert abs(n - 400) < 4 * np.sqrt(2000 * 0.2 * 0.8), name


def test_a_probability_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="train.augment_prob = 1.5"):
        Augmenter(1.5, seed=0)
