"""Training the demo model: a small IR network with the AdaFace margin head.

There is no pretrained face model on a fresh machine, so the demo trains one on the demo
dataset. The head follows the AdaFace paper (Kim, Jain & Liu, CVPR 2022,
doi:10.1109/CVPR52688.2022.01819) with the official recipe values m = 0.4, h = 0.333, s = 64 and
an EMA momentum of 0.01 for the batch statistics of the feature norm. The checkpoint is built in
the official Lightning layout (``state_dict`` with ``model.*`` backbone keys and the ``head.*``
entries) and is then read back by :func:`featnorm.embedding.models.load`, like any user checkpoint.

``load_training_images`` decodes the training split and ``train_demo_model`` trains on it and
returns the checkpoint and the curve without touching a file; the ``train-demo`` step
(:mod:`featnorm.cli.train`) sets torch's threads, seeds torch's default generator, reads the
manifest and writes the outputs.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

from featnorm.data.sources import read_image
from featnorm.data.splits import training_images
from featnorm.embedding import models
from featnorm.embedding.augment import Augmenter
from featnorm.embedding.models.preprocessing import FAMILY_LUTS
from featnorm.options import TRAIN_PRECISIONS
from featnorm.status import OK

__all__ = [
    "AdaFaceHead",
    "TrainingImages",
    "TrainingResult",
    "load_training_images",
    "native_bf16",
    "one_cycle",
    "resolve_precision",
    "train_demo_model",
]

logger = logging.getLogger(__name__)

MARGIN_M = 0.4  # AdaFace margin m (official recipes: --m 0.4)
MARGIN_H = 0.333  # AdaFace h: how far the norm-dependent scaler reaches (--h 0.333)
SCALE_S = 64.0  # logit scale s
NORM_EMA_MOMENTUM = 0.01  # t_alpha: EMA weight of each batch's norm mean and std
_EPS = 1e-3  # AdaFace's margin eps: keeps angles inside (0, pi) and the std away from 0
_NORM_CLIP = (0.001, 100.0)  # norms are clipped before the batch statistics, as in AdaFace
_MOMENTUM, _WEIGHT_DECAY = 0.9, 5e-4  # SGD settings of the official recipe
_WARMUP_FRACTION = 0.1  # share of steps with a linear learning-rate warm-up
_LOG_EVERY_STEPS = 10


class AdaFaceHead(nn.Module):
    """AdaFace margin head: adaptive margin driven by the feature norm as a quality proxy.

    The margin depends on z = clip(h * (norm - mean) / (std + eps), -1, 1), where mean and std
    are EMA estimates of the batch norm statistics: for the target class the angle becomes
    theta - m * z and m + m * z is subtracted from the cosine; the logits are scaled by s.
    Buffer names and the kernel shape (embedding_dim, classes) follow the official head so the
    checkpoint layout matches.

    References
    ----------
    Kim, M., Jain, A. K. & Liu, X. (2022). AdaFace: quality adaptive margin for face recognition.
    CVPR 2022. doi:10.1109/CVPR52688.2022.01819
    """

    def __init__(
        self,
        classes: int,
        *,
        embedding_dim: int = models.EMBEDDING_DIM,
        m: float = MARGIN_M,
        h: float = MARGIN_H,
        s: float = SCALE_S,
        t_alpha: float = NORM_EMA_MOMENTUM,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        kernel = torch.empty(embedding_dim, classes).uniform_(-1, 1, generator=generator)
        self.kernel = nn.Parameter(kernel / kernel.norm(dim=0, keepdim=True))
        self.m, self.h, self.s, self.t_alpha = m, h, s, t_alpha
        self.register_buffer("t", torch.zeros(1))
        self.register_buffer("batch_mean", torch.ones(1) * 20)  # official initial values
        self.register_buffer("batch_std", torch.ones(1) * 100)

    def forward(
        self, embedding: torch.Tensor, norm: torch.Tensor, label: torch.Tensor
    ) -> torch.Tensor:
        """Scaled logits (N, classes) from unit embeddings (N, D), norms (N, 1), labels (N,)."""
        kernel = F.normalize(self.kernel, dim=0)
        cosine = (embedding @ kernel).clamp(-1 + _EPS, 1 - _EPS)
        safe_norm = norm.clamp(*_NORM_CLIP).detach()
        with torch.no_grad():
            mean, std = safe_norm.mean(), safe_norm.std()
            self.batch_mean.mul_(1 - self.t_alpha).add_(self.t_alpha * mean)
            self.batch_std.mul_(1 - self.t_alpha).add_(self.t_alpha * std)
        z = (self.h * (safe_norm - self.batch_mean) / (self.batch_std + _EPS)).clamp(-1, 1)
        target = F.one_hot(label, cosine.shape[1]).to(cosine.dtype)
        theta = cosine.acos()
        theta = (theta - self.m * z * target).clamp(_EPS, math.pi - _EPS)
        cosine = theta.cos() - (self.m + self.m * z) * target
        return cosine * self.s


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` when oneDNN has native bf16 on this CPU (AVX512-BF16/AMX), else ``fp32``.

    Without native support bf16 is emulated and slower than fp32, so ``auto`` never picks it there.
    """
    if precision not in TRAIN_PRECISIONS:
        raise ValueError(
            f"train.precision = {precision!r} is not known; use one of {', '.join(TRAIN_PRECISIONS)}"
        )
    if precision != "auto":
        return precision
    return "bf16" if native_bf16() else "fp32"


