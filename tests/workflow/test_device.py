"""The embed step's device: a job given a GPU never runs on the CPU unnoticed; what ran is
recorded; images too small to carry a face are not embedded (issue 13)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from support.snakemake_cli import run_snakemake
from support.user_data import USER_MODEL, checkout_like, make_user_data, user_config

from featnorm import tableio
from featnorm.cli.main import main
from featnorm.embedding import embed

CPU_ONLY_TORCH = torch.version.cuda is None and not torch.cuda.is_available()


# ---------------------------------------------------------------------------------------------
# the decision: a pure function of the device asked for, the environment and what torch reports
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"CUDA_VISIBLE_DEVICES": ""}, None),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, None),  # CUDA: a negative index hides every device
        ({"CUDA_VISIBLE_DEVICES": "0"}, "CUDA_VISIBLE_DEVICES=0"),
        ({"CUDA_VISIBLE_DEVICES": "GPU-8f3c1a2b"}, "CUDA_VISIBLE_DEVICES=GPU-8f3c1a2b"),
        ({"SLURM_GPUS_ON_NODE": "0"}, None),
        ({"SLURM_GPUS_ON_NODE": "2"}, "SLURM_GPUS_ON_NODE=2"),
        ({"SLURM_JOB_GPUS": "1,3"}, "SLURM_JOB_GPUS=1,3"),
        ({"SLURM_STEP_GPUS": "NoDevFiles"}, None),
        ({"CUDA_VISIBLE_DEVICES": "", "SLURM_STEP_GPUS": "0"}, "SLURM_STEP_GPUS=0"),
        ({"HOME": "/root", "SLURM_JOB_ID": "7"}, None),
    ],
)
def test_gpu_assignment_reads_only_the_mapping_it_is_given(env, expected):
    assert embed.gpu_assignment(env) == expected


@pytest.mark.parametrize(
    ("device", "env", "cuda_available", "expected"),
    [
        ("cpu", {"CUDA_VISIBLE_DEVICES": "0"}, False, "cpu"),  # the documented way out
        ("cpu", {}, True, "cpu"),
        ("auto", {}, False, "cpu"),  # no GPU given, none seen: the CPU, as before
        ("auto", {"CUDA_VISIBLE_DEVICES": "0"}, True, "cuda"),
        ("auto", {}, True, "cuda"),
        ("cuda", {"SLURM_JOB_GPUS": "0"}, True, "cuda"),
    ],
)
def test_choose_device_when_nothing_is_wrong(device, env, cuda_available, expected):
    assert (
        embed.choose_device(device, env, cuda_available=cuda_available, cuda_build="12.8")
        == expected
    )


def test_gpu_given_to_a_cpu_only_torch_names_the_build_and_the_way_out():
    with pytest.raises(ValueError) as err:
        embed.choose_device(
            "auto", {"CUDA_VISIBLE_DEVICES": "0"}, cuda_available=False, cuda_build=None
        )
    message = str(err.value)
    assert "given a GPU (CUDA_VISIBLE_DEVICES=0)" in message
    assert "CPU-only build (torch.version.cuda is None)" in message
    assert "envs/featnorm-gpu.yaml" in message and "embed.device: cpu" in message


def test_gpu_given_to_a_cuda_torch_without_device_names_the_driver():
    with pytest.raises(ValueError) as err:
        embed.choose_device(
            "auto", {"SLURM_JOB_GPUS": "2"}, cuda_available=False, cuda_build="12.8"
        )
    message = str(err.value)
    assert "given a GPU (SLURM_JOB_GPUS=2)" in message
    assert "built for CUDA 12.8" in message and "driver" in message
    assert "embed.device: cpu" in message


def test_cuda_asked_for_without_a_device_is_refused():
    with pytest.raises(ValueError, match="no CUDA GPU is visible; use auto or cpu.*CPU-only"):
        embed.choose_device("cuda", {}, cuda_available=False, cuda_build=None)
    with pytest.raises(ValueError, match="device 'tpu' is not known; use one of auto, cpu, cuda"):
        embed.choose_device("tpu", {}, cuda_available=False, cuda_build=None)


@pytest.mark.skipif(not CPU_ONLY_TORCH, reason="needs the CPU-only build of torch")
def test_resolve_device_checks_the_environment_only_when_given_one():
    assert embed.resolve_device("auto").type == "cpu"
    assert embed.resolve_device("auto", env={"CUDA_VISIBLE_DEVICES": ""}).type == "cpu"
    with pytest.raises(ValueError, match="CPU-only build"):
        embed.resolve_device("auto", env={"CUDA_VISIBLE_DEVICES": "0"})


# ---------------------------------------------------------------------------------------------
# tiny images and the recorded device
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> tuple[Path, Path]:
    return make_user_data(tmp_path_factory.mktemp("user_data"))


def test_images_below_min_side_are_too_small_with_nan(tmp_path: Path, user_data):
    """1x1, 31x40 and 40x31 px: too_small and NaN, not resized; 32x32 px is embedded."""
    _, checkpoint = user_data
    face = cv2.GaussianBlur(
        np.random.default_rng(5).integers(0, 256, (112, 112, 3), np.uint8), (5, 5), 0
    )
    sizes = {
        "one.png": (1, 1),
        "short_rows.png": (31, 40),
        "short_cols.png": (40, 31),
        "limit.png": (32, 32),
        "full.png": (112, 112),
    }
    paths = []
    for name, (rows, cols) in sizes.items():
        assert cv2.imwrite(str(tmp_path / name), cv2.resize(face, (cols, rows)))
        paths.append(str(tmp_path / name))
    shard = pd.DataFrame({"sample_id": np.arange(len(paths), dtype=np.int64), "path": paths})
    from featnorm.embedding import models

    model = models.load(checkpoint, "adaface", "ir_demo")
    table = embed.embed_table(shard, model, family="adaface", device="cpu", batch_size=2)
    assert table["status"].tolist() == ["too_small"] * 3 + ["ok", "ok"]
    assert table["feature_norm"].isna().tolist() == [True] * 3 + [False, False]
    assert table["resized"].tolist() == [False, False, False, True, False]
    lower = embed.embed_table(shard, model, family="adaface", device="cpu", min_side=1)
    assert (lower["status"] == "ok").all()
    with pytest.raises(ValueError, match="min_side = 0; it must be at least 1 px"):
        embed.embed_table(shard, model, family="adaface", device="cpu", min_side=0)


def test_cli_records_device_name_precision_and_min_side(tmp_path: Path, user_data):
    root, checkpoint = user_data
    paths = sorted(str(p) for p in root.glob("*/*.jpg"))
    shard_path, output, log = (
        tmp_path / "shard-0.parquet",
        tmp_path / "e.parquet",
        tmp_path / "e.log",
    )
    tableio.write_table(
        pd.DataFrame({"sample_id": np.arange(len(paths), dtype=np.int64), "path": paths}),
        shard_path,
        params={"shard": 0},
    )
    code = main(
        [
            "embed",
            "--shard",
            str(shard_path),
            "--checkpoint",
            str(checkpoint),
            "--family",
            "adaface",
            "--arch",
            "ir_demo",
            "--device",
            "cpu",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--min-side",
            "32",
            "--flip-fusion",
            "none",
            "--precision",
            "fp32",
            "--threads",
            "1",
            "--output",
            str(output),
            "--log",
            str(log),
        ]
    )
    assert code == 0
    meta = tableio.read_metadata(output)
    assert meta["device"] == "cpu" and meta["precision"] == "fp32" and meta["min_side_px"] == 32
    assert meta["device_name"] == embed.device_name(torch.device("cpu"))
    assert meta["device_name"].startswith("CPU ")
    assert f"on cpu ({meta['device_name']})" in log.read_text()


# ---------------------------------------------------------------------------------------------
# through the real workflow
# ---------------------------------------------------------------------------------------------


@pytest.mark.workflow
@pytest.mark.skipif(not CPU_ONLY_TORCH, reason="needs the CPU-only build of torch")
def test_embed_all_with_a_gpu_given_fails_on_cpu_only_torch(tmp_path: Path, user_data, monkeypatch):
    """`snakemake embed_all` with CUDA_VISIBLE_DEVICES=0 and this CPU-only torch: the embed jobs
    fail, their logs name the cause and the way out, and no embedding table is left."""
    workdir = checkout_like(tmp_path / "checkout")
    config = user_config(tmp_path / "my.yaml", user_data)
    monkeypatch.setitem(os.environ, "CUDA_VISIBLE_DEVICES", "0")
    result = run_snakemake(workdir, config, "--cores", "2", "embed_all", check=False)
    assert result.returncode != 0
    logs = sorted((workdir / "results" / "logs" / "embed_shard" / USER_MODEL).glob("*.log"))
    assert logs, result.stdout + result.stderr  # the first failed shard stops the run
    log = logs[0].read_text()
    assert "given a GPU (CUDA_VISIBLE_DEVICES=0)" in log and "CPU-only build" in log, log
    assert "embed.device: cpu" in log
    assert not list((workdir / "results" / "embed").glob("*/*.parquet"))
