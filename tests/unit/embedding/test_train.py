"""featnorm.embedding.train: the AdaFace margin head and the demo model's checkpoint layout."""

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from featnorm import tableio
from featnorm.cli.main import main
from featnorm.data import demo
from featnorm.data.sources import read_image
from featnorm.embedding import models
from featnorm.embedding.augment import Augmenter
from featnorm.embedding.train import (
    AdaFaceHead,
    TrainingResult,
    load_training_images,
    native_bf16,
    one_cycle,
    resolve_precision,
    train_demo_model,
)


def _head(classes=3, **kwargs):
    return AdaFaceHead(
        classes, embedding_dim=4, generator=torch.Generator().manual_seed(0), **kwargs
    )


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
        expected = 64 * (
            math.cos(min(max(theta - 0.4 * z, 1e-3), math.pi - 1e-3)) - (0.4 + 0.4 * z)
        )
        assert float(logits[row, 0]) == pytest.approx(expected, rel=1e-4)


def _train(table: pd.DataFrame, *, seed: int = 0, **options) -> TrainingResult:
    """The core as the train-demo step calls it: seed torch's default generator, decode, train."""
    torch.manual_seed(seed)
    images = load_training_images(table)
    settings = {"arch": "ir_demo", "epochs": 1, "batch_size": 4, "lr": 0.05, "precision": "fp32"}
    return train_demo_model(images, seed=seed, **{**settings, **options})


def test_train_demo_step_writes_a_checkpoint_in_the_official_layout_that_loads(tmp_path):
    """`featnorm train-demo` writes the checkpoint and the curve; models.load reads it back."""
    table = demo.generate(
        demo.DemoParams(identities=3, min_images=2, max_images=4), tmp_path / "img"
    )
    tableio.write_table(table, tmp_path / "manifest.parquet")
    ckpt, curve_file = tmp_path / "model.ckpt", tmp_path / "curve.csv"
    options = ["--arch", "ir_demo", "--epochs", "1", "--batch-size", "4", "--lr", "0.05"]
    options += ["--seed", "0", "--threads", "1", "--precision", "fp32"]
    rc = main(
        ["train-demo", "--manifest", str(tmp_path / "manifest.parquet"), *options]
        + ["--output", str(ckpt), "--curve", str(curve_file)]
    )
    assert rc == 0
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    keys = saved["state_dict"].keys()
    assert {"head.kernel", "head.t", "head.batch_mean", "head.batch_std"} <= set(keys)
    assert saved["state_dict"]["head.kernel"].shape == (512, 3)
    assert all(k.startswith(("model.", "head.")) for k in keys)
    # trained channels-last, stored in the official (contiguous NCHW) layout
    assert all(v.is_contiguous() for v in saved["state_dict"].values())
    assert math.isfinite(saved["hyper_parameters"]["loss"])
    assert pd.read_csv(curve_file)["epoch"].tolist() == [1]
    model = models.load(ckpt, family="adaface", arch="ir_demo")
    x = models.preprocess([read_image(p).image for p in table["path"][:2]])
    embedding, norm = model(x)
    assert embedding.shape == (2, 512) and torch.isfinite(norm).all()


def test_the_same_seed_gives_the_same_weights_and_another_does_not(tmp_path):
    """Seeding is the caller's (the step's); the core then draws the same numbers every time."""
    table = _small_demo(tmp_path)
    first, again, other = _train(table), _train(table), _train(table, seed=1)
    for key, value in first.checkpoint["state_dict"].items():
        assert torch.equal(value, again.checkpoint["state_dict"][key]), key
    pd.testing.assert_frame_equal(first.curve, again.curve)
    kernel = "head.kernel"
    assert not torch.equal(
        first.checkpoint["state_dict"][kernel], other.checkpoint["state_dict"][kernel]
    )


def _small_demo(tmp_path, holdout=0):
    params = demo.DemoParams(identities=3, min_images=2, max_images=4, holdout=holdout)
    return demo.generate(params, tmp_path / "img")


