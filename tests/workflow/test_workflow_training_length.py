"""The real `snakemake` with two demo models that differ only in `train.epochs`
(tests/workflow/training_length): one set of BRISQUE jobs, both models in comparison.csv and in
the training-length table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from support.snakemake_cli import run_snakemake
from test_workflow import planned_jobs

from featnorm import tableio

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "workflow" / "training_length" / "config.yaml"
TARGETS = ("results/comparison.csv", "results/training_length.csv")

pytestmark = pytest.mark.workflow


def test_two_training_lengths_share_brisque_and_are_compared(tmp_path: Path):
    shutil.copy(CONFIG, tmp_path / "config.yaml")
    config = tmp_path / "config.yaml"
    jobs = planned_jobs(tmp_path, config)
    assert jobs["train_demo_model"] == 2
    assert jobs["score_brisque"] == 2  # one job per shard, shared by both models
    assert jobs["embed_shard"] == 2 * 2
    run_snakemake(tmp_path, config, "--cores", "2", *TARGETS)

    results = tmp_path / "results"
    manifest = tableio.read_table(results / "manifest.parquet")
    assert set(manifest["split"]) == {"train", "holdout"}
    for model, epochs, precision in (("short", 1, None), ("long", 2, "fp32")):
        hyper = torch.load(
            results / "models" / model / "checkpoint.ckpt", map_location="cpu", weights_only=True
        )["hyper_parameters"]
        assert hyper["epochs"] == epochs and hyper["batch_size"] == 8
        assert hyper["train_images"] == int((manifest["split"] == "train").sum())
        if precision:
            assert hyper["precision"] == precision
        curve = pd.read_csv(results / "models" / model / "training_curve.csv")
        assert curve["epoch"].tolist() == list(range(1, epochs + 1))
    assert sorted(p.name for p in (results / "brisque").glob("shard-*.parquet")) == [
        "shard-0.parquet",
        "shard-1.parquet",
    ]
    short = tableio.read_table(results / "short" / "samples.parquet")
    long = tableio.read_table(results / "long" / "samples.parquet")
    pd.testing.assert_series_equal(short["brisque"], long["brisque"])
    assert not short["feature_norm"].equals(long["feature_norm"])

    comparison = pd.read_csv(results / "comparison.csv")
    assert set(comparison["model"]) == {"short", "long"}
    lengths = pd.read_csv(results / "training_length.csv")
    assert lengths.drop_duplicates("model")[["model", "epochs"]].values.tolist() == [
        ["short", 1],
        ["long", 2],
    ]
    effect = lengths[lengths["x"] == "class_size"].set_index("model")
    for model in ("short", "long"):
        corr = pd.read_csv(results / model / "correlations.csv")
        expected = corr[(corr["x"] == "class_size")]["r"].item()
        assert effect.loc[model, "r"] == pytest.approx(expected)
