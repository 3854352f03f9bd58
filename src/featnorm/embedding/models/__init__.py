"""Face-recognition backbones whose feature norm featnorm studies: build, load, preprocess.

Families and architectures (the names users type in ``config.yaml``):

* ``adaface``: ``ir_18``, ``ir_34``, ``ir_50``, ``ir_101`` (official AdaFace layout) and
  ``ir_demo`` (a tiny IR network for the embedded demo); input BGR in [-1, 1];
* ``magface``: ``iresnet18``, ``iresnet34``, ``iresnet50``, ``iresnet100``; input BGR in [0, 1].

Every model's ``forward(x)`` takes (N, 3, 112, 112) float32 and returns ``(embedding, norm)``:
the L2-normalised embedding (N, 512) and the feature norm (N, 1), as AdaFace's backbone does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from featnorm.config.archs import ARCHS
from featnorm.embedding.models.checkpoint import (
    CheckpointError,
    backbone_state_dict,
    fit_state_dict,
    guess_arch,
    read_checkpoint,
)
from featnorm.embedding.models.iresnet import (
    EMBEDDING_DIM,
    INPUT_SIZE_PX,
    IR_ARCHS,
    IR_UNITS,
    build_ir,
)
from featnorm.embedding.models.magface import MAGFACE_ARCHS, build_iresnet
from featnorm.embedding.models.preprocessing import (
    RESIZE_POLICY,
    fit_input_size,
    preprocess,
    to_bgr,
)
from featnorm.options import MODEL_FAMILIES

__all__ = [
    "ARCHS",
    "EMBEDDING_DIM",
    "INPUT_SIZE_PX",
    "IR_ARCHS",
    "IR_UNITS",
    "MAGFACE_ARCHS",
    "RESIZE_POLICY",
    "CheckpointError",
    "build",
    "fit_input_size",
    "load",
    "preprocess",
    "to_bgr",
]

logger = logging.getLogger(__name__)

_BUILDERS: dict[str, Callable[[str], nn.Module]] = {"adaface": build_ir, "magface": build_iresnet}


def _check_family_arch(family: str, arch: str) -> None:
    if family not in _BUILDERS:
        raise ValueError(f"family {family!r} is not known; use one of {', '.join(MODEL_FAMILIES)}")
    if arch not in ARCHS[family]:
        hint = next((f for f, names in ARCHS.items() if arch in names), None)
        also = f" ({arch!r} is a {hint} arch: set family={hint!r})" if hint else ""
        raise ValueError(
            f"{family} arch {arch!r} is not known; "
            f"use one of {', '.join(sorted(ARCHS[family]))}{also}"
        )


def build(family: str = "adaface", arch: str = "ir_50") -> nn.Module:
    """A fresh, untrained backbone in train mode (PyTorch's default initialisation).

    Raises ValueError naming the allowed values for an unknown family or arch.
    """
    _check_family_arch(family, arch)
    return _BUILDERS[family](arch)


def _all_builders() -> dict[tuple[str, str], Callable[[], nn.Module]]:
    return {
        (family, arch): (lambda f=family, a=arch: build(f, a))
        for family, names in ARCHS.items()
        for arch in names
    }


def load(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    family: str = "adaface",
    arch: str = "ir_50",
    *,
    trust_legacy_pickle: bool = False,
) -> nn.Module:
    """Build ``family``/``arch`` and load a checkpoint into it; returns the model in eval mode.

    Parameters
    ----------
    checkpoint : path or mapping
        A ``.ckpt``/``.pth``/``.pt`` file (read on the CPU with ``weights_only=True``), or an
        already loaded object: AdaFace Lightning layout (``state_dict`` with ``model.`` keys,
        ``head.*`` ignored), MagFace layout (``features.module.`` / ``module.features.``, loss
        ``fc.weight`` ignored), or a plain state dict with or without prefix.
    family, arch : see :data:`ARCHS`.
    trust_legacy_pickle : bool
        Opt-in for trusted files that pickle custom classes (see
        :func:`featnorm.embedding.models.checkpoint.read_checkpoint`). Off by default.

    Returns
    -------
    torch.nn.Module
        In eval mode, on the CPU; ``model(x)`` maps (N, 3, 112, 112) float32 input from
        :func:`preprocess` to ``(embedding, norm)``: (N, 512) unit L2 embedding and (N, 1) feature
        norm (higher is meant to mean better quality; AdaFace and MagFace use it as such).

    Raises
    ------
    FileNotFoundError
        No such file.
    CheckpointError (a ValueError)
        Unreadable/truncated file, refused pickle, or keys/shapes that do not fit ``arch``; the
        message names the architecture the file most likely holds and the first missing and
        unexpected keys.
    """
    _check_family_arch(family, arch)
    if isinstance(checkpoint, Mapping):
        obj, name = checkpoint, "checkpoint object"
    else:
        obj = read_checkpoint(checkpoint, trust_legacy_pickle=trust_legacy_pickle)
        name = f"checkpoint {os.fspath(checkpoint)!r}"
    model = build(family, arch)
    fit_state_dict(
        model,
        backbone_state_dict(obj, family),
        what=f"{name} for family={family!r} arch={arch!r}",
        guess=lambda: guess_arch(obj, _all_builders()),
    )
    model.eval()
    logger.info("loaded %s into %s %s", name, family, arch)
    return model
