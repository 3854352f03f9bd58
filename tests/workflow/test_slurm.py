"""The SLURM profile, and the demo workflow run through a real SLURM cluster.

Two kinds of test live here:

- profile checks that need no cluster: the GPU request of ``embed_shard`` in a dry run of
  ``profiles/slurm``, its absence with the ``profiles/slurm/cpu`` overlay, and that the overlays
  repeat the main profile's other entries unchanged;
- ``test_workflow_through_slurm_equals_local_run``: runs a tiny demo config locally and through
  ``--executor slurm`` on the single-node cluster of ``tests/slurm/start-cluster.sh``, checks that
  every job went through SLURM (job records in ``squeue --states=all`` matched to the plugin's
  logs) and that every numeric table equals the local run's.

The cluster test skips, with the reason, where no test cluster answers (not root, no SLURM
packages, not started). Set ``FEATNORM_REQUIRE_SLURM=1`` (``.ci/run`` does) to make that a
failure instead, so CI cannot pass without the cluster.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support.snakemake_cli import run_snakemake

from featnorm.tableio import read_table

REPO_ROOT = Path(__file__).resolve().parents[2]
MAIN_PROFILE = Path("profiles/slurm")
CPU_OVERLAY = Path("profiles/slurm/cpu")
TEST_OVERLAY = Path("tests/slurm/profile")

# ClusterName written by tests/slurm/start-cluster.sh: the cluster test submits jobs, so it only
# runs against that throw-away cluster, never against a real cluster the machine can reach.
TEST_CLUSTER_NAME = "featnorm-ci"
REQUIRE_ENV = "FEATNORM_REQUIRE_SLURM"
SLURM_COMMANDS = ("sinfo", "sbatch", "squeue", "scontrol")

# Wall-clock bounds (s). The SLURM run takes ~2-4 min on a loaded 2-core machine (each job
# starts Snakemake twice, ~8 s); the bound only stops a hung run (see the reference README:
# a status command that never sees the jobs finish waits forever).
LOCAL_RUN_TIMEOUT_S = 600
SLURM_RUN_TIMEOUT_S = 900
KILL_AFTER_S = 30  # after SIGINT (which makes Snakemake scancel its jobs), SIGKILL
DRY_RUN_TIMEOUT_S = 180

# Float columns may differ in the last bits between two runs only through summation order.
# Both runs use the same thread counts (see _local_thread_args), so this is a safety margin.
FLOAT_RTOL = 1e-6
FLOAT_ATOL = 1e-9

# Rules that do the per-image and model work and must have run as SLURM jobs.
RULES_THROUGH_SLURM = {
    "make_manifest",
    "make_shards",
    "train_demo_model",
    "score_brisque",
    "embed_shard",
    "merge_samples",
    "correlate",
    "paired_differences",
    "decompose_correlations",
    "correlate_by_class_size",
    "draw_pairs",
    "compute_edc",
    "compute_references",
}

# The workflow tests' tiny demo config (a few dozen images, 2 shards, 1 training epoch).
TINY_CONFIG_FILE = REPO_ROOT / "tests" / "workflow" / "tiny" / "config.yaml"


# --------------------------------------------------------------------------------------------
# helpers


def _copy_repo(dest: Path) -> Path:
    """Copy the working tree's tracked and untracked-but-not-ignored files into ``dest``.

    Each run gets its own copy so results/ and .snakemake/ never touch the developer's tree.
    """
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def _tiny_config(workdir: Path) -> Path:
    """The tiny config inside a repository copy."""
    path = workdir / TINY_CONFIG_FILE.relative_to(REPO_ROOT)
    if not path.is_file():
        raise FileNotFoundError(f"tiny workflow config {path} is missing; the test runs it")
    return path


def _snakemake(args: list[str], *, cwd: Path, timeout_s: int) -> subprocess.CompletedProcess:
    """Run Snakemake under ``timeout`` (SIGINT, then SIGKILL): Snakemake ignores SIGTERM while
    it waits for cluster jobs, but cancels them on SIGINT."""
    command = [
        "timeout",
        "-s",
        "INT",
        "-k",
        str(KILL_AFTER_S),
        str(timeout_s),
        sys.executable,
        "-m",
        "snakemake",
        *args,
    ]
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s + 2 * KILL_AFTER_S,
    )


def _check_ran(result: subprocess.CompletedProcess, what: str) -> None:
    if result.returncode != 0:
        timed_out = " (timed out)" if result.returncode in (124, 137) else ""
        pytest.fail(
            f"{what} failed with exit code {result.returncode}{timed_out}; "
            f"last output:\n{(result.stdout + result.stderr)[-6000:]}"
        )


def _profile(path: Path) -> dict:
    return yaml.safe_load((REPO_ROOT / path / "config.yaml").read_text())


def _dry_run_resources(workdir: Path, profiles: list[Path]) -> dict[str, list[str]]:
    """Rule name -> the ``resources:`` lines of its jobs in a dry run with these profiles."""
    args = ["--dry-run", "--nocolor"]
    for profile in profiles:
        args += ["--profile", str(profile)]
    result = _snakemake(args, cwd=workdir, timeout_s=DRY_RUN_TIMEOUT_S)
    _check_ran(result, "snakemake --dry-run")
    resources: dict[str, list[str]] = {}
    rule = None
    for line in result.stdout.splitlines():
        if match := re.match(r"^\s*(?:local)?rule (\w+):", line):
            rule = match[1]
        elif rule and line.strip().startswith("resources:"):
            resources.setdefault(rule, []).append(line.strip())
    return resources


def _cluster_or_skip() -> None:
    """Skip (or fail, with FEATNORM_REQUIRE_SLURM=1) unless the test cluster answers here."""
    reason = None
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        reason = (
            f"SLURM commands not found ({', '.join(missing)}); start the test cluster as root "
            "with tests/slurm/start-cluster.sh (Debian, apt-get)"
        )
    else:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=60)
        config = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=60
        ).stdout
        name = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.M)
        if "UP" not in ping.stdout:
            reason = (
                "no SLURM controller answers `scontrol ping`; start the test cluster as root "
                "with tests/slurm/start-cluster.sh"
            )
        elif name is None or name[1] != TEST_CLUSTER_NAME:
            reason = (
                f"the SLURM cluster here is {name[1] if name else 'unnamed'!r}, not the test "
                f"cluster {TEST_CLUSTER_NAME!r} of tests/slurm/start-cluster.sh; the test "
                "submits jobs, so it only runs against that one"
            )
    if reason is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


def _slurm_jobs_of(workdir: Path) -> pd.DataFrame:
    """Job records the controller still holds (MinJobAge=3600 on the test cluster) whose
    working directory is ``workdir``: columns job_id, state, comment."""
    listing = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T|%Z|%k"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = [line.split("|", 3) for line in listing.splitlines() if line.strip()]
    jobs = pd.DataFrame(rows, columns=["job_id", "state", "workdir", "comment"])
    return jobs[jobs["workdir"] == str(workdir.resolve())].reset_index(drop=True)


def _slurm_log_job_ids(workdir: Path) -> dict[str, str]:
    """Job ID -> rule/group folder, from the plugin's kept logs ``<rule>/[<wildcards>/]<id>.log``."""
    log_root = workdir / ".snakemake" / "slurm_logs"
    return {
        log.stem: log.relative_to(log_root).parts[0]
        for log in log_root.rglob("*.log")
        if log.stem.isdigit()
    }


