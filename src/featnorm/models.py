"""Public API: AdaFace and MagFace backbones (see featnorm.embedding.models).

``featnorm.models.load`` and ``featnorm.models.preprocess`` are stable (DESIGN.md, Python API);
the implementation lives in the embedding stage.
"""

from featnorm.embedding.models import ARCHS, CheckpointError, build, load, preprocess

__all__ = ["ARCHS", "CheckpointError", "build", "load", "preprocess"]
