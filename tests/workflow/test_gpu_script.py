"""benchmarks/gpu.sh: the CPU dry run of the GPU benchmark, end to end, and its bookkeeping.

The GPU run itself needs a device (see benchmarks/README.md, "GPU"); here the same script runs
with ``--device cpu`` at tiny sizes (ir_demo, a 300-image workflow up to merge_samples) and its
outputs are checked against what they must hold: the files the device call brings back, their
columns, rates that are positive and consistent with each other, a CPU-vs-CPU fp32 deviation of
(nearly) zero, every stage timed, one embed job at a time (the ``gpu`` resource), and rows that
reconcile with the manifest.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import embed as embed_bench  # noqa: E402  (benchmarks/embed.py)
import gpu_workflow  # noqa: E402  (benchmarks/gpu_workflow.py)

pytestmark = pytest.mark.workflow

EXPECTED_FILES = {
    "summary.txt",
    "gpu_bench.log",
    "embed_sweep.csv",
    "embed_summary.csv",
    "workflow_stages.csv",
    "workflow_timeline.csv",
    "workflow.json",
}
DRY_RUN_IMAGES = 300  # benchmarks/gpu.sh, --size tiny
DRY_RUN_SHARDS = 2
RATE_COLUMNS = ["forward_ips", "pipeline_ips", "official_ips"]


def _script_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GPU_BENCH_DEVICE", "GPU_BENCH_SIZE")}
    return env | extra


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> Path:
    """$OUT of one ``bash benchmarks/gpu.sh --device cpu`` (tiny sizes)."""
    out = tmp_path_factory.mktemp("gpu-out")
    work = tmp_path_factory.mktemp("gpu-work")
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--device", "cpu"],
        env=_script_env(OUT=str(out), GPU_BENCH_WORK=str(work)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = (out / "gpu_bench.log").read_text() if (out / "gpu_bench.log").is_file() else ""
    assert proc.returncode == 0, f"gpu.sh failed:\n{proc.stdout}\n{proc.stderr}\n{log[-4000:]}"
    return out


def test_outputs_fit_what_the_device_call_brings_back(dry_run):
    """Exactly the documented files, flat in $OUT: the device returns at most 8, 2 folders down."""
    names = {p.name for p in dry_run.iterdir()}
    assert names == EXPECTED_FILES
    assert len(names) <= 8 and all(p.is_file() for p in dry_run.iterdir())


def test_embed_sweep_rates_and_deviation(dry_run):
    """One row per arch, precision and batch size; positive rates; ratios are rate quotients;
    the CPU fp32 path against its own reference deviates by float32 rounding at most."""
    sweep = pd.read_csv(dry_run / "embed_sweep.csv")
    assert list(sweep.columns) == embed_bench.SWEEP_COLUMNS
    assert sorted(zip(sweep["arch"], sweep["precision"], sweep["batch_size"], strict=True)) == [
        ("ir_demo", "fp32", 4),
        ("ir_demo", "fp32", 8),
    ]
    for col in RATE_COLUMNS:
        assert (np.isfinite(sweep[col]) & (sweep[col] > 0)).all(), col
    np.testing.assert_allclose(sweep["forward_ratio"], sweep["forward_ips"] / sweep["official_ips"])
    np.testing.assert_allclose(
        sweep["pipeline_ratio"], sweep["pipeline_ips"] / sweep["official_ips"]
    )
    dev = sweep["max_rel_norm_dev"]
    assert (np.isfinite(dev) & (dev >= 0) & (dev <= 1e-5)).all()
    assert (sweep["device"] == "cpu").all() and sweep["peak_gpu_mib"].isna().all()


def test_embed_summary_picks_the_fastest_batch(dry_run):
    """The summary's best batch is the sweep row with the highest pipeline rate (plain loop)."""
    sweep = pd.read_csv(dry_run / "embed_sweep.csv")
    summary = pd.read_csv(dry_run / "embed_summary.csv")
    assert len(summary) == 1
    row = summary.iloc[0]
    best_rate, best_batch = -1.0, None
    for _, r in sweep.iterrows():
        if r["pipeline_ips"] > best_rate:
            best_rate, best_batch = r["pipeline_ips"], r["batch_size"]
    assert row["best_batch_size"] == best_batch
    assert row["pipeline_ips"] == pytest.approx(best_rate)
    assert row["best_forward_ips"] == pytest.approx(sweep["forward_ips"].max())
    assert row["pipeline_ratio"] == pytest.approx(best_rate / row["official_ips"])


def test_every_stage_is_timed(dry_run):
    """Each rule up to merge_samples has its jobs' times; embed images add up to N."""
    stages = pd.read_csv(dry_run / "workflow_stages.csv").set_index("rule")
    jobs = stages["jobs"].to_dict()
    assert jobs == {
        "make_manifest": 1,
        "make_shards": 1,
        "score_brisque": DRY_RUN_SHARDS,
        "embed_shard": DRY_RUN_SHARDS,
        "compute_references": 1,
        "merge_samples": 1,
    }
    assert (stages["sum_s"] > 0).all() and (stages["max_s"] <= stages["sum_s"]).all()
    assert (stages["cpu_s"] >= 0).all()
    emb = stages.loc["embed_shard"]
    assert emb["images"] == DRY_RUN_IMAGES
    assert emb["loop_ips"] == pytest.approx(emb["images"] / emb["loop_s"])
    assert 0 < emb["loop_s"] <= emb["sum_s"]
    assert emb["startup_s_mean"] == pytest.approx((emb["sum_s"] - emb["loop_s"]) / DRY_RUN_SHARDS)


