"""Embeddings: extraction on CPU or GPU, the demo model's training, the AdaFace and MagFace
backbones (``models/``)."""
