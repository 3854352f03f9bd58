"""The real user's path through the real `snakemake` CLI (issue 13).

A user clones the repository and runs it from the checkout, where ``config.yaml`` is always
loaded; their own settings come in an edited ``config.yaml`` or a ``--configfile`` that Snakemake
merges into it key by key. Each test works in a folder holding a copy of the repository's
``config.yaml``, which is what the user's working directory holds, with a real image folder and a
real (small, ir_demo) checkpoint:

- a config naming one model plans exactly that model: no ``demo`` job, no ``train_demo_model``;
- a config naming no models on a user dataset is refused unless it asks for the demo model;
- planning works with torch and OpenCV unimportable, and the SLURM profile plans without a
  cluster.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.snakemake_cli import SNAKEMAKE_TIMEOUT_S, run_snakemake
from support.user_data import (
    REPO,
    USER_MODEL,
    USER_SHARDS,
    checkout_like,
    make_user_data,
    user_config,
)

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> tuple[Path, Path]:
    return make_user_data(tmp_path_factory.mktemp("user_data"))


def planned(result) -> tuple[dict[str, int], str]:
    """(rule -> job count, full text) of a successful dry run."""
    text = result.stdout + result.stderr
    table = text.split("Job stats:", 1)[1].split("Reasons:", 1)[0]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.MULTILINE)
    return {rule: int(n) for rule, n in rows if rule != "total"}, text


def assert_only_the_user_model(result) -> None:
    jobs, text = planned(result)
    assert "train_demo_model" not in jobs, jobs
    assert jobs["embed_shard"] == USER_SHARDS, jobs
    assert not re.search(r"\bdemo\b", text.replace("dataset.demo", "")), "a demo job is planned"
    assert re.findall(r"wildcards: model=(\S+)", text) and {
        m.rstrip(",") for m in re.findall(r"model=(\S+)", text)
    } == {USER_MODEL}


# ---------------------------------------------------------------------------------------------
# a user's config replaces the demo model
# ---------------------------------------------------------------------------------------------


def test_configfile_with_one_model_plans_no_demo_job(tmp_path: Path, user_data):
    """`snakemake --configfile my.yaml` in a checkout: my.yaml's model only, no demo training."""
    workdir = checkout_like(tmp_path / "checkout")
    config = user_config(tmp_path / "my.yaml", user_data)
    assert_only_the_user_model(run_snakemake(workdir, config, "--dry-run"))


def test_edited_config_yaml_with_one_model_plans_no_demo_job(tmp_path: Path, user_data):
    """The repository's config.yaml edited in place (its own models and dataset)."""
    workdir = checkout_like(tmp_path / "checkout")
    edited = yaml.safe_load((workdir / "config.yaml").read_text())
    edited.update(yaml.safe_load(user_config(tmp_path / "my.yaml", user_data).read_text()))
    (workdir / "config.yaml").write_text(yaml.safe_dump(edited))
    assert_only_the_user_model(run_snakemake(workdir, workdir / "config.yaml", "--dry-run"))


def test_demo_defaults_still_plan_the_demo_model(tmp_path: Path):
    """No configfile of one's own: the demo dataset and the demo model, as the README's command 1."""
    workdir = checkout_like(tmp_path / "checkout")
    jobs, text = planned(run_snakemake(workdir, workdir / "config.yaml", "--dry-run"))
    assert jobs["train_demo_model"] == 1 and "model=demo" in text


def test_no_models_on_a_user_dataset_is_refused_unless_asked(tmp_path: Path, user_data):
    """A user dataset without `models`: the default demo model would train on it, which must be
    asked for with train.allow_non_demo_dataset; asked for, it is planned."""
    workdir = checkout_like(tmp_path / "checkout")
    config = user_config(tmp_path / "my.yaml", user_data, with_model=False)
    result = run_snakemake(workdir, config, "--dry-run", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "models.demo.checkpoint = train would train the small demo model" in text, text
    assert "train.allow_non_demo_dataset: true" in text and "Your own data and models" in text
    assert not (workdir / "results").exists()

    config = user_config(
        tmp_path / "my.yaml", user_data, with_model=False, train={"allow_non_demo_dataset": True}
    )
    jobs, _ = planned(run_snakemake(workdir, config, "--dry-run"))
    assert jobs["train_demo_model"] == 1


def test_slurm_profile_plans_the_user_model_without_a_cluster(tmp_path: Path, user_data):
    """`--profile profiles/slurm -n` needs no SLURM: it plans the user's model with its GPU."""
    workdir = checkout_like(tmp_path / "checkout")
    config = user_config(tmp_path / "my.yaml", user_data)
    result = run_snakemake(
        workdir, config, "--profile", str(REPO / "profiles" / "slurm"), "--dry-run"
    )
    assert_only_the_user_model(result)
    embed_jobs = re.findall(r"rule embed_shard:.*?resources: ([^\n]*)", result.stdout, re.DOTALL)
    assert len(embed_jobs) == USER_SHARDS and all("gpu=1" in r for r in embed_jobs), embed_jobs


# ---------------------------------------------------------------------------------------------
# a light plan: no torch, no OpenCV
# ---------------------------------------------------------------------------------------------

BLOCKED = ("torch", "cv2")


@pytest.fixture(scope="module")
def without_torch_and_cv2(tmp_path_factory) -> dict[str, str]:
    """An environment in which `import torch` and `import cv2` raise ImportError: a PYTHONPATH
    folder whose torch.py / cv2.py shadow the installed packages."""
    blocker = tmp_path_factory.mktemp("blocked_modules")
    for name in BLOCKED:
        (blocker / f"{name}.py").write_text(
            f'raise ImportError("{name} is blocked: planning must not import it")\n'
        )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), str(REPO / "src")])
    for name in BLOCKED:  # the blocker works: otherwise the test below could not fail
        probe = subprocess.run(
            [sys.executable, "-c", f"import {name}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert probe.returncode != 0 and "is blocked" in probe.stderr, name
    return env


@pytest.mark.parametrize("scenario", ["demo", "user"])
def test_dry_run_needs_neither_torch_nor_cv2(
    tmp_path: Path, user_data, without_torch_and_cv2, scenario: str
):
    workdir = checkout_like(tmp_path / "checkout")
    config = (
        workdir / "config.yaml"
        if scenario == "demo"
        else user_config(tmp_path / "my.yaml", user_data)
    )
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--dry-run",
    ]
    result = subprocess.run(
        command,
        env=without_torch_and_cv2,
        capture_output=True,
        text=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs, _ = planned(result)
    assert jobs["embed_shard"] > 0 and ("train_demo_model" in jobs) == (scenario == "demo")
