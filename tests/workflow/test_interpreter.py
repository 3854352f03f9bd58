"""Rules run with the interpreter that runs Snakemake, and a job's own output reaches its log.

A venv's snakemake called by path (a SLURM batch script, a cron job) has no activated venv: no
`python` of it on PATH. And an import error or a bad argument is printed before featnorm's logger
starts, so only a rule that redirects the job's stdout and stderr keeps it in results/logs/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.snakemake_cli import REPO, SNAKEMAKE_TIMEOUT_S, run_snakemake

pytestmark = pytest.mark.workflow

TINY_CONFIG = REPO / "tests" / "workflow" / "tiny" / "config.yaml"
# printed by every Python process of the jobs before anything of featnorm is imported
MARKERS = ("printed-to-stdout-at-startup", "printed-to-stderr-at-startup")


def path_without_python(bin_dir: Path) -> str:
    """A PATH with every command of the current one except ``python*``: one folder of links."""
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for command in sorted(Path(folder).glob("*")) if Path(folder).is_dir() else []:
            link = bin_dir / command.name
            if not command.name.startswith("python") and not link.exists():
                link.symlink_to(command)
    return str(bin_dir)


def snakemake_by_path() -> list[str]:
    """The snakemake script beside this interpreter (a venv's .venv/bin/snakemake), by path."""
    script = Path(sys.executable).with_name("snakemake")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "snakemake"]


def test_snakemake_by_path_without_python_on_path_logs_each_jobs_output(tmp_path: Path):
    """Without activation and without any `python` on PATH the rules still run, and what a job
    prints to stdout and stderr before featnorm's logger starts is in its log, with featnorm's
    own log lines once each (not also through --log)."""
    startup = tmp_path / "startup"
    startup.mkdir()
    (startup / "sitecustomize.py").write_text(
        f"import sys\nprint({MARKERS[0]!r})\nsys.stderr.write({MARKERS[1]!r} + '\\n')\n"
    )
    env = {
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PATH": path_without_python(tmp_path / "bin"),
        "PYTHONPATH": str(startup),
    }
    assert subprocess.run(["which", "python"], env=env, capture_output=True).returncode != 0
    result = subprocess.run(
        [
            *snakemake_by_path(),
            *("--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path)),
            *("--configfile", str(TINY_CONFIG), "--cores", "1", "results/shards/shard-0.parquet"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for rule, step in (("make_manifest", "manifest"), ("make_shards", "shard")):
        log = (tmp_path / "results" / "logs" / f"{rule}.log").read_text()
        assert all(marker in log for marker in MARKERS), f"{rule}.log:\n{log}"
        assert log.count(f"INFO featnorm: step {step} done") == 1, f"{rule}.log:\n{log}"


def test_every_job_runs_this_interpreter_and_sends_its_output_to_its_log(tmp_path: Path):
    """Every job of the whole tiny plan (every rule but `all`) is `$FEATNORM_PYTHON -m featnorm
    ...` (the interpreter common.smk's shell prefix names) ending in `> <its log> 2>&1`."""
    result = run_snakemake(tmp_path, TINY_CONFIG, "--dry-run", "--printshellcmds")
    text = result.stdout + result.stderr
    jobs = int(re.search(r"^total\s+(\d+)$", text, flags=re.M).group(1)) - 1  # `all` runs nothing
    commands = [
        line.strip().removeprefix("Shell command: ")
        for line in text.splitlines()
        if " -m featnorm " in line
    ]
    assert len(commands) == jobs, commands
    for command in commands:
        assert command.startswith("$FEATNORM_PYTHON -m featnorm "), command
        assert re.search(r" > results/logs/\S+\.log 2>&1$", command), command