def native_bf16() -> bool:
    """Does this CPU run bf16 natively (AVX512-BF16 or AMX), so that bf16 beats fp32?

    torch (2.13) has no public query for it: ``torch.cuda.is_bf16_supported`` is CUDA-only and
    ``torch.backends.cpu.get_cpu_capability()`` says ``AVX512`` with or without BF16. oneDNN's
    own check is asked here, in this one place; a torch without it gives False (fp32).
    """
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _load_images(manifest: pd.DataFrame) -> tuple[torch.Tensor, np.ndarray, pd.Series]:
    """Decode the usable training images once into one uint8 tensor.

    Returns the pixels, (M, 3, 112, 112) uint8 BGR for the M images whose decode status is
    ``ok``; the boolean mask (N,) of those rows in ``manifest``; and the status of every row.
    Unusable images are skipped here, not fatal: they are counted by status in the log.
    """
    pixels = []
    statuses = []
    for path in manifest["path"]:
        decoded = read_image(path)
        statuses.append(decoded.status)
        if decoded.ok:
            pixels.append(models.fit_input_size(models.to_bgr(decoded.image))[0])
    status = pd.Series(statuses, index=manifest.index, dtype="string")
    usable = (status == OK).to_numpy()
    if not usable.any():
        raise ValueError(
            f"none of the {len(manifest)} training images can be decoded; "
            f"statuses: {status.value_counts().to_dict()}"
        )
    stacked = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    return stacked, usable, status


def one_cycle(optimiser: torch.optim.Optimizer, total: int) -> LRScheduler:
    """One cycle over ``total`` optimiser steps: linear warm-up to the optimiser's lr over the first
    tenth, then cosine decay to zero. Step it once per optimiser step."""
    warmup = max(1, int(total * _WARMUP_FRACTION))
    ramp = LinearLR(optimiser, 1 / warmup, 1.0, total_iters=max(1, warmup - 1))
    decay = CosineAnnealingLR(optimiser, T_max=max(1, total - warmup), eta_min=0.0)
    return SequentialLR(optimiser, [ramp, decay], milestones=[warmup])


@dataclass(frozen=True)
class TrainingImages:
    """The decoded training split of a manifest (:func:`load_training_images`).

    pixels : Tensor of shape (M, 3, 112, 112), uint8, BGR: the M usable images.
    labels : Tensor of shape (M,), int64: their class index.
    classes : int: number of classes of the manifest (largest label + 1, held-out ones included,
        so the head's width matches the manifest's labels).
    skipped : dict of str to int: images that could not be decoded, counted by status.
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    classes: int
    skipped: dict[str, int]


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train_demo_model` returns.

    checkpoint : dict in the official Lightning layout (``state_dict`` with ``model.*`` backbone
        and ``head.*`` entries, ``hyper_parameters``), ready for ``torch.save``.
    curve : DataFrame, one row per epoch: ``epoch`` (1-based), ``loss`` (mean cross-entropy of
        the epoch's batches), ``train_accuracy`` in [0, 1] (argmax of the margin-free cosine on
        the augmented batches, higher is better) and ``lr_end`` (learning rate of its last step).
    """

    checkpoint: dict
    curve: pd.DataFrame