def _local_thread_args() -> list[str]:
    """The test overlay's thread counts, for the local run: equal threads keep torch's and
    BLAS's summation order equal, so the comparison checks the executor, not thread counts."""
    threads = _profile(TEST_OVERLAY).get("set-threads", {})
    return ["--set-threads", *(f"{rule}={n}" for rule, n in threads.items())] if threads else []


def _result_files(workdir: Path) -> dict[str, Path]:
    """Outputs under results/, keyed by relative path; per-job logs and benchmarks (timings,
    host names) are left out."""
    root = workdir / "results"
    return {
        str(path.relative_to(root)): path
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).parts[0] not in ("logs", "benchmarks")
    }


def _read_any_table(path: Path, workdir: Path) -> pd.DataFrame:
    """The table, with the run's own working directory in string cells replaced by a marker
    (absolute image paths differ between the two copies of the repository)."""
    table = read_table(path) if path.suffix == ".parquet" else pd.read_csv(path)
    for column in table.columns:
        if table[column].dtype == object and table[column].map(type).eq(str).all():
            table[column] = table[column].str.replace(str(workdir), "<workdir>", regex=False)
    return table


def _assert_frames_equal(local: pd.DataFrame, slurm: pd.DataFrame, name: str) -> None:
    assert list(local.columns) == list(slurm.columns), f"{name}: columns differ"
    assert len(local) == len(slurm), f"{name}: {len(local)} rows locally, {len(slurm)} via SLURM"
    for column in local.columns:
        a, b = local[column], slurm[column]
        if pd.api.types.is_float_dtype(a) and pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(
                a.to_numpy(),
                b.to_numpy(),
                rtol=FLOAT_RTOL,
                atol=FLOAT_ATOL,
                equal_nan=True,
                err_msg=f"{name}: column {column!r} differs",
            )
        elif a.dtype == object and len(a) and isinstance(a.iloc[0], (list, np.ndarray)):
            np.testing.assert_allclose(
                np.stack(a.to_numpy()).astype(np.float64),
                np.stack(b.to_numpy()).astype(np.float64),
                rtol=FLOAT_RTOL,
                atol=FLOAT_ATOL,
                equal_nan=True,
                err_msg=f"{name}: column {column!r} differs",
            )
        else:
            assert a.equals(b), f"{name}: column {column!r} differs"


