"""`python -m featnorm references` and `merge --references`: from embedding shards and a
checkpoint to references.parquet and samples.parquet, with the reasons in the metadata."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from featnorm import status, tableio
from featnorm.cli.main import main
from featnorm.embedding.embed import output_schema

DIM = 512


@pytest.fixture
def study(tmp_path):
    """A manifest of 6 classes (one with a single image), two embedding shards (one image not
    embedded, one missing from every shard) and an AdaFace-layout checkpoint with a head."""
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5])
    n = len(labels)
    manifest = pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "path": [f"{i}.png" for i in range(n)],
            "label": labels,
            "class_name": [f"c{v}" for v in labels],
        }
    )
    tableio.write_table(manifest, tmp_path / "manifest.parquet")
    emb = rng.normal(size=(n, DIM)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    shards = []
    for k, rows in enumerate((np.arange(0, 6), np.arange(6, n - 1))):  # the last row: missing
        part = pd.DataFrame(
            {
                "sample_id": rows,
                "feature_norm": np.float32(20.0),
                "status": ["ok" if i != 4 else status.TOO_SMALL for i in rows],
                "resized": False,
                "embedding": [emb[i].astype(np.float16) if i != 4 else None for i in rows],
            }
        )
        path = tmp_path / f"shard-{k}.parquet"
        tableio.write_table(part, path, schema=output_schema(True))
        shards.append(str(path))
    ckpt = tmp_path / "model.ckpt"
    torch.save({"state_dict": {"head.kernel": torch.randn(DIM, 6)}}, ckpt)
    return tmp_path, shards, ckpt


def _run(tmp_path, shards, *extra: str) -> int:
    return main(
        [
            "references",
            "--manifest",
            str(tmp_path / "manifest.parquet"),
            "--embed",
            *shards,
            "--model",
            "m",
            "--sdd-similarities",
            "24",
            "--sdd-resamplings",
            "3",
            "--sdd-seed",
            "0",
            "--threads",
            "1",
            "--output",
            str(tmp_path / "references.parquet"),
            *extra,
        ]
    )


def test_references_step_keeps_every_manifest_row_with_its_status(study):
    tmp_path, shards, ckpt = study
    assert _run(tmp_path, shards, "--checkpoint", str(ckpt)) == 0
    refs = tableio.read_table(tmp_path / "references.parquet")
    assert refs["sample_id"].tolist() == list(range(13))
    assert refs.loc[4, "status"] == status.TOO_SMALL  # the embed step's reason
    assert refs.loc[3, "status"] == status.SINGLE_IMAGE_CLASS  # class 1's only ok image
    assert refs.loc[12, "status"] == status.MISSING  # in no shard
    assert refs.loc[refs["status"] == "ok", "sdd_quality"].notna().all()
    meta = tableio.read_metadata(tmp_path / "references.parquet")
    assert meta["certainty_ratio"] == {"computed": True, "reason": None}
    assert meta["sdd"] == {"m": 24, "k": 3, "seed": 0}


def test_certainty_ratio_absent_with_the_reason(study):
    tmp_path, shards, ckpt = study
    assert _run(tmp_path, shards) == 0  # no checkpoint: turned off
    meta = tableio.read_metadata(tmp_path / "references.parquet")
    assert "turned off" in meta["certainty_ratio"]["reason"]
    torch.save({"state_dict": {"head.kernel": torch.randn(DIM, 9)}}, ckpt)  # other classes
    assert _run(tmp_path, shards, "--checkpoint", str(ckpt)) == 0
    refs = tableio.read_table(tmp_path / "references.parquet")
    assert "certainty_ratio" not in refs.columns
    reason = tableio.read_metadata(tmp_path / "references.parquet")["certainty_ratio"]["reason"]
    assert "9 classes but the dataset's labels run 0..5" in reason


def test_merge_joins_the_references_into_samples(study):
    tmp_path, shards, ckpt = study
    assert _run(tmp_path, shards, "--checkpoint", str(ckpt)) == 0
    brisque = pd.DataFrame({"sample_id": np.arange(13), "brisque": 30.0, "status": "ok"})
    tableio.write_table(brisque, tmp_path / "brisque.parquet")
    args = ["merge", "--manifest", str(tmp_path / "manifest.parquet")]
    args += ["--brisque", str(tmp_path / "brisque.parquet"), "--embed", *shards]
    args += ["--model", "m", "--policies", "z", "--min-class-size", "2", "--ddof", "1"]
    args += ["--residual-degree", "1", "--references", str(tmp_path / "references.parquet")]
    args += ["--samples", str(tmp_path / "samples.parquet")]
    args += ["--class-stats", str(tmp_path / "class_stats.parquet")]
    assert main(args) == 0
    samples = tableio.read_table(tmp_path / "samples.parquet")
    refs = tableio.read_table(tmp_path / "references.parquet")
    assert len(samples) == 13
    np.testing.assert_array_equal(samples["sdd_quality"], refs["sdd_quality"])
    assert samples.loc[3, "references_status"] == status.SINGLE_IMAGE_CLASS
    meta = tableio.read_metadata(tmp_path / "samples.parquet")
    assert meta["references_meta"]["certainty_ratio"]["computed"] is True
