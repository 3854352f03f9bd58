"""Training the demo model: a small IR network with the AdaFace margin head.

There is no pretrained face model on a fresh machine, so the demo trains one on the demo
dataset. The head follows the AdaFace paper (Kim, Jain & Liu, CVPR 2022,
doi:10.1109/CVPR52688.2022.01819) with the official recipe values m = 0.4, h = 0.333, s = 64 and
an EMA momentum of 0.01 for the batch statistics of the feature norm. The checkpoint is written in
the official Lightning layout (``state_dict`` with ``model.*`` backbone keys and the ``head.*``
entries) and is then read back by :func:`featnorm.models.load`, like any user checkpoint.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from featnorm import models
from featnorm.analysis import training_images
from featnorm.io import atomic_path, write_text
from featnorm.models.preprocessing import FAMILY_LUTS
from featnorm.sources import read_image
from featnorm.status import OK

__all__ = ["PRECISIONS", "AdaFaceHead", "resolve_precision", "train_demo_model"]

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
PRECISIONS = ("auto", "fp32", "bf16")  # train.precision values (see resolve_precision)


class AdaFaceHead(nn.Module):
    """AdaFace margin head: adaptive margin driven by the feature norm as a quality proxy.

    The margin depends on z = clip(h * (norm - mean) / (std + eps), -1, 1), where mean and std
    are EMA estimates of the batch norm statistics: for the target class the angle becomes
    theta - m * z and m + m * z is subtracted from the cosine; the logits are scaled by s.
    Buffer names and the kernel shape (embedding_dim, classes) follow the official head so the
    checkpoint layout matches.
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
    if precision not in PRECISIONS:
        raise ValueError(
            f"train.precision = {precision!r} is not known; use one of {', '.join(PRECISIONS)}"
        )
    if precision != "auto":
        return precision
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return "bf16" if native else "fp32"


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


def _lr_at(step: int, total: int, peak: float) -> float:
    """One cycle: linear warm-up over the first tenth of the steps, then cosine decay to zero."""
    warmup = max(1, int(total * _WARMUP_FRACTION))
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def train_demo_model(
    manifest: pd.DataFrame,
    output: str,
    *,
    arch: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    threads: int,
    precision: str = "auto",
    curve_output: str | None = None,
) -> dict[str, float]:
    """Train ``arch`` with the AdaFace head on the manifest's training images; write the checkpoint.

    Trains on the rows of :func:`featnorm.analysis.training_images`, skipping images that cannot be decoded (counted
    by status in the log). The pixels stay in memory as one uint8 tensor; each batch is flipped
    horizontally at random (as in AdaFace training) and mapped to [-1, 1] through the AdaFace
    lookup table. ``precision`` ``bf16`` runs forward and backward under CPU bf16 autocast (the
    head, the loss and the weights stay float32); ``auto`` picks it where the CPU has native bf16.
    The per-epoch curve (loss, training accuracy = argmax of the margin-free cosine, measured on
    the augmented batches while training, learning rate at the epoch's end) is logged with the
    epoch's throughput and, with ``curve_output``, written as CSV. Returns the final epoch's row of that curve.
    """
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # module initialisation draws from the default generator
    started = time.perf_counter()
    cpu_started = time.process_time()
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
    lut = torch.from_numpy(FAMILY_LUTS["adaface"])
    resolved = resolve_precision(precision)
    logger.info(
        "loaded %d images of %d classes in %.1f s; precision %s (asked %s), batch %d, "
        "peak lr %g, %d epochs",
        len(pixels),
        classes,
        time.perf_counter() - started,
        resolved,
        precision,
        batch_size,
        lr,
        epochs,
    )

    # NHWC activations and weights: oneDNN's convolutions run about 1.5x faster per CPU-second
    # on them than on NCHW (measured on ir_demo, bf16 forward and backward)
    backbone = models.build("adaface", arch).to(memory_format=torch.channels_last)
    head = AdaFaceHead(classes, generator=generator)
    params = list(backbone.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=lr, momentum=_MOMENTUM, weight_decay=_WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(pixels) / batch_size)
    total, step = epochs * steps_per_epoch, 0
    curve = []
    backbone.train()
    for epoch in range(epochs):
        epoch_started = time.perf_counter()
        order = torch.randperm(len(pixels), generator=generator)
        loss_sum, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            x, y = pixels[idx], labels[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            x = lut[x.long()].contiguous(memory_format=torch.channels_last)
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, total, lr)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=resolved == "bf16"):
                embedding, norm = backbone(x)
            embedding, norm = embedding.float(), norm.float()
            logits = head(embedding, norm, y)
            loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
            with torch.no_grad():
                correct += int(((embedding @ F.normalize(head.kernel, dim=0)).argmax(1) == y).sum())
            if step % _LOG_EVERY_STEPS == 0:
                logger.info(
                    "epoch %d step %d/%d loss %.3f (%.0f s)",
                    epoch + 1,
                    step,
                    total,
                    loss.item(),
                    time.perf_counter() - started,
                )
        epoch_s = time.perf_counter() - epoch_started
        # the curve holds what the run computes (identical across runs); timings go to the log
        curve.append(
            {
                "epoch": epoch + 1,
                "loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "lr_end": _lr_at(step - 1, total, lr),
            }
        )
        logger.info(
            "epoch %d/%d: mean loss %.3f, train accuracy %.3f, %.0f img/s (%.1f s; "
            "CPU %.1f s in all)",
            epoch + 1,
            epochs,
            curve[-1]["loss"],
            curve[-1]["train_accuracy"],
            seen / epoch_s,
            epoch_s,
            time.process_time() - cpu_started,
        )
    summary = {"loss": curve[-1]["loss"], "train_accuracy": curve[-1]["train_accuracy"]}

    checkpoint = {
        "epoch": epochs,
        "global_step": step,
        "state_dict": {
            # contiguous: the checkpoint stores the official (NCHW) tensor layout
            **{f"model.{k}": v.contiguous() for k, v in backbone.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()},
        },
        "hyper_parameters": {
            "arch": arch,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "seed": seed,
            "precision": resolved,
            "m": MARGIN_M,
            "h": MARGIN_H,
            "s": SCALE_S,
            "t_alpha": NORM_EMA_MOMENTUM,
            "classes": classes,
            "train_images": len(pixels),
            "skipped_images": int(skipped.sum()) if len(skipped) else 0,
            **summary,
        },
    }
    with atomic_path(output) as tmp:
        torch.save(checkpoint, tmp)
    if curve_output is not None:
        write_text(pd.DataFrame(curve).to_csv(index=False, float_format="%.6g"), curve_output)
    logger.info(
        "trained in %.1f s (CPU %.1f s) -> %s; final train accuracy %.3f",
        time.perf_counter() - started,
        time.process_time() - cpu_started,
        output,
        summary["train_accuracy"],
    )
    return curve[-1]
