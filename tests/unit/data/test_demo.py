"""featnorm.data.demo: the synthetic long-tailed face dataset."""

from pathlib import Path

import numpy as np
import pytest

from featnorm.data import demo
from featnorm.data.sources import read_image


def test_default_class_sizes_are_long_tailed_like_casia():
    """Defaults: >= 300 identities, 2..>=150 images each, a few thousand in all, largest first."""
    sizes = demo.class_sizes(demo.DemoParams())
    assert len(sizes) >= 300 and sizes.min() >= 2 and sizes.max() >= 150
    assert 2000 <= sizes.sum() <= 5000
    assert np.all(np.diff(sizes) <= 0)


def test_true_quality_is_one_when_undegraded_and_falls_with_each_degradation():
    assert demo.true_quality(0, 1, 0, 100) == pytest.approx(1.0)
    clean = demo.true_quality(0, 1, 0, 100)
    assert demo.true_quality(1.5, 1, 0, 100) == pytest.approx(0.5**0.25)
    assert demo.true_quality(0, 2, 0, 100) == pytest.approx(0.5**0.25)
    assert demo.true_quality(0, 1, 10, 100) == pytest.approx(0.5**0.25)
    assert demo.true_quality(0, 1, 0, 40) == pytest.approx(0.5**0.25)
    assert demo.true_quality(3, 3, 20, 20) < demo.true_quality(1, 1.5, 5, 80) < clean


def test_generation_is_deterministic_and_writes_real_112px_images(tmp_path):
    params = demo.DemoParams(identities=3, min_images=2, max_images=4, seed=7)
    first = demo.generate(params, tmp_path / "a")
    second = demo.generate(params, tmp_path / "b")
    assert len(first) == demo.class_sizes(params).sum() + 3 * params.holdout
    for path_a, path_b in zip(first["path"], second["path"], strict=True):
        image = read_image(path_a)
        assert image.ok and image.image.shape == (112, 112, 3)
        assert Path(path_a).read_bytes() == Path(path_b).read_bytes()
    cols = ["blur_sigma", "downup_factor", "noise_sigma", "jpeg_quality", "true_quality"]
    assert first[cols].equals(second[cols])


def test_identities_differ_more_than_images_of_one_identity(tmp_path):
    """Undegraded renders of one identity are closer to each other than to another identity."""
    traits = [demo._identity_traits(np.random.default_rng([0, label, 0])) for label in range(2)]
    renders = [
        [
            demo.render_identity_image(t, np.random.default_rng([0, i])).astype(float)
            for i in range(4)
        ]
        for t in traits
    ]
    within = np.mean([np.abs(renders[0][0] - renders[0][i]).mean() for i in range(1, 4)])
    between = np.mean([np.abs(renders[0][0] - renders[1][i]).mean() for i in range(4)])
    assert within < between


def test_holdout_adds_images_per_identity_and_leaves_the_training_images_alone(tmp_path):
    """Held-out images are extra: each identity keeps its training images byte for byte."""
    sizes_params = {"identities": 4, "min_images": 2, "max_images": 5, "seed": 3}
    plain = demo.generate(demo.DemoParams(**sizes_params, holdout=0), tmp_path / "plain")
    held = demo.generate(demo.DemoParams(**sizes_params, holdout=2), tmp_path / "held")
    sizes = demo.class_sizes(demo.DemoParams(**sizes_params))
    assert (plain["split"] == "train").all()
    assert held["split"].value_counts().to_dict() == {"train": sizes.sum(), "holdout": 4 * 2}
    assert demo.image_count(demo.DemoParams(**sizes_params, holdout=2)) == len(held)
    per_class = held.groupby(["label", "split"]).size().unstack()
    assert per_class["train"].tolist() == sizes.tolist()
    assert (per_class["holdout"] == 2).all()
    train = held[held["split"] == "train"].reset_index(drop=True)
    for path_a, path_b in zip(plain["path"], train["path"], strict=True):
        assert Path(path_a).read_bytes() == Path(path_b).read_bytes()
    holdout = held[held["split"] == "holdout"]
    assert all(read_image(p).ok for p in holdout["path"])
    assert holdout["true_quality"].between(0, 1).all()


def test_bad_parameters_name_the_key():
    with pytest.raises(ValueError, match="dataset.demo.holdout"):
        demo.DemoParams(holdout=-1)
    with pytest.raises(ValueError, match="dataset.demo.min_images"):
        demo.DemoParams(min_images=10, max_images=5)
