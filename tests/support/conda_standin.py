"""A stand-in for `conda` that answers what Snakemake asks and checks what it is told to create.

tests/workflow/test_envs.py makes ``<base>/bin/conda`` run it with this interpreter, writes an ``activate``
script beside it, and puts ``<base>/bin`` first on PATH (``$CONDA_STANDIN_BASE`` = ``<base>``). No conda channel is
reachable here, so ``conda env create --file F --prefix P`` does not install packages: it checks
F the way conda and pip would read it and makes P an environment whose ``python`` is this
interpreter *without* its site processing (``-S``: no ``.pth`` files, so an editable install of
featnorm is not importable), its site-packages appended to ``PYTHONPATH`` for the third-party
packages. A rule then finds featnorm only if the workflow puts the checkout on ``PYTHONPATH``.

Checks of F: every pip requirement parses (PEP 508) or is a pip option; a local path (``-e X``,
``./X``, ``../X``, ``/X``, ``file:``) is resolved against F's folder (conda runs pip there:
``conda/env/installers/pip.py`` sets ``pip_workdir`` to the env file's folder) and must be a
project folder. Every call is appended as one JSON line to ``$CONDA_STANDIN_RECORD``.
"""

from __future__ import annotations

import json
import os
import sys
import sysconfig
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement

CONDA_VERSION = "24.7.1"  # Snakemake's MIN_CONDA_VER
PIP_OPTIONS = ("--extra-index-url", "--index-url", "--find-links")


def record(entry: dict) -> None:
    with open(os.environ["CONDA_STANDIN_RECORD"], "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def local_path(spec: str) -> str | None:
    spec = spec.removeprefix("-e ").removeprefix("--editable ").strip()
    if spec.startswith(("file:", ".", "/")):
        return spec.removeprefix("file://").removeprefix("file:")
    return None


def check_env_file(env_file: Path) -> list[str]:
    """Problems conda or pip would hit with ``env_file`` (empty when none)."""
    problems = []
    spec = yaml.safe_load(env_file.read_text())
    pip: list[str] = []
    for dep in spec.get("dependencies", []):
        if isinstance(dep, dict):
            pip += dep.get("pip", [])
    for entry in pip:
        path = local_path(entry)
        if path is not None:
            folder = (env_file.parent / path).resolve()
            if not ((folder / "pyproject.toml").is_file() or (folder / "setup.py").is_file()):
                problems.append(
                    f"pip: {entry!r}, resolved against {env_file.parent} (the env "
                    f"file's folder), is {folder}: not a Python project"
                )
        elif not entry.startswith(PIP_OPTIONS):
            try:
                Requirement(entry)
            except InvalidRequirement as err:
                problems.append(f"pip: {entry!r} is not a requirement: {err}")
    return problems


def create_env(prefix: Path) -> None:
    bin_dir = prefix / "bin"
    bin_dir.mkdir(parents=True)
    site = sysconfig.get_paths()["purelib"]
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'echo "$0" >> "$CONDA_STANDIN_RECORD.python"\n'
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec {sys.executable} -S "$@"\n'
    )
    python.chmod(0o755)


def main(argv: list[str]) -> int:
    record({"argv": argv, "cwd": os.getcwd()})
    if argv == ["--version"]:
        print(f"conda {CONDA_VERSION}")
    elif argv[:2] == ["info", "--json"]:
        print(
            json.dumps(
                {
                    "conda_prefix": os.environ["CONDA_STANDIN_BASE"],
                    "platform": "linux-64",
                    "conda_version": CONDA_VERSION,
                }
            )
        )
    elif argv[:2] == ["config", "--get"]:
        print(json.dumps({"get": {"channel_priority": "strict"}}))
    elif argv[:2] == ["env", "create"]:
        env_file = Path(argv[argv.index("--file") + 1])
        prefix = Path(argv[argv.index("--prefix") + 1])
        record({"env_file": str(env_file), "content": env_file.read_text()})
        problems = check_env_file(env_file)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
        create_env(prefix)
    elif argv[:1] == ["clean"]:
        pass  # Snakemake's --conda-cleanup-pkgs (default tarballs): nothing was downloaded
    else:
        print(
            f"conda stand-in: {argv} is not something Snakemake was expected to ask",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
