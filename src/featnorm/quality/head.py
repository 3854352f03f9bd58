"""The margin head of a checkpoint, for CR-FIQA's certainty ratio: the one place the quality
references touch torch (reading the file); the maths is in :mod:`featnorm.quality.references`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["HEAD_KERNEL", "read_head_kernel"]

#: the class centres of an AdaFace-layout checkpoint (AdaFace's Lightning ``.ckpt``, featnorm's
#: demo model): embedding_dim x classes
HEAD_KERNEL = "head.kernel"


def read_head_kernel(
    checkpoint: str, *, trust_legacy_pickle: bool = False
) -> tuple[np.ndarray | None, str | None]:
    """``head.kernel`` of a checkpoint as float32 (D, C), or (None, why it is absent).

    The file is read safely (``weights_only=True``) by
    :func:`featnorm.embedding.models.checkpoint.read_checkpoint`; ``trust_legacy_pickle`` as
    there. A checkpoint without the entry (a plain backbone, MagFace's ``fc.weight`` layout)
    gives None and the reason.
    """
    import torch

    from featnorm.embedding.models.checkpoint import read_checkpoint

    obj = read_checkpoint(checkpoint, trust_legacy_pickle=trust_legacy_pickle)
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    kernel = state.get(HEAD_KERNEL) if isinstance(state, Mapping) else None
    if not isinstance(kernel, torch.Tensor) or kernel.ndim != 2:
        return None, f"the checkpoint has no margin head ({HEAD_KERNEL}, embedding_dim x classes)"
    logger.info("%s: %s %s", HEAD_KERNEL, tuple(kernel.shape), kernel.dtype)
    return kernel.detach().to(torch.float32).numpy(), None