# --------------------------------------------------------------------------------------------
# profile checks (no cluster needed)


def test_overlays_repeat_main_profile_except_embed_shard():
    """The CPU and test overlays replace set-resources/set-threads as a whole; the CPU overlay
    must keep every rule other than embed_shard as the main profile has it, and neither overlay
    may ask for a GPU."""
    main, cpu, test = _profile(MAIN_PROFILE), _profile(CPU_OVERLAY), _profile(TEST_OVERLAY)
    for key in ("set-resources", "set-threads"):
        main_rest = {r: v for r, v in main[key].items() if r != "embed_shard"}
        cpu_rest = {r: v for r, v in cpu[key].items() if r != "embed_shard"}
        assert cpu_rest == main_rest, f"profiles/slurm/cpu {key} drifted from profiles/slurm"
    assert main["set-resources"]["embed_shard"]["gpu"] == 1
    for overlay in (cpu, test):
        embed = overlay["set-resources"]["embed_shard"]
        assert not {"gpu", "gpu_model", "gres", "cpus_per_gpu"} & set(embed), embed


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory) -> set[str]:
    """Every rule of the workflow, as `snakemake --list-rules` names them (loops included)."""
    workdir = tmp_path_factory.mktemp("rules")
    result = run_snakemake(workdir, TINY_CONFIG_FILE, "--list-rules")
    return set(result.stdout.split())


def _local_rules() -> set[str]:
    """The Snakefile's `localrules:` (target rules that run no command)."""
    block = (REPO_ROOT / "Snakefile").read_text().split("\nlocalrules:\n", 1)[1]
    return set(re.findall(r"^    (\w+),$", block.split("\n\n", 1)[0], flags=re.M))


@pytest.mark.parametrize("profile", [MAIN_PROFILE, CPU_OVERLAY, TEST_OVERLAY], ids=str)
def test_profiles_name_only_existing_rules(profile, workflow_rules):
    """A renamed rule would silently lose its resources: every rule a profile names exists."""
    config = _profile(profile)
    named = {
        rule for key in ("set-resources", "set-threads", "groups") for rule in config.get(key, {})
    }
    assert named <= workflow_rules, (
        f"{profile} names unknown rules {sorted(named - workflow_rules)}"
    )


def test_profile_sizes_or_groups_every_rule_that_runs_a_command(workflow_rules):
    """Every rule but the local target rules has its own resources in profiles/slurm or runs in
    a group there: a new rule left out would be one default-sized SLURM job per wildcard."""
    main = _profile(MAIN_PROFILE)
    local = _local_rules()
    assert local and local <= workflow_rules, local
    covered = set(main["set-resources"]) | set(main["groups"])
    missing = workflow_rules - local - covered
    assert not missing, f"profiles/slurm/config.yaml neither sizes nor groups {sorted(missing)}"


@pytest.mark.workflow
def test_dry_run_requests_gpu_for_embed_only_without_cpu_overlay(tmp_path):
    """`snakemake --profile profiles/slurm --dry-run` on the default config shows gpu=1 on every
    embed_shard job and on no other rule; with profiles/slurm/cpu no job asks for a GPU."""
    workdir = _copy_repo(tmp_path / "repo")

    gpu_profile = _dry_run_resources(workdir, [MAIN_PROFILE])
    assert gpu_profile.get("embed_shard"), "no embed_shard job in the dry run"
    assert all(re.search(r"\bgpu=1\b", line) for line in gpu_profile["embed_shard"])
    assert all("cpus_per_gpu=4" in line for line in gpu_profile["embed_shard"])
    others = [
        line for rule, lines in gpu_profile.items() if rule != "embed_shard" for line in lines
    ]
    assert others and not any(re.search(r"\bgpu=", line) for line in others)

    cpu_profile = _dry_run_resources(workdir, [MAIN_PROFILE, CPU_OVERLAY])
    assert cpu_profile.get("embed_shard")
    assert not any(re.search(r"\bgpu", line) for lines in cpu_profile.values() for line in lines)


