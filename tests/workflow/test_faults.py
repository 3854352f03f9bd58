"""Faults through the real `snakemake` (issue 7, item 3).

* An embed job killed with SIGKILL half way through its shard leaves nothing at its output path
  (tables are written to a temporary file and renamed), so Snakemake fails the run and a re-run
  runs that job again; the re-run's tables equal a clean run's.
* Determinism: two clean runs in two folders give identical tables (every Parquet file and
  correlations.csv, compared exactly).

All runs use tests/workflow/faults/config.yaml (the tiny demo, one image per forward pass) and
stop at the correlations, which need every per-image table; the figures add nothing here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from support.snakemake_cli import run_snakemake, snakemake_command

from featnorm import tableio

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "workflow" / "faults" / "config.yaml"
MODEL = "demo"
TARGETS = [f"results/{MODEL}/correlations.csv"]
SNAKEMAKE_TIMEOUT_S = 600
POLL_S = 0.005
PROGRESS = re.compile(r"embedded (\d+)/(\d+) images")

pytestmark = pytest.mark.workflow


def snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    return snakemake_command(workdir, CONFIG, *args)


def snakemake(workdir: Path, *args: str, check: bool = True):
    return run_snakemake(workdir, CONFIG, *args, check=check)


def tables(workdir: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet table and CSV under results/, by path relative to the working directory."""
    found = sorted((workdir / "results").rglob("*.parquet")) + sorted(
        (workdir / "results").rglob("*.csv")
    )
    return {
        p.relative_to(workdir).as_posix(): tableio.read_table(p)
        if p.suffix == ".parquet"
        else pd.read_csv(p)
        for p in found
    }


def assert_same_tables(a: Path, b: Path) -> None:
    left, right = tables(a), tables(b)
    assert sorted(left) == sorted(right)
    assert any(name.endswith("correlations.csv") for name in left)
    for name, table in left.items():
        pd.testing.assert_frame_equal(table, right[name], check_exact=True, obj=name)
    for name in left:
        if name.endswith(".csv"):  # text outputs: byte for byte
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two working directories with a clean run each."""
    runs = []
    for name in ("clean_a", "clean_b"):
        workdir = tmp_path_factory.mktemp(name)
        snakemake(workdir, "--cores", "2", *TARGETS)
        runs.append(workdir)
    return runs[0], runs[1]


def embed_process(root: psutil.Process) -> psutil.Process | None:
    """The running `featnorm embed` python process below ``root``, if any."""
    for proc in root.children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if cmdline[1:4] == ["-m", "featnorm", "embed"]:  # not the `bash -c "..."` around it
            return proc
    return None


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> dict:
    """A run whose first embed job is SIGKILLed after its first images: what it left behind."""
    workdir = tmp_path_factory.mktemp("killed")
    runner = subprocess.Popen(
        snakemake_cmd(workdir, "--cores", "2", *TARGETS),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = psutil.Process(runner.pid)
    deadline = time.monotonic() + SNAKEMAKE_TIMEOUT_S
    victim, output, log = None, None, None
    try:
        while time.monotonic() < deadline and runner.poll() is None:
            if victim is None:
                victim = embed_process(root)
                if victim is not None:
                    cmdline = victim.cmdline()
                    output = cmdline[cmdline.index("--output") + 1]
                    log = workdir / cmdline[cmdline.index("--log") + 1]
            elif log.exists() and PROGRESS.search(log.read_text()):
                os.kill(victim.pid, signal.SIGKILL)  # in the batch loop: half way through
                break
            time.sleep(POLL_S)
        else:
            pytest.fail("no embed job reached its batch loop before snakemake ended")
        stdout, _ = runner.communicate(timeout=SNAKEMAKE_TIMEOUT_S)
    finally:
        if runner.poll() is None:
            runner.kill()
    return {
        "workdir": workdir,
        "returncode": runner.returncode,
        "stdout": stdout,
        "output": output,
        "log": log.read_text(),
    }


def test_killed_job_fails_the_run_and_leaves_no_output(killed_run: dict):
    workdir, output = killed_run["workdir"], killed_run["output"]
    assert killed_run["returncode"] != 0, killed_run["stdout"]
    done, total = map(int, PROGRESS.findall(killed_run["log"])[-1])
    assert done < total, "the job was killed after its last batch: not half way"
    assert not re.search(r"embed: \d+ rows ->", killed_run["log"])  # the step's last line
    assert not (workdir / output).exists()
    # a temporary file may survive the kill, but never under a name a re-run would accept
    leftovers = [p.name for p in (workdir / output).parent.glob("*")]
    assert all(
        name.startswith(".") and name.endswith(".tmp")
        for name in leftovers
        if not name.startswith("shard-")
    ), leftovers


def test_rerun_redoes_the_killed_job_and_equals_a_clean_run(killed_run: dict, clean_runs):
    workdir = killed_run["workdir"]
    plan = snakemake(workdir, "--dry-run", *TARGETS)
    assert "embed_shard" in plan.stdout + plan.stderr
    snakemake(workdir, "--cores", "2", *TARGETS)
    assert_same_tables(clean_runs[0], workdir)
    again = snakemake(workdir, "--dry-run", *TARGETS)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_two_clean_runs_give_identical_tables(clean_runs):
    assert_same_tables(*clean_runs)