def test_workflow_rows_reconcile_and_occupancy_adds_up(dry_run):
    """Rows in = rows out; the occupancy shares cover the sampled wall time once; the verdict
    names the largest share; the sampler saw the embed jobs, never more than the gpu slots."""
    result = json.loads((dry_run / "workflow.json").read_text())
    checks = result["checks"]
    assert checks["reconciled"] and checks["manifest_rows"] == DRY_RUN_IMAGES
    assert checks["status"]["embed"] == {"ok": DRY_RUN_IMAGES}
    assert checks["status"]["brisque"] == {"ok": DRY_RUN_IMAGES}

    timeline = pd.read_csv(dry_run / "workflow_timeline.csv")
    assert list(timeline.columns) == gpu_workflow.TIMELINE_COLUMNS
    assert timeline["t_s"].is_monotonic_increasing
    assert timeline["gpu_util_pct"].isna().all()  # CPU run: no GPU counters
    # one decoding worker per embed job shares its command line: counted once, so at most the
    # gpu slots (1) even while a worker runs
    assert result["workers"] == 1
    assert 1 <= timeline["embed_jobs"].max() <= result["gpu_slots"]
    # a BRISQUE job on 150 images lives about a second, so a 1 s sampler may miss both: bound it
    # only (test_running_steps_counts_jobs_not_workers sees them deterministically)
    assert timeline["brisque_jobs"].max() <= DRY_RUN_SHARDS

    occ = pd.DataFrame(result["occupancy"])
    wall = result["run"]["wall_s"]
    assert list(occ["category"]) == list(gpu_workflow.CATEGORIES)
    assert occ["attributed_s"].sum() == pytest.approx(wall - timeline["t_s"].iloc[0], abs=0.05)
    assert (occ["attributed_s"] <= occ["active_s"] + 1e-9).all()
    top = occ.loc[occ["attributed_s"].idxmax(), "category"]
    assert result["verdict"]["bound_by"] == top
    assert f"{100 * result['verdict']['fraction']:.0f} %" in (dry_run / "summary.txt").read_text()


# a process that sleeps under a featnorm step's command line; with an extra argument it first
# starts a child under the same command line, as an embed job starts its decoding worker
SLEEPER = """import subprocess, sys, time
if len(sys.argv) > 4:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *sys.argv[1:4]])
time.sleep(120)
"""


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_running_steps_counts_jobs_not_workers(tmp_path):
    """Real processes whose command lines read like featnorm steps: a BRISQUE job, an embed job
    and its decoding worker (a child under the same command line) count as one job each; a step
    running in another folder is not counted."""
    other = tmp_path / "other"
    other.mkdir()

    def start(cwd: Path, *step: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", SLEEPER, "-m", "featnorm", *step], cwd=cwd)

    jobs = [
        start(tmp_path, "brisque"),
        start(tmp_path, "embed", "with-worker"),
        start(other, "brisque"),
    ]
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not workers and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = _children(jobs[1].pid)
        assert workers, "the embed job's worker did not start"
        assert gpu_workflow.running_steps(tmp_path) == {"brisque": 1, "embed": 1}
        assert gpu_workflow.running_steps(other) == {"brisque": 1}
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        for job in jobs:
            job.kill()
            job.wait()


def test_occupancy_by_hand():
    """Four samples 1 s apart, run of 4.5 s: embed holds [0, 2), BRISQUE alone [2, 3),
    nothing [3, 4.5); the BRISQUE job that overlaps embedding counts as active only."""
    timeline = pd.DataFrame(
        {
            "t_s": [0.0, 1.0, 2.0, 3.0],
            "gpu_util_pct": [50.0, 70.0, 0.0, 0.0],
            "gpu_mem_mib": [1.0] * 4,
            "embed_jobs": [1, 2, 0, 0],
            "brisque_jobs": [1, 0, 1, 0],
            "other_jobs": [0, 0, 0, 0],
            "load1": [0.0] * 4,
        }
    )
    occ = gpu_workflow.occupancy(timeline, 4.5).set_index("category")
    assert occ["attributed_s"].to_dict() == {
        "embed": 2.0,
        "brisque": 1.0,
        "other": 0.0,
        "snakemake_idle": 1.5,
    }
    assert occ.loc["brisque", "active_s"] == 2.0
    assert occ.loc["embed", "gpu_util_mean_pct"] == 60.0
    assert math.isnan(occ.loc["other", "gpu_util_mean_pct"])
    assert occ.loc["snakemake_idle", "fraction"] == pytest.approx(1.5 / 4.5)
    verdict = gpu_workflow.verdict(occ.reset_index())
    assert verdict["bound_by"] == "embed"
    assert "input-side bound" in verdict["detail"]  # 60 % < the 80 % GPU-bound threshold


def test_bad_option_is_refused():
    """An unknown device is refused before anything runs, naming what is allowed."""
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "--device", "tpu"],
        env=_script_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--device 'tpu'; use cuda or cpu" in proc.stderr