def load_training_images(manifest: pd.DataFrame) -> TrainingImages:
    """Decode the rows of :func:`featnorm.data.splits.training_images` of ``manifest``.

    ``manifest`` needs ``path`` and ``label`` columns (and ``split`` where images are held out).
    Images that cannot be decoded are skipped, not fatal: they are counted by status and logged.

    Raises
    ------
    ValueError
        When none of the training images can be decoded.
    """
    started = time.perf_counter()
    rows = training_images(manifest)
    table = manifest[rows.to_numpy()]
    logger.info("training split: %d of %d manifest images", len(table), len(manifest))
    pixels, usable, status = _load_images(table)
    skipped = status[~usable].value_counts()
    if len(skipped):
        logger.warning(
            "skipped %d unusable training images: %s", int(skipped.sum()), skipped.to_dict()
        )
    labels = torch.tensor(table["label"].to_numpy()[usable], dtype=torch.long)
    classes = int(manifest["label"].max()) + 1
    logger.info(
        "loaded %d images of %d classes in %.1f s",
        len(pixels),
        classes,
        time.perf_counter() - started,
    )
    return TrainingImages(pixels, labels, classes, {k: int(v) for k, v in skipped.items()})


def train_demo_model(
    images: TrainingImages,
    *,
    arch: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    precision: str = "auto",
    augment_prob: float = 0.0,
) -> TrainingResult:
    """Train ``arch`` with the AdaFace head on decoded training images; no file is touched.

    With ``augment_prob`` > 0 each image first gets AdaFace's crop, low-resolution and
    photometric augmentation, each with that probability (:mod:`featnorm.embedding.augment`;
    0.2 in the official recipe). Each batch is then flipped horizontally at random (as in
    AdaFace training) and mapped to [-1, 1] through the AdaFace lookup table. ``precision``
    ``bf16`` runs forward and backward under CPU bf16 autocast (the head, the loss and the
    weights stay float32); ``auto`` picks it where the CPU has native bf16. ``lr`` is the peak
    of a one-cycle schedule (:func:`one_cycle`). The batch
    order, the flips and the head's kernel draw from a generator seeded with ``seed``; the
    backbone's initial weights draw from torch's default generator, which the caller seeds (the
    ``train-demo`` step calls ``torch.manual_seed(seed)`` first) along with torch's threads.
    The per-epoch curve is logged with the epoch's throughput and returned.
    """
    generator = torch.Generator().manual_seed(seed)
    clocks = (time.perf_counter(), time.process_time())
    resolved = resolve_precision(precision)
    logger.info(
        "training on %d images of %d classes; precision %s (asked %s), batch %d, peak lr %g, "
        "%d epochs, augmentation p %g",
        *(len(images.pixels), images.classes, resolved, precision),
        *(batch_size, lr, epochs, augment_prob),
    )
    # NHWC activations and weights: oneDNN's convolutions take fewer CPU-seconds on them than on
    # NCHW (ir_demo, bf16 forward and backward; benchmarks/train_demo.py)
    backbone = models.build("adaface", arch).to(memory_format=torch.channels_last)
    head = AdaFaceHead(images.classes, generator=generator)
    params = list(backbone.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=lr, momentum=_MOMENTUM, weight_decay=_WEIGHT_DECAY)
    total = epochs * math.ceil(len(images.pixels) / batch_size)
    augmenter = Augmenter(augment_prob, seed) if augment_prob > 0 else None
    schedule = one_cycle(optimiser, total)
    run = _Run(backbone, head, optimiser, schedule, generator, resolved, batch_size, *clocks)
    run.total, run.augmenter = total, augmenter
    backbone.train()
    curve = [_train_epoch(run, images, epoch, epochs) for epoch in range(epochs)]
    hyper = dict(arch=arch, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    checkpoint = _checkpoint(
        run, images, hyper | dict(precision=resolved, augment_prob=augment_prob), curve[-1]
    )
    logger.info(
        "trained in %.1f s (CPU %.1f s); final train accuracy %.3f",
        time.perf_counter() - run.started,
        time.process_time() - run.cpu_started,
        curve[-1]["train_accuracy"],
    )
    return TrainingResult(checkpoint, pd.DataFrame(curve))


@dataclass
class _Run:
    """The state one training run carries from batch to batch."""

    backbone: nn.Module
    head: AdaFaceHead
    optimiser: torch.optim.Optimizer
    schedule: LRScheduler  # stepped once per optimiser step
    generator: torch.Generator
    precision: str  # resolved: fp32 or bf16
    batch_size: int
    started: float  # time.perf_counter() at the start, for the log
    cpu_started: float  # time.process_time() at the start, for the log
    epoch: int = 0  # the epoch under way, 0-based
    total: int = 0  # optimiser steps of the whole run
    step: int = 0  # optimiser steps taken so far
    last_lr: float = 0.0  # the learning rate of the last step taken
    augmenter: Augmenter | None = None  # AdaFace augmentation of the training batches, if any


def _train_epoch(run: _Run, images: TrainingImages, epoch: int, epochs: int) -> dict:
    """Epoch ``epoch`` (0-based): one pass over the images in a fresh random order; returns the
    epoch's curve row."""
    run.epoch = epoch
    epoch_started = time.perf_counter()
    lut = torch.from_numpy(FAMILY_LUTS["adaface"])
    order = torch.randperm(len(images.pixels), generator=run.generator)
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), run.batch_size):
        idx = order[start : start + run.batch_size]
        if len(idx) < 2:
            continue  # BatchNorm needs two samples
        loss, batch_correct = _train_step(run, images.pixels[idx], images.labels[idx], lut)
        loss_sum += loss * len(idx)
        seen += len(idx)
        correct += batch_correct
    epoch_s = time.perf_counter() - epoch_started
    # the curve holds what the run computes (identical across runs); timings go to the log
    row = {
        "epoch": run.epoch + 1,
        "loss": loss_sum / seen,
        "train_accuracy": correct / seen,
        "lr_end": run.last_lr,
    }
    logger.info(
        "epoch %d/%d: mean loss %.3f, train accuracy %.3f, %.0f img/s (%.1f s; CPU %.1f s in all)",
        run.epoch + 1,
        epochs,
        row["loss"],
        row["train_accuracy"],
        seen / epoch_s,
        epoch_s,
        time.process_time() - run.cpu_started,
    )
    return row


