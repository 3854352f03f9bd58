"""The demo written as insightface RecordIO gives the same study as the same images in folders.

Both runs go through the real snakemake with one demo checkpoint (trained once here), so any
difference comes from reading: record framing, labels, sample order or decoding.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from support.recordio_writer import write_recordio
from support.snakemake_cli import run_snakemake

from featnorm import tableio
from featnorm.cli.main import main as featnorm_main
from featnorm.data import demo

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("recordio")
    table = demo.generate(
        demo.DemoParams(identities=10, min_images=2, max_images=8, seed=3), base / "folder"
    )
    manifest = base / "manifest.parquet"
    tableio.write_table(table.assign(sample_id=range(len(table))), manifest)
    checkpoint = base / "demo.ckpt"
    assert (
        featnorm_main(
            [
                "train-demo",
                "--manifest",
                str(manifest),
                "--arch",
                "ir_demo",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--lr",
                "0.05",
                "--seed",
                "0",
                "--threads",
                "1",
                "--precision",
                "fp32",
                "--output",
                str(checkpoint),
            ]
        )
        == 0
    )
    # the same encoded bytes, in the manifest's (label, path) order, as train.rec + train.idx
    ordered = table.sort_values(["label", "path"])
    write_recordio(
        base / "rec",
        (
            (int(label), Path(path).read_bytes())
            for label, path in zip(ordered["label"], ordered["path"], strict=True)
        ),
    )
    runs = []
    for name, dataset in (
        ("folder_run", {"format": "imagefolder", "root": str(base / "folder")}),
        ("rec_run", {"format": "recordio", "root": str(base / "rec")}),
    ):
        workdir = base / name
        workdir.mkdir()
        config = {
            "dataset": dataset,
            "shards": 2,
            "models": {"demo": {"arch": "ir_demo", "checkpoint": str(checkpoint)}},
            "embed": {"batch_size": 8, "workers": 0},
            "analysis": {"bootstrap_replicates": 200},
        }
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        targets = [
            "results/demo/samples.parquet",
            "results/demo/correlations.csv",
        ]  # compared below
        run_snakemake(workdir, workdir / "config.yaml", "--cores", "2", *targets)
        runs.append(workdir)
    return runs[0], runs[1]


def test_recordio_manifest_matches_the_image_folder(two_runs):
    folder, rec = (tableio.read_table(run / "results" / "manifest.parquet") for run in two_runs)
    assert len(rec) == len(folder)
    assert rec["label"].tolist() == folder["label"].tolist()
    assert rec["path"].str.contains(r"train\.rec#\d+$").all()


def test_recordio_gives_the_same_statistics_as_the_image_folder(two_runs):
    columns = ["sample_id", "label", "brisque", "feature_norm", "feature_norm_z"]
    folder, rec = (
        tableio.read_table(run / "results" / "demo" / "samples.parquet")[columns]
        for run in two_runs
    )
    pd.testing.assert_frame_equal(rec, folder)
    folder_corr, rec_corr = (
        pd.read_csv(run / "results" / "demo" / "correlations.csv") for run in two_runs
    )
    pd.testing.assert_frame_equal(
        rec_corr[["x", "y", "method", "n", "r"]], folder_corr[["x", "y", "method", "n", "r"]]
    )
    shutil.rmtree(two_runs[0].parent / "rec")  # ~1 MB; the tmp folder is reaped anyway
