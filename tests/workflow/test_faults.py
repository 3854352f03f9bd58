"""Faults through the real `snakemake` (issue 7, item 3).

* An embed job killed with SIGKILL half way through its shard leaves nothing at its output path
  (tables are written to a temporary file and renamed), so Snakemake fails the run and a re-run
  runs that job again.
* Determinism: the re-run's tables equal, exactly, those of the session's clean run of the same
  config in another folder (the `tiny_run` fixture): every job of the killed folder ran on its
  own there, so this one comparison checks both the re-run and that two runs agree.

The killed run uses tests/workflow/tiny/config.yaml (one image per forward pass) and stops at the
correlations, which need every per-image table; the figures add nothing here.
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
CONFIG = REPO / "tests" / "workflow" / "tiny" / "config.yaml"
MODEL = "demo"
TARGETS = [f"results/{MODEL}/correlations.csv"]
SNAKEMAKE_TIMEOUT_S = 600
POLL_S = 0.005
SLICE_S = 0.02  # the victim runs this long between two looks at its log
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


def assert_same_tables(clean: Path, rerun: Path) -> None:
    """Every table of ``rerun`` equals the one of the same name in ``clean`` (which may hold
    more: the figures and the EDC), exactly; CSV byte for byte."""
    left, right = tables(clean), tables(rerun)
    assert set(right) <= set(left), sorted(set(right) - set(left))
    for needed in ("correlations.csv", "samples.parquet", "shard-0.parquet", "shard-1.parquet"):
        assert any(name.endswith(needed) for name in right), needed
    for name, table in right.items():
        pd.testing.assert_frame_equal(left[name], table, check_exact=True, obj=name)
        if name.endswith(".csv"):  # text outputs: byte for byte
            assert (clean / name).read_bytes() == (rerun / name).read_bytes(), name


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


def output_of(process: psutil.Process) -> Path:
    """The --output of a `featnorm embed` process (relative to the working directory)."""
    cmdline = process.cmdline()
    return Path(cmdline[cmdline.index("--output") + 1])


def embed_tables_done(workdir: Path) -> list[Path]:
    return sorted((workdir / "results" / "embed" / MODEL).glob("shard-*.parquet"))


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> dict:
    """A run whose second embed job is SIGKILLed after its first images (the first finished,
    so its table is there beside the killed one's leftovers): what it left behind."""
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
            # embed jobs take both cores, so they run one after the other: once one table is
            # written, an embed process whose own output does not exist yet is the second job
            victim = embed_process(root) if embed_tables_done(workdir) else None
            try:
                if victim is not None and not (workdir / output_of(victim)).exists():
                    victim.suspend()
                    break
            except psutil.NoSuchProcess:  # the first job, ending as we looked
                pass
            time.sleep(POLL_S)
        else:
            pytest.fail("no second embed job started before snakemake ended")
        output = output_of(victim)
        # the rule sends the job's stdout and stderr to its log (featnorm's lines included)
        log = workdir / "results" / "logs" / "embed_shard" / MODEL / f"{output.stem}.log"
        # let it run in short slices, reading its log while it is stopped, so the kill lands at
        # its first progress line however loaded the machine is (in the batch loop: half way)
        while not (log.exists() and PROGRESS.search(log.read_text())):
            assert time.monotonic() < deadline, "the embed job never reached its batch loop"
            victim.resume()
            time.sleep(SLICE_S)
            victim.suspend()
        os.kill(victim.pid, signal.SIGKILL)
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
    # beside it: the first shard's finished table, whole, and at most a temporary file under a
    # name no rule outputs (never a partial table under a name a re-run would accept)
    left = sorted((workdir / output).parent.iterdir())
    finished = [p for p in left if not is_temporary(p.name)]
    assert finished and all(p.name != output.name for p in finished), left
    for table in finished:
        shard = tableio.read_table(workdir / "results" / "shards" / table.name)
        assert sorted(tableio.read_table(table)["sample_id"]) == sorted(shard["sample_id"])


def is_temporary(name: str) -> bool:
    """featnorm.tableio's temporary name: `.<final name>.<random>.tmp<suffix>`."""
    return name.startswith(".") and ".tmp" in name


def test_rerun_redoes_the_killed_job_and_equals_a_clean_run(killed_run: dict, tiny_run: Path):
    workdir = killed_run["workdir"]
    plan = snakemake(workdir, "--dry-run", *TARGETS)
    assert "embed_shard" in plan.stdout + plan.stderr
    snakemake(workdir, "--cores", "2", *TARGETS)
    assert_same_tables(tiny_run, workdir)
    again = snakemake(workdir, "--dry-run", *TARGETS)
    assert "Nothing to be done" in again.stdout + again.stderr
