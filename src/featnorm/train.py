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

from featnorm import images as images_mod
from featnorm import models
from featnorm.io import atomic_path

__all__ = ["AdaFaceHead", "train_demo_model"]

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
    """

    def __init__(self, classes: int, *, embedding_dim: int = models.EMBEDDING_DIM,
                 m: float = MARGIN_M, h: float = MARGIN_H, s: float = SCALE_S,
                 t_alpha: float = NORM_EMA_MOMENTUM, generator: torch.Generator | None = None):
        super().__init__()
        kernel = torch.empty(embedding_dim, classes).uniform_(-1, 1, generator=generator)
        self.kernel = nn.Parameter(kernel / kernel.norm(dim=0, keepdim=True))
        self.m, self.h, self.s, self.t_alpha = m, h, s, t_alpha
        self.register_buffer("t", torch.zeros(1))
        self.register_buffer("batch_mean", torch.ones(1) * 20)  # official initial values
        self.register_buffer("batch_std", torch.ones(1) * 100)

    def forward(self, embedding: torch.Tensor, norm: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
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


def _load_images(paths: pd.Series) -> np.ndarray:
    """Decode every training image to (N, 112, 112, 3) uint8 BGR; fails on any bad image."""
    batch = []
    for path in paths:
        decoded = images_mod.read_image(path)
        if not decoded.ok:
            raise ValueError(f"training image {path!r} cannot be used: {decoded.status}")
        batch.append(models.fit_input_size(models.to_bgr(decoded.image))[0])
    return np.stack(batch)


def _lr_at(step: int, total: int, peak: float) -> float:
    """Linear warm-up, then cosine decay to zero."""
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
) -> dict[str, float]:
    """Train ``arch`` with the AdaFace head on every manifest image; write the checkpoint.

    Random horizontal flips augment the data (as in AdaFace training). Returns the final epoch's
    mean loss and training accuracy (argmax of the margin-free cosine).
    """
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # module initialisation draws from the default generator
    started = time.perf_counter()
    pixels = _load_images(manifest["path"])
    labels = torch.tensor(manifest["label"].to_numpy(), dtype=torch.long)
    classes = int(labels.max()) + 1
    inputs = models.preprocess(list(pixels), family="adaface")
    logger.info("loaded %d images of %d classes in %.1f s", len(inputs), classes, time.perf_counter() - started)

    backbone = models.build("adaface", arch)
    head = AdaFaceHead(classes, generator=generator)
    params = list(backbone.parameters()) + list(head.parameters())
    optimiser = torch.optim.SGD(params, lr=lr, momentum=_MOMENTUM, weight_decay=_WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(inputs) / batch_size)
    total, step = epochs * steps_per_epoch, 0
    backbone.train()
    for epoch in range(epochs):
        order = torch.randperm(len(inputs), generator=generator)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            x, y = inputs[idx], labels[idx]
            flip = torch.rand(len(idx), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            for group in optimiser.param_groups:
                group["lr"] = _lr_at(step, total, lr)
            embedding, norm = backbone(x)
            logits = head(embedding, norm, y)
            loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            with torch.no_grad():
                correct += int(((embedding @ F.normalize(head.kernel, dim=0)).argmax(1) == y).sum())
            if step % _LOG_EVERY_STEPS == 0:
                logger.info("epoch %d step %d/%d loss %.3f (%.0f s)", epoch + 1, step, total,
                            loss.item(), time.perf_counter() - started)
        summary = {"loss": loss_sum / len(inputs), "train_accuracy": correct / len(inputs)}
        logger.info("epoch %d/%d: mean loss %.3f, train accuracy %.3f", epoch + 1, epochs,
                    summary["loss"], summary["train_accuracy"])

    checkpoint = {
        "epoch": epochs,
        "global_step": step,
        "state_dict": {
            **{f"model.{k}": v for k, v in backbone.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()},
        },
        "hyper_parameters": {"arch": arch, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                             "seed": seed, "m": MARGIN_M, "h": MARGIN_H, "s": SCALE_S,
                             "t_alpha": NORM_EMA_MOMENTUM, "classes": classes, **summary},
    }
    with atomic_path(output) as tmp:
        torch.save(checkpoint, tmp)
    logger.info("trained in %.1f s -> %s", time.perf_counter() - started, output)
    return summary