# --------------------------------------------------------------------------------------------
# the real cluster


@pytest.mark.slurm
@pytest.mark.workflow
def test_workflow_through_slurm_equals_local_run(tmp_path):
    """The tiny demo run through `--executor slurm` completes, each of its jobs is a COMPLETED
    SLURM job of the test cluster, and its tables equal a local run's on the same config."""
    _cluster_or_skip()
    local_dir = _copy_repo(tmp_path / "local")
    # a name no earlier run used: the controller keeps finished jobs for an hour, keyed here by
    # working directory, and a rerun with a fixed --basetemp would otherwise see the old ones
    slurm_dir = _copy_repo(tmp_path / f"slurm-{time.time_ns()}")
    local_config = _tiny_config(local_dir)
    slurm_config = _tiny_config(slurm_dir)

    local = _snakemake(
        ["--cores", "2", "--configfile", str(local_config), "--nocolor", *_local_thread_args()],
        cwd=local_dir,
        timeout_s=LOCAL_RUN_TIMEOUT_S,
    )
    _check_ran(local, "local snakemake run")

    slurm = _snakemake(
        [
            "--profile",
            str(MAIN_PROFILE),
            "--profile",
            str(TEST_OVERLAY),
            "--configfile",
            str(slurm_config),
            "--nocolor",
        ],
        cwd=slurm_dir,
        timeout_s=SLURM_RUN_TIMEOUT_S,
    )
    _check_ran(slurm, "snakemake --executor slurm run")

    # --- the jobs really went through SLURM: the plugin's logs name job IDs, and the controller
    # holds exactly those jobs for this working directory, all COMPLETED.
    logged = _slurm_log_job_ids(slurm_dir)
    jobs = _slurm_jobs_of(slurm_dir)
    assert logged, "no SLURM job logs under .snakemake/slurm_logs: nothing was submitted"
    assert set(jobs["job_id"]) == set(logged), (
        f"job IDs in the plugin's logs {sorted(logged)} differ from the controller's jobs for "
        f"{slurm_dir}: {jobs.to_dict('records')}"
    )
    assert (jobs["state"] == "COMPLETED").all(), jobs.to_dict("records")
    groups = _profile(MAIN_PROFILE)["groups"]  # a grouped rule's job is named by its group

    def submitted(rule: str, comment: str) -> bool:
        if rule in groups:
            return comment.startswith(f"rule_{groups[rule]}_") and rule in comment
        return comment == f"rule_{rule}" or comment.startswith(f"rule_{rule}_wildcards_")

    missing = {r for r in RULES_THROUGH_SLURM if not any(submitted(r, c) for c in jobs["comment"])}
    assert not missing, (
        f"rules never submitted to SLURM: {sorted(missing)}; jobs: {jobs.to_dict('records')}"
    )

    # the profile's groups: every figure and table job in one SLURM job (the test overlay packs
    # all report components together), and BRISQUE shards packed group-components at a time
    shards = yaml.safe_load(slurm_config.read_text())["shards"]
    per_brisque_job = _profile(TEST_OVERLAY)["group-components"]["brisque"]
    comments = list(jobs["comment"])
    assert sum(c.startswith("rule_report_") for c in comments) == 1, comments
    assert sum(c.startswith("rule_brisque_") for c in comments) == -(-shards // per_brisque_job)

    # --- the outputs equal the local run's
    local_files, slurm_files = _result_files(local_dir), _result_files(slurm_dir)
    assert sorted(local_files) == sorted(slurm_files), "the two runs made different files"
    tables = [name for name in local_files if name.endswith((".parquet", ".csv"))]
    assert any(name.endswith("samples.parquet") for name in tables), tables
    for name in tables:
        _assert_frames_equal(
            _read_any_table(local_files[name], local_dir),
            _read_any_table(slurm_files[name], slurm_dir),
            name,
        )
