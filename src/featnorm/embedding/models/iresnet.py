"""AdaFace's IR backbones (``ir_18`` .. ``ir_101``, and the small ``ir_demo``), from the facts.

The layout follows the official AdaFace ``net.py`` (mk-minchul/AdaFace) key for key, so official
checkpoints load strictly:

* ``input_layer`` = Conv3x3(3 -> w0, no bias) -> BatchNorm2d -> PReLU (one slope per channel);
* ``body`` = a flat ``Sequential`` of basic IR units; the first unit of every stage has stride 2
  (112 -> 56 -> 28 -> 14 -> 7 px);
* a unit registers ``shortcut_layer`` before ``res_layer``: ``res_layer`` = BN(in) -> Conv3x3(in ->
  out) -> BN(out) -> PReLU(out) -> Conv3x3(out -> out, stride s) -> BN(out); the shortcut is a
  strided 1x1 max pool (no parameters) when in == out, else Conv1x1(stride s, no bias) -> BN. The
  sum has no activation. Stage 1 (w0 -> w0, stride 2) therefore has **no** shortcut conv;
* ``output_layer`` = BN2d -> Dropout(0.4) -> Flatten -> Linear(w3 * 7 * 7 -> 512) ->
  BatchNorm1d(512, affine=False);
* modules are registered ``input_layer``, ``output_layer``, ``body`` (the state-dict order);
* every BatchNorm keeps PyTorch's defaults (eps 1e-5);
* ``forward`` returns ``(embedding / norm, norm)``: the L2-normalised 512-d embedding (N, 512) and
  the feature norm (N, 1), with no epsilon in the division, as the official model does.

Depth and width are data: one table, :data:`IR_ARCHS`, feeds one :class:`Backbone`.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from featnorm.config.archs import IR_ARCHS, IRArch

__all__ = [
    "DROPOUT_P",
    "EMBEDDING_DIM",
    "INPUT_SIZE_PX",
    "IR_ARCHS",
    "IR_UNITS",
    "Backbone",
    "BasicBlockIR",
    "IRArch",
    "build_ir",
]

logger = logging.getLogger(__name__)

INPUT_SIZE_PX = 112  # models take aligned 112x112 crops
EMBEDDING_DIM = 512  # width of the embedding (the official Linear's output size)
FINAL_MAP_PX = 7  # 112 px after four stride-2 stages: 112 / 2**4
DROPOUT_P = 0.4  # official output_layer dropout; inactive in eval mode


#: Architecture name -> units per stage (the depth table alone).
IR_UNITS: dict[str, tuple[int, int, int, int]] = {name: a.units for name, a in IR_ARCHS.items()}


class BasicBlockIR(nn.Module):
    """One IR unit: ``res_layer(x) + shortcut_layer(x)``, no activation after the sum.

    Parameters
    ----------
    in_channels, out_channels : int
        Channel widths in and out.
    stride : int
        1 or 2; applied by the second 3x3 conv and by the shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        # Registration order (shortcut first) fixes the state-dict order of the official files.
        if in_channels == out_channels:
            # A 1x1 max pool with stride s is a strided subsample (identity for s == 1).
            self.shortcut_layer: nn.Module = nn.MaxPool2d(kernel_size=1, stride=stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in, H, W) -> (N, out, ceil(H / stride), ceil(W / stride))."""
        return self.res_layer(x) + self.shortcut_layer(x)


class Backbone(nn.Module):
    """AdaFace IR backbone for 112x112 BGR input in [-1, 1].

    Parameters
    ----------
    arch : IRArch
        Units and widths per stage (see :data:`IR_ARCHS`).

    ``forward(x)`` takes x of shape (N, 3, 112, 112), float, and returns ``(embedding, norm)``:
    embedding (N, 512) with unit L2 norm, norm (N, 1) = L2 norm of the BatchNorm1d output (the
    feature norm; higher is meant to mean better quality).

    References
    ----------
    Kim, M., Jain, A. K. & Liu, X. (2022). AdaFace: quality adaptive margin for face recognition.
    CVPR 2022. doi:10.1109/CVPR52688.2022.01819
    """

    def __init__(self, arch: IRArch):
        super().__init__()
        widths = arch.widths
        self.input_layer = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.PReLU(widths[0]),
        )
        # output_layer is registered before body: official state dicts list it first.
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(widths[3]),
            nn.Dropout(DROPOUT_P),
            nn.Flatten(),  # reshape-based: accepts channels_last activations
            nn.Linear(widths[3] * FINAL_MAP_PX * FINAL_MAP_PX, EMBEDDING_DIM),
            nn.BatchNorm1d(EMBEDDING_DIM, affine=False),
        )
        units: list[nn.Module] = []
        in_channels = widths[0]
        for num_units, width in zip(arch.units, widths, strict=True):
            for i in range(num_units):
                units.append(BasicBlockIR(in_channels, width, stride=2 if i == 0 else 1))
                in_channels = width
        self.body = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, 112, 112) BGR in [-1, 1] -> (unit embedding (N, 512), feature norm (N, 1))."""
        x = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)
        return x / norm, norm


def build_ir(arch: str) -> Backbone:
    """A fresh (untrained) AdaFace IR backbone for ``arch`` (a key of :data:`IR_ARCHS`)."""
    if arch not in IR_ARCHS:
        raise ValueError(
            f"adaface arch {arch!r} is not known; use one of {', '.join(sorted(IR_ARCHS))}"
        )
    return Backbone(IR_ARCHS[arch])