def test_training_skips_unusable_images_and_counts_them(tmp_path, caplog):
    """An empty and a corrupt file are skipped with a logged count; the rest still trains."""
    table = _small_demo(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    bad = pd.DataFrame(
        {
            "path": [str(tmp_path / "empty.jpg"), str(tmp_path / "corrupt.jpg")],
            "label": [0, 1],
            "class_name": ["id00000", "id00001"],
            "split": "train",
        }
    )
    table = pd.concat([table, bad], ignore_index=True)
    with caplog.at_level(logging.INFO, logger="featnorm.embedding.train"):
        result = _train(table)
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "skipped 2 unusable training images" in skipped[0]
    assert "empty_file" in skipped[0]
    hyper = result.checkpoint["hyper_parameters"]
    assert hyper["train_images"] == len(table) - 2 and hyper["skipped_images"] == 2


def test_training_with_no_usable_image_says_so(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    table = pd.DataFrame({"path": [str(tmp_path / "empty.jpg")], "label": [0], "class_name": ["a"]})
    with pytest.raises(ValueError, match="none of the 1 training images"):
        load_training_images(table)


def test_training_uses_the_train_split_only_and_returns_its_curve(tmp_path):
    """Held-out images never reach training; the curve has one row per epoch."""
    table = _small_demo(tmp_path, holdout=2)
    n_train = int((table["split"] == "train").sum())
    assert n_train < len(table)
    result = _train(table, epochs=3)
    hyper = result.checkpoint["hyper_parameters"]
    assert hyper["train_images"] == n_train and hyper["classes"] == 3
    curve = result.curve
    assert curve["epoch"].tolist() == [1, 2, 3]
    assert curve["train_accuracy"].between(0, 1).all() and (curve["loss"] > 0).all()
    assert curve.iloc[-1]["train_accuracy"] == pytest.approx(hyper["train_accuracy"])
    assert curve.iloc[-1]["lr_end"] < 0.05 * 0.1  # the cosine cycle ends near zero


def test_bf16_training_writes_float32_weights(tmp_path):
    """bf16 autocast changes the arithmetic, not the checkpoint: weights stay float32."""
    state = _train(_small_demo(tmp_path), precision="bf16").checkpoint["state_dict"]
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())


def test_precision_auto_resolves_and_unknown_is_refused():
    assert resolve_precision("auto") in ("bf16", "fp32")
    assert resolve_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="train.precision = 'fp8'"):
        resolve_precision("fp8")


def test_native_bf16_agrees_with_the_cpu_flags():
    """An independent reading of the same fact: the kernel's CPU flags (Linux x86 only)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file() or "flags" not in cpuinfo.read_text():
        pytest.skip("no /proc/cpuinfo flags on this machine")
    flags = set(cpuinfo.read_text().split("flags")[1].split("\n")[0].split())
    assert native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("total", [1, 7, 100, 574 * 14])
def test_lr_schedule_is_one_cycle(total):
    """Linear warm-up over the first tenth to the peak, then cosine decay to zero: torch's
    schedulers give the closed form of the one-cycle curve at every step."""
    peak = 0.2
    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    schedule = one_cycle(optimiser, total)
    lrs = []
    for _ in range(total):
        lrs.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    warmup = max(1, int(total * 0.1))
    closed = [
        peak * (s + 1) / warmup
        if s < warmup
        else 0.5 * peak * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        for s in range(total)
    ]
    np.testing.assert_allclose(lrs, closed, rtol=1e-9, atol=1e-12)
    assert max(lrs) == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :], strict=False))


def test_a_models_train_block_overrides_the_global_train_keys():
    """checks.train_settings: per-model keys win, the rest come from `train:`."""
    from featnorm.config import checks

    config = {
        "train": {"epochs": 8, "batch_size": 64, "lr": 0.2, "seed": 0, "precision": "auto"},
        "models": {
            "short": {"arch": "ir_demo", "checkpoint": "train"},
            "long": {
                "arch": "ir_demo",
                "checkpoint": "train",
                "train": {"epochs": 20, "precision": "fp32"},
            },
        },
    }
    assert checks.train_settings(config, "short") == config["train"]
    assert checks.train_settings(config, "long") == {
        "epochs": 20,
        "batch_size": 64,
        "lr": 0.2,
        "seed": 0,
        "precision": "fp32",
    }
    assert config["train"]["epochs"] == 8  # the global block is not modified


def test_a_train_block_on_a_checkpoint_file_is_refused(tmp_path):
    from featnorm.config import checks

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"")
    config = {
        "models": {"mine": {"arch": "ir_50", "checkpoint": str(ckpt), "train": {"epochs": 3}}}
    }
    with pytest.raises(checks.ConfigError, match="models.mine.train is set but"):
        checks._check_models(config)


def test_augmentation_sees_the_training_images_only(tmp_path, monkeypatch):
    """With augmentation on, every image it gets is a decoded training image, each once per
    epoch; held-out images never reach it (nor training)."""
    table = _small_demo(tmp_path, holdout=2)
    seen = []
    original = Augmenter.__call__

    def spy(self, batch):
        seen.extend(batch)
        return original(self, batch)

    monkeypatch.setattr(Augmenter, "__call__", spy)
    result = _train(table, epochs=2, augment_prob=1.0)
    train_pixels = load_training_images(table).pixels
    held = table[table["split"] == "holdout"]
    held_pixels = load_training_images(held.assign(split="train")).pixels
    assert len(seen) == 2 * len(train_pixels)
    for image in seen:
        assert any(torch.equal(image, p) for p in train_pixels)
        assert not any(torch.equal(image, p) for p in held_pixels)
    assert result.checkpoint["hyper_parameters"]["augment_prob"] == 1.0


def test_augmentation_changes_the_batches_and_off_it_is_never_called(tmp_path, monkeypatch):
    """augment_prob 0 (the default) trains without the augmenter; > 0 changes the weights."""
    table = _small_demo(tmp_path)
    calls = []
    original = Augmenter.__call__

    def spy(self, batch):
        calls.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(Augmenter, "__call__", spy)
    plain = _train(table)
    assert calls == []
    augmented = _train(table, augment_prob=1.0)
    assert sum(calls) == len(table)
    key = "model.input_layer.0.weight"  # the first convolution sees the pixels
    assert not torch.equal(
        plain.checkpoint["state_dict"][key], augmented.checkpoint["state_dict"][key]
    )
