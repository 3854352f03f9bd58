"""Conda environment files (envs/): what they hold, which rule uses which, and that Snakemake's
own env handling creates them and runs a rule in one.

No conda channel is reachable here, so `conda` is a stand-in (tests/support/conda_standin.py) that
answers Snakemake's questions, checks each env file Snakemake hands it the way conda and pip
would read it from where Snakemake put it, and makes an environment without featnorm in it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from support.conda_standin import check_env_file
from support.snakemake_cli import SNAKEMAKE_TIMEOUT_S, snakemake_command
from support.user_data import REPO, checkout_like, make_user_data, user_config

CPU_ENV = REPO / "envs" / "featnorm.yaml"
GPU_ENV = REPO / "envs" / "featnorm-gpu.yaml"
GPU_RULES = {"embed_shard"}  # the only rule that asks for a GPU (profiles/slurm)
SNAKEMAKE_PACKAGES = {"snakemake", "snakemake-executor-plugin-slurm"}  # run Snakemake, not rules
CPU_TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def pip_entries(env_file: Path) -> list[str]:
    deps = yaml.safe_load(env_file.read_text())["dependencies"]
    return [entry for dep in deps if isinstance(dep, dict) for entry in dep["pip"]]


def requirements(env_file: Path) -> dict[str, str]:
    """name -> requirement string of the env file's pip list (options left out)."""
    reqs = [Requirement(e) for e in pip_entries(env_file) if not e.startswith("-")]
    return {r.name: str(r) for r in reqs}


# ---------------------------------------------------------------------------------------------
# the files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_file", [CPU_ENV, GPU_ENV], ids=["cpu", "gpu"])
def test_env_lists_pyproject_runtime_dependencies_and_no_local_path(env_file: Path):
    """The rules' third-party packages, exactly pyproject.toml's (Snakemake itself excluded);
    featnorm is not installed by path (the rules run it from the checkout)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = {
        r.name: str(r)
        for r in map(Requirement, project["dependencies"])
        if r.name not in SNAKEMAKE_PACKAGES
    }
    assert requirements(env_file) == expected
    assert not [e for e in pip_entries(env_file) if e.startswith(("-e", ".", "/", "file:"))]


def test_cpu_env_has_the_cpu_torch_and_gpu_env_the_cuda_build():
    """PyPI's Linux torch wheel is the CUDA build; the CPU index serves the CPU-only build."""
    assert CPU_TORCH_INDEX in pip_entries(CPU_ENV)
    assert not [e for e in pip_entries(GPU_ENV) if "download.pytorch.org/whl/cpu" in e]
    assert requirements(CPU_ENV)["torch"] == requirements(GPU_ENV)["torch"] == "torch==2.13.0"


def test_gpu_rule_uses_the_gpu_env_and_every_other_rule_the_cpu_env():
    envs = {}
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        for rule, env in re.findall(
            r"^rule (\w+):.*?conda:\s*\"([^\"]+)\"", text, flags=re.MULTILINE | re.DOTALL
        ):
            envs[rule] = (smk.parent / env).resolve()
    assert len(envs) > 10
    assert {r for r, env in envs.items() if env == GPU_ENV} == GPU_RULES
    assert {r for r, env in envs.items() if env != GPU_ENV} == {
        r for r in envs if r not in GPU_RULES
    }
    assert all(env in (CPU_ENV, GPU_ENV) for env in envs.values())


def test_standin_refuses_a_path_relative_to_the_env_file(tmp_path: Path):
    """`-e ../` (the old env file) works from envs/ but not from Snakemake's copy in
    .snakemake/conda/, where conda's pip resolves it: the stand-in can tell the two apart."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    spec = "dependencies:\n  - pip\n  - pip:\n      - -e ../\n"
    for folder in (tmp_path / "envs", tmp_path / ".snakemake" / "conda"):
        folder.mkdir(parents=True)
        (folder / "env.yaml").write_text(spec)
    assert check_env_file(tmp_path / "envs" / "env.yaml") == []
    problems = check_env_file(tmp_path / ".snakemake" / "conda" / "env.yaml")
    assert len(problems) == 1 and "not a Python project" in problems[0]


# ---------------------------------------------------------------------------------------------
# Snakemake's own env handling, with the stand-in conda
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def user_data(tmp_path_factory) -> tuple[Path, Path]:
    return make_user_data(tmp_path_factory.mktemp("user_data"))


@pytest.fixture
def standin_conda(tmp_path: Path) -> dict[str, str]:
    """Environment for snakemake with the stand-in conda first on PATH and no PYTHONPATH: the
    workflow itself must make the checkout importable (at parse time and in the jobs)."""
    base = tmp_path / "conda_base"
    (base / "bin").mkdir(parents=True)
    conda = base / "bin" / "conda"
    conda.write_text(
        f'#!/bin/sh\nexec {sys.executable} {REPO / "tests" / "support" / "conda_standin.py"} "$@"\n'
    )
    conda.chmod(0o755)
    (base / "bin" / "activate").write_text('export PATH="$1/bin:$PATH"\n')  # `source activate P`
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PATH=f"{base / 'bin'}{os.pathsep}{env['PATH']}",
        CONDA_STANDIN_BASE=str(base),
        CONDA_STANDIN_RECORD=str(tmp_path / "conda_calls.jsonl"),
    )
    return env


def run_with_conda(workdir: Path, config: Path, env: dict[str, str], *args: str):
    command = snakemake_command(workdir, config, "--sdm", "conda", *args)
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=SNAKEMAKE_TIMEOUT_S, check=False
    )


def calls(env: dict[str, str]) -> list[dict]:
    lines = Path(env["CONDA_STANDIN_RECORD"]).read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_snakemake_creates_both_envs_from_its_copies(tmp_path: Path, user_data, standin_conda):
    """`--conda-create-envs-only`: one `conda env create` per env file, each from Snakemake's
    copy under .snakemake/conda/, which conda (and its pip) can resolve."""
    workdir = checkout_like(tmp_path / "checkout")
    config = user_config(tmp_path / "my.yaml", user_data)
    result = run_with_conda(
        workdir, config, standin_conda, "--conda-create-envs-only", "--cores", "1"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    created = [c for c in calls(standin_conda) if "env_file" in c]
    assert sorted(c["content"] for c in created) == sorted(
        p.read_text() for p in (CPU_ENV, GPU_ENV)
    )
    for call in created:
        assert Path(call["env_file"]).parent == workdir / ".snakemake" / "conda", call


def test_a_rule_runs_in_its_env_with_the_checkout_importable(
    tmp_path: Path, user_data, standin_conda
):
    """The manifest rule runs under the env's python, which has no featnorm of its own."""
    workdir = checkout_like(tmp_path / "checkout")
    config = user_config(tmp_path / "my.yaml", user_data)
    result = run_with_conda(
        workdir, config, standin_conda, "--cores", "1", "results/manifest.parquet"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (workdir / "results" / "manifest.parquet").is_file()
    pythons = Path(standin_conda["CONDA_STANDIN_RECORD"] + ".python").read_text().split()
    assert pythons and all(p.startswith(str(workdir / ".snakemake" / "conda")) for p in pythons)
    # the env's python alone cannot import featnorm, so the rule found it through the workflow
    alone = subprocess.run(
        [pythons[0], "-c", "import featnorm"],
        env=standin_conda,
        capture_output=True,
        text=True,
        check=False,
    )
    assert alone.returncode != 0 and "No module named 'featnorm'" in alone.stderr
