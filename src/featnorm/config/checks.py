"""Checks of a validated configuration that a JSON schema cannot express.

They run while Snakemake parses the workflow, before any job: each error names the key, the
value received and what to change. This module and what it imports are free of torch and OpenCV,
so planning (``snakemake -n``, a login node, every SLURM job's own Snakemake) needs neither.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["TRAIN_CHECKPOINT", "ConfigError", "check", "model_settings", "train_settings"]

TRAIN_CHECKPOINT = "train"  # models.<name>.checkpoint value that asks for the demo model
#: train.<key> that allows `checkpoint: train` on a dataset other than the demo.
ALLOW_USER_DATASET = "allow_non_demo_dataset"
MODEL_DEFAULTS = {"family": "adaface"}  # schema defaults inside models.<name> (see below)


class ConfigError(ValueError):
    """A configuration value that cannot work; the message says what to change."""


def model_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Settings of model ``name`` with defaults applied.

    Snakemake's validate() fills defaults of named properties only, not of the per-model
    objects under ``additionalProperties``; the schema's default lives in MODEL_DEFAULTS too.
    """
    return {**MODEL_DEFAULTS, **config["models"][name]}


def train_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Training settings of model ``name``: its own ``train`` block over the global ``train``."""
    return {**config["train"], **config["models"][name].get("train", {})}


def _check_dataset(dataset: dict[str, Any]) -> None:
    fmt = dataset["format"]
    if fmt in ("imagefolder", "recordio"):
        root = dataset.get("root")
        if not root:
            raise ConfigError(f"dataset.format = {fmt} needs dataset.root (the dataset folder)")
        if not Path(root).is_dir():
            raise ConfigError(f"dataset.root = {root!r} does not exist or is not a folder")
        if fmt == "recordio":
            for name in ("train.rec", "train.idx"):
                if not (Path(root) / name).is_file():
                    raise ConfigError(
                        f"dataset.root = {root!r} has no {name}; recordio needs train.rec and train.idx"
                    )
    elif fmt == "list":
        list_file = dataset.get("list")
        if not list_file:
            raise ConfigError("dataset.format = list needs dataset.list (a CSV or Parquet file)")
        if not Path(list_file).is_file():
            raise ConfigError(f"dataset.list = {list_file!r} does not exist")


def _check_models(config: dict[str, Any]) -> None:
    from featnorm.config.archs import ARCHS

    for name in config["models"]:
        settings = model_settings(config, name)
        family, arch, checkpoint = settings["family"], settings["arch"], settings["checkpoint"]
        if arch not in ARCHS[family]:
            raise ConfigError(
                f"models.{name}.arch = {arch!r} is not known for family {family}; "
                f"use one of {', '.join(sorted(ARCHS[family]))}"
            )
        if "train" in settings and checkpoint != TRAIN_CHECKPOINT:
            raise ConfigError(
                f"models.{name}.train is set but models.{name}.checkpoint = {checkpoint!r}; "
                "a model's train block applies to checkpoint: train only; remove it"
            )
        if checkpoint == TRAIN_CHECKPOINT:
            if family != "adaface":
                raise ConfigError(
                    f"models.{name}.checkpoint = train works for family adaface only "
                    f"(got family {family}); give a checkpoint file instead"
                )
            _check_training_dataset(config, name)
        elif not Path(checkpoint).is_file():
            raise ConfigError(
                f"models.{name}.checkpoint = {checkpoint!r} does not exist; give the path to a "
                "checkpoint file, or `train` to train the demo model"
            )


def _check_training_dataset(config: dict[str, Any], name: str) -> None:
    """`checkpoint: train` on a dataset other than the demo only when asked for explicitly.

    The demo model is a tiny network meant for the synthetic demo; trained on a real dataset it
    costs hours of CPU before anything useful runs, and it is what a config that names no models
    gets by default (the schema's ``models`` default).
    """
    fmt = config["dataset"]["format"]
    if fmt == "demo" or config["train"][ALLOW_USER_DATASET]:
        return
    raise ConfigError(
        f"models.{name}.checkpoint = train would train the small demo model on your dataset "
        f"(dataset.format = {fmt}). Name your own models under `models:` with their checkpoint "
        'files (an entry there replaces the default demo model; see the README, "Your own data '
        f'and models"), or set train.{ALLOW_USER_DATASET}: true to train the demo model on it '
        "on purpose"
    )


def _check_shards(config: dict[str, Any]) -> None:
    if config["dataset"]["format"] != "demo":
        return  # other datasets are counted when the manifest exists (the shard step checks)
    from featnorm.config.demo_params import DemoParams, image_count

    try:
        images = image_count(DemoParams(**config["dataset"]["demo"]))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if config["shards"] > images:
        raise ConfigError(
            f"shards = {config['shards']} exceeds the demo's {images} images; lower it"
        )


def _check_results(results: str) -> None:
    folder = Path(results)
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    where = existing.resolve()
    if not existing.is_dir():
        raise ConfigError(
            f"the output folder {results!r} is not a folder: {where} is a file; remove it, "
            "or run from another working directory (`--directory`)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the output folder {results!r} is not writable ({where} refuses writes); "
            "run from a writable working directory or pass `--directory`"
        )


def check(config: dict[str, Any], *, results: str) -> None:
    """Raise ConfigError for the first setting that cannot work; ``results`` is the output folder."""
    _check_dataset(config["dataset"])
    _check_models(config)
    _check_shards(config)
    _check_results(results)


def check_size_bins(edges: list[int]) -> list[int]:
    """``edges`` as ints, or ValueError naming ``analysis.size_bins`` unless strictly ascending
    integers >= 1."""
    edges = [int(e) for e in edges]
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or edges[0] < 1:
        raise ValueError(
            f"analysis.size_bins = {edges} must be strictly ascending integers "
            ">= 1, e.g. [2, 4, 8, 16]"
        )
    return edges
