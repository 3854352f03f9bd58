"""featnorm.train: the AdaFace margin head and the demo model's checkpoint layout."""

import math

import pytest
import torch
from torch.nn import functional as F

from featnorm import demo, models
from featnorm.sources import read_image
from featnorm.train import AdaFaceHead, train_demo_model


def _head(classes=3, **kwargs):
    return AdaFaceHead(classes, embedding_dim=4, generator=torch.Generator().manual_seed(0), **kwargs)


def test_without_margin_the_logits_are_scaled_cosines():
    head = _head(m=0.0)
    embedding = F.normalize(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)), dim=1)
    logits = head(embedding, torch.full((5, 1), 20.0), torch.tensor([0, 1, 2, 0, 1]))
    expected = (embedding @ F.normalize(head.kernel, dim=0)).clamp(-1 + 1e-3, 1 - 1e-3) * 64
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-4)


def test_margin_only_touches_the_target_class_and_lowers_it():
    head = _head(m=0.4)
    embedding = F.normalize(torch.randn(4, 4, generator=torch.Generator().manual_seed(2)), dim=1)
    label = torch.tensor([0, 1, 2, 0])
    plain = _head(m=0.0)(embedding, torch.full((4, 1), 20.0), label)
    logits = head(embedding, torch.full((4, 1), 20.0), label)
    target = F.one_hot(label, 3).bool()
    torch.testing.assert_close(logits[~target], plain[~target])
    assert (logits[target] < plain[target]).all()


def test_norm_statistics_follow_an_ema_with_momentum_001():
    head = _head()
    norms = torch.tensor([[10.0], [30.0]])
    head(F.normalize(torch.ones(2, 4), dim=1), norms, torch.tensor([0, 1]))
    assert head.batch_mean.item() == pytest.approx(0.99 * 20 + 0.01 * 20.0)
    assert head.batch_std.item() == pytest.approx(0.99 * 100 + 0.01 * norms.std().item())


def test_high_norm_samples_get_a_larger_angular_margin():
    """AdaFace: z > 0 (high norm, 'easy') moves the target angle by -m*z and the cosine by m+m*z."""
    head = _head(m=0.4, h=1.0)
    head.batch_mean.fill_(20.0)
    head.batch_std.fill_(5.0)
    head.t_alpha = 0.0  # freeze the statistics to read off one step
    embedding = F.normalize(torch.tensor([[1.0, 0.2, 0.0, 0.0]] * 2), dim=1)
    logits = head(embedding, torch.tensor([[10.0], [30.0]]), torch.tensor([0, 0]))
    cos = (embedding[0] @ F.normalize(head.kernel, dim=0)[:, 0]).clamp(-1 + 1e-3, 1 - 1e-3)
    theta = math.acos(float(cos.detach()))
    for row, z in ((0, -1.0), (1, 1.0)):
        expected = 64 * (math.cos(min(max(theta - 0.4 * z, 1e-3), math.pi - 1e-3)) - (0.4 + 0.4 * z))
        assert float(logits[row, 0]) == pytest.approx(expected, rel=1e-4)


def test_demo_checkpoint_has_the_official_layout_and_loads(tmp_path):
    table = demo.generate(demo.DemoParams(identities=3, min_images=2, max_images=4), tmp_path / "img")
    ckpt = tmp_path / "model.ckpt"
    summary = train_demo_model(table, str(ckpt), arch="ir_demo", epochs=1, batch_size=4,
                               lr=0.05, seed=0, threads=1)
    assert math.isfinite(summary["loss"])
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    keys = saved["state_dict"].keys()
    assert {"head.kernel", "head.t", "head.batch_mean", "head.batch_std"} <= set(keys)
    assert saved["state_dict"]["head.kernel"].shape == (512, 3)
    assert all(k.startswith(("model.", "head.")) for k in keys)
    model = models.load(ckpt, family="adaface", arch="ir_demo")
    x = models.preprocess([read_image(p).image for p in table["path"][:2]])
    embedding, norm = model(x)
    assert embedding.shape == (2, 512) and torch.isfinite(norm).all()
