"""featnorm.data.demo: the synthetic long-tailed face dataset."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from featnorm.data import demo
from featnorm.data.sources import read_image


def test_default_class_sizes_are_long_tailed_like_casia():
    """Defaults: >= 300 identities, 2..>=150 images each, a few thousand in all, largest first."""
    sizes = demo.class_sizes(demo.DemoParams())
    assert len(sizes) >= 300 and sizes.min() >= 2 and sizes.max() >= 150
    assert 2000 <= sizes.sum() <= 5000
    assert np.all(np.diff(sizes) <= 0)


def test_true_quality_is_one_when_undegraded_and_falls_with_each_degradation():
    """Each retention factor is 1 when its degradation is absent and falls as documented."""
    clean = demo.true_quality(0, 1, "none", 0, 100)
    assert clean == pytest.approx(1.0)
    assert demo.true_quality(5, 1, "none", 0, 100) == pytest.approx(0.5)  # blur half point
    assert demo.true_quality(2.5, 1, "none", 0, 100) == pytest.approx(1 / (1 + 0.5**6))
    f_half = np.sqrt(1 + 4 * 5**2 / 1.5)  # down-up factor whose weighted blur is 5 px
    assert demo.true_quality(0, f_half, "none", 0, 100) == pytest.approx(0.5)
    assert demo.true_quality(0, 1, "eyes", 0, 100) == pytest.approx(0.6)
    assert demo.true_quality(0, 1, "mouth", 0, 100) == pytest.approx(0.35)
    assert demo.true_quality(0, 1, "none", 100, 100) == pytest.approx(0.5)
    assert demo.true_quality(0, 1, "none", 0, 10) == pytest.approx(1 / (1 + (90 / 250) ** 2))
    # the severe tail ranks below the mild levels; noise and JPEG weigh little
    assert demo.true_quality(5, 1, "none", 0, 100) < demo.true_quality(0, 1, "none", 25, 10)
    assert demo.true_quality(0, 1, "mouth", 0, 100) < demo.true_quality(0, 1, "eyes", 0, 100)
    assert demo.true_quality(0, 16, "none", 0, 100) < demo.true_quality(0, 4, "none", 0, 100)
    assert demo.true_quality(3, 8, "eyes", 20, 20) < demo.true_quality(1, 1.5, "mouth", 5, 80)
    q = demo.true_quality([0, 5], [16, 1], ["none", "eyes"], [0, 25], [100, 10])
    assert q.shape == (2,) and np.all((q > 0) & (q <= 1))
    with pytest.raises(ValueError, match="occlusion must be one of none, eyes, mouth"):
        demo.true_quality(0, 1, "hat", 0, 100)


def test_equivalent_blur_is_the_measured_spread_of_a_line():
    """Independent check of the down-up term: degrade a one-pixel line at 48 positions and
    measure the spread of its profile about the true position (variance, px^2). Area
    down-sampling plus bilinear up-sampling spread like a Gaussian of variance (f^2 - 1) / 4;
    tolerance 0.3 px^2 + 8 % (the pixel grid's own quarter pixel and the blur's discrete kernel).
    """
    for blur, factor in [(0, 2), (0, 4), (0, 8), (0, 112 / 9), (0, 16), (3, 1), (5, 1), (3, 8)]:
        spread = []
        for pos in range(32, 80):
            image = np.zeros((112, 112, 3), np.uint8)
            image[:, pos] = 200
            d = {"blur_sigma": blur, "downup_factor": factor, "noise_sigma": 0.0}
            profile = demo.degrade(image, np.random.default_rng(0), d)[56, :, 0].astype(float)
            weight = profile / profile.sum()
            spread.append(np.sum(weight * (np.arange(112) - pos) ** 2))
        expected = demo.equivalent_blur(blur, factor) ** 2
        assert np.mean(spread) == pytest.approx(expected, rel=0.08, abs=0.3), (blur, factor)


def _draws(n=4000):
    return pd.DataFrame(
        [demo._draw_degradation(np.random.default_rng([0, 0, 1, i])) for i in range(n)]
    )


def test_degradations_have_a_severe_tail_and_a_healthy_share_of_clean_images():
    """Ranges of each column, the severe tail (down-up to 16, blur to 5 px), both occlusions,
    and a share of images free of blur, down-sampling and occlusion."""
    d = _draws()
    blurred, resampled = d["blur_sigma"] > 0, d["downup_factor"] > 1
    assert d.loc[blurred, "blur_sigma"].between(0.5, 5.0).all()
    assert d.loc[blurred, "blur_sigma"].max() > 4.8
    factors = d.loc[resampled, "downup_factor"]
    assert factors.between(112 / 75, 16.0).all() and factors.max() == 16.0
    assert (factors >= 12).mean() > 0.05  # a few pixels between the eyes
    assert np.allclose(112 / factors, np.round(112 / factors))  # whole-pixel sides
    assert set(d["occlusion"]) == {"none", "eyes", "mouth"}
    assert d["noise_sigma"].between(0, 25).all() and d["jpeg_quality"].between(10, 100).all()
    sharp = ~blurred & ~resampled & (d["occlusion"] == "none")
    assert 0.35 < sharp.mean() < 0.6
    assert 0.05 < (demo.equivalent_blur(d["blur_sigma"], d["downup_factor"]) > 4).mean() < 0.25


def test_occlusions_cover_the_eyes_or_the_mouth():
    """The same draw with sunglasses changes the upper half of the face, with a mask the lower."""
    traits = demo.identity_traits(0, 0)
    render = {
        kind: demo.render_identity_image(traits, np.random.default_rng(1), kind).astype(float)
        for kind in demo.OCCLUSIONS
    }
    eyes = np.abs(render["eyes"] - render["none"]).mean(axis=(1, 2))  # per image row
    assert eyes[48:62].min() > 10 and eyes[:35].max() < 1 and eyes[75:].max() < 1
    mouth = np.abs(render["mouth"] - render["none"]).mean(axis=(1, 2))
    assert mouth[75:100].min() > 10 and mouth[:55].max() < 1


def test_colour_alone_does_not_identify():
    """Per-image illumination and colour cast swamp skin and hair tone: less than half of the
    variance of an image's mean face colour lies between identities (the earlier generator,
    with gain and gradient only, had 0.65 to 0.74)."""
    colours, labels = [], []
    for label in range(12):
        traits = demo.identity_traits(5, label)
        for i in range(10):
            image = demo.render_identity_image(traits, np.random.default_rng([5, label, 1, i]))
            colours.append(image[50:80, 40:72].reshape(-1, 3).mean(axis=0))
            labels.append(label)
    table = pd.DataFrame(colours, columns=["b", "g", "r"]).assign(label=labels)
    means = table.groupby("label").mean()
    within = table.groupby("label").var().mean()
    between = means.var() - within / 10
    assert (between / (between + within) < 0.5).all()


def test_degradations_are_independent_of_identity_and_class_size(tmp_path):
    """True quality does not differ between identities (Kruskal-Wallis) and its class mean does
    not follow the class size (Spearman), on a generated demo with a long tail."""
    params = demo.DemoParams(identities=40, min_images=2, max_images=30, seed=11, holdout=0)
    table = demo.generate(params, tmp_path)
    groups = [g["true_quality"].to_numpy() for _, g in table.groupby("label")]
    assert stats.kruskal(*groups).pvalue > 0.01
    per_class = table.groupby("label")["true_quality"].agg(["mean", "size"])
    assert stats.spearmanr(per_class["mean"], per_class["size"]).pvalue > 0.01
    for column in ["blur_sigma", "downup_factor", "noise_sigma"]:
        means = table.groupby("label")[column].mean()
        assert stats.spearmanr(means, per_class["size"]).pvalue > 0.01, column


def test_generation_is_deterministic_and_writes_real_112px_images(tmp_path):
    params = demo.DemoParams(identities=3, min_images=2, max_images=4, seed=7)
    first = demo.generate(params, tmp_path / "a")
    second = demo.generate(params, tmp_path / "b")
    assert len(first) == demo.class_sizes(params).sum() + 3 * params.holdout
    for path_a, path_b in zip(first["path"], second["path"], strict=True):
        image = read_image(path_a)
        assert image.ok and image.image.shape == (112, 112, 3)
        assert Path(path_a).read_bytes() == Path(path_b).read_bytes()
    cols = [*demo.DEGRADATION_COLUMNS, "true_quality"]
    assert first[cols].equals(second[cols])
    assert first["occlusion"].dtype == "string"


def test_identities_differ_more_than_images_of_one_identity(tmp_path):
    """Undegraded renders of one identity are closer to each other than to another identity."""
    traits = [demo.identity_traits(0, label) for label in range(2)]
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
