"""A new user's inputs for workflow tests: a real image folder, a real checkpoint, and a working
directory that holds the repository's config.yaml as the user's checkout does."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from featnorm.embedding import models
from support.recipe import golden_state_dict

REPO = Path(__file__).resolve().parents[2]
USER_MODEL = "mine"
USER_SHARDS = 2


def make_user_data(folder: Path) -> tuple[Path, Path]:
    """(image folder root/<class>/<image>.jpg: 3 classes x 2 textured 112x112 JPEGs, AdaFace-layout
    checkpoint of an ir_demo network with the golden recipe's weights)."""
    rng = np.random.default_rng(13)
    for person in range(3):
        (folder / "faces" / f"person_{person}").mkdir(parents=True)
        for i in range(2):
            noise = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            image = cv2.GaussianBlur(noise, (7, 7), 0)
            assert cv2.imwrite(str(folder / "faces" / f"person_{person}" / f"{i}.jpg"), image)
    checkpoint = folder / "my_model.ckpt"
    weights = golden_state_dict(models.build("adaface", "ir_demo"))
    torch.save({"state_dict": {f"model.{k}": v for k, v in weights.items()}}, checkpoint)
    return folder / "faces", checkpoint


def checkout_like(workdir: Path) -> Path:
    """``workdir`` holding the repository's own config.yaml, as the user's checkout does."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    return workdir


def user_config(
    path: Path, user_data: tuple[Path, Path], *, with_model: bool = True, **extra
) -> Path:
    """my.yaml: the image folder, USER_SHARDS shards and (``with_model``) one model, USER_MODEL."""
    root, checkpoint = user_data
    config: dict = {"dataset": {"format": "imagefolder", "root": str(root)}, "shards": USER_SHARDS}
    if with_model:
        config["models"] = {
            USER_MODEL: {"family": "adaface", "arch": "ir_demo", "checkpoint": str(checkpoint)}
        }
    path.write_text(yaml.safe_dump({**config, **extra}))
    return path
