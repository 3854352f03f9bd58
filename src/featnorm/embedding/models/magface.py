"""MagFace's iResNet backbones (``iresnet18`` .. ``iresnet100``), written from the facts.

The layout follows the insightface-style iResNet that MagFace (IrvingMeng/MagFace) trains, with
torchvision-style names so its checkpoints load once their wrapper prefix is removed:

* stem ``conv1`` (3x3, 3 -> 64, no bias) -> ``bn1`` -> ``prelu``;
* ``layer1`` .. ``layer4`` of :class:`IBasicBlock` (bn1 -> conv1 -> bn2 -> prelu -> conv2(stride)
  -> bn3, plus ``downsample`` = Conv1x1 + BN whenever the stride is not 1 or the width changes,
  **including stage 1**); the first block of each stage has stride 2;
* ``bn2`` -> Dropout2d(0.4) -> flatten -> ``fc`` Linear(512 * 7 * 7 -> 512) -> ``features`` =
  BatchNorm1d(512) **with** affine weights;
* every BatchNorm has eps 2e-5 (AdaFace: 1e-5).

MagFace's own forward returns the un-normalised feature, whose magnitude is the quality. Here
``forward`` returns ``(feature / norm, norm)`` like the AdaFace backbone, so both families share
one contract; the un-normalised feature is ``embedding * norm``. Input: BGR in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from featnorm.config.archs import MAGFACE_ARCHS
from featnorm.embedding.models.iresnet import DROPOUT_P, EMBEDDING_DIM, FINAL_MAP_PX

__all__ = ["BN_EPS", "MAGFACE_ARCHS", "IBasicBlock", "IResNet", "build_iresnet"]

BN_EPS = 2e-5  # insightface/MagFace BatchNorm epsilon
# MagFace writes momentum=0.9 (PyTorch convention: weight of the new batch). It only matters in
# training; kept so a fine-tuned copy behaves like the original.
BN_MOMENTUM = 0.9
_WIDTHS = (64, 128, 256, 512)


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class IBasicBlock(nn.Module):
    """insightface basic block: ``bn3(conv2(prelu(bn2(conv1(bn1(x)))))) + downsample(x)``."""

    # (layer, BatchNorm right after it): pairs featnorm.embedding.models.fold may merge for inference.
    FOLD_PAIRS = (("conv1", "bn2"), ("conv2", "bn3"))

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.bn1 = _bn2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = _bn2d(out_channels)
        self.prelu = nn.PReLU(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn3 = _bn2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                _bn2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in, H, W) -> (N, out, ceil(H / stride), ceil(W / stride))."""
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """MagFace iResNet for 112x112 BGR input in [0, 1].

    ``forward(x)`` takes (N, 3, 112, 112) float and returns ``(embedding, norm)``: embedding
    (N, 512) with unit L2 norm, norm (N, 1) = magnitude of the un-normalised feature (MagFace's
    quality; higher is better).

    References
    ----------
    Meng, Q., Zhao, S., Huang, Z. & Zhou, F. (2021). MagFace: a universal representation for face
    recognition and quality assessment. CVPR 2021. doi:10.1109/CVPR46437.2021.01400
    """

    # (layer, BatchNorm right after it): pairs featnorm.embedding.models.fold may merge for inference.
    FOLD_PAIRS = (("conv1", "bn1"), ("fc", "features"))

    def __init__(self, units: tuple[int, int, int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, _WIDTHS[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = _bn2d(_WIDTHS[0])
        self.prelu = nn.PReLU(_WIDTHS[0])
        in_channels = _WIDTHS[0]
        for stage, (num_units, width) in enumerate(zip(units, _WIDTHS, strict=True), start=1):
            blocks = []
            for i in range(num_units):
                blocks.append(IBasicBlock(in_channels, width, stride=2 if i == 0 else 1))
                in_channels = width
            self.add_module(f"layer{stage}", nn.Sequential(*blocks))
        self.bn2 = _bn2d(_WIDTHS[3])
        self.dropout = nn.Dropout2d(p=DROPOUT_P)
        self.fc = nn.Linear(_WIDTHS[3] * FINAL_MAP_PX * FINAL_MAP_PX, EMBEDDING_DIM)
        self.features = nn.BatchNorm1d(EMBEDDING_DIM, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 112, 112) BGR in [0, 1] -> (unit embedding (N, 512), feature norm (N, 1))."""
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn2(x))
        x = self.features(self.fc(torch.flatten(x, 1)))
        norm = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)
        return x / norm, norm


def build_iresnet(arch: str) -> IResNet:
    """A fresh (untrained) MagFace iResNet for ``arch`` (a key of :data:`MAGFACE_ARCHS`)."""
    if arch not in MAGFACE_ARCHS:
        raise ValueError(
            f"magface arch {arch!r} is not known; use one of {', '.join(sorted(MAGFACE_ARCHS))}"
        )
    return IResNet(MAGFACE_ARCHS[arch])