def _train_step(
    run: _Run, x: torch.Tensor, y: torch.Tensor, lut: torch.Tensor
) -> tuple[float, int]:
    """One optimiser step on uint8 images ``x`` (B, 3, 112, 112) with labels ``y`` (B,).

    Returns the batch's mean loss and how many of its images the margin-free cosine classifies
    correctly.
    """
    if run.augmenter is not None:
        x = run.augmenter(x)
    flip = torch.rand(len(x), generator=run.generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    x = lut[x.long()].contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=run.precision == "bf16"):
        embedding, norm = run.backbone(x)
    embedding, norm = embedding.float(), norm.float()
    logits = run.head(embedding, norm, y)
    loss = F.cross_entropy(logits, y)
    run.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    run.optimiser.step()
    run.last_lr = run.optimiser.param_groups[0]["lr"]
    run.schedule.step()
    run.step += 1
    with torch.no_grad():
        correct = int(((embedding @ F.normalize(run.head.kernel, dim=0)).argmax(1) == y).sum())
    if run.step % _LOG_EVERY_STEPS == 0:
        logger.info(
            "epoch %d step %d/%d loss %.3f (%.0f s)",
            run.epoch + 1,
            run.step,
            run.total,
            loss.item(),
            time.perf_counter() - run.started,
        )
    return loss.item(), correct


def _checkpoint(run: _Run, images: TrainingImages, hyper: dict, last: dict) -> dict:
    """The checkpoint in the official Lightning layout, with the run's settings and outcome."""
    return {
        "epoch": hyper["epochs"],
        "global_step": run.step,
        "state_dict": {
            # contiguous: the checkpoint stores the official (NCHW) tensor layout
            **{f"model.{k}": v.contiguous() for k, v in run.backbone.state_dict().items()},
            **{f"head.{k}": v for k, v in run.head.state_dict().items()},
        },
        "hyper_parameters": {
            **hyper,
            "m": MARGIN_M,
            "h": MARGIN_H,
            "s": SCALE_S,
            "t_alpha": NORM_EMA_MOMENTUM,
            "classes": images.classes,
            "train_images": len(images.pixels),
            "skipped_images": sum(images.skipped.values()),
            "loss": last["loss"],
            "train_accuracy": last["train_accuracy"],
        },
    }
