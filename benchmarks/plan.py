"""Planning time: `snakemake -n --cores 1` on the demo config, this checkout against another.

Snakemake parses the workflow on the login node and again inside every SLURM job, so what
`common.smk` imports is paid per job. Each round runs the dry run once per checkout, in turn
(interleaved, so machine load hits both alike), in a fresh working directory holding that
checkout's config.yaml, with the checkout's ``src`` first on PYTHONPATH. Prints the median wall
time and CPU time (user + system of the snakemake process) of each, and their ratios.

Run: ``python benchmarks/plan.py --against /path/to/older/checkout [--rounds 7]``
(an older checkout: ``git worktree add /tmp/before <commit>``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def plan_seconds(checkout: Path, workdir: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one `snakemake -n` of ``checkout``'s demo config in ``workdir``."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    shutil.copy(checkout / "config.yaml", workdir / "config.yaml")
    env = dict(os.environ, PYTHONPATH=str(checkout / "src"))
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(checkout / "Snakefile"),
        "--directory",
        str(workdir),
        "--dry-run",
        "--cores",
        "1",
        "--quiet",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, required=True, help="another checkout")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    checkouts = {"this checkout": REPO, "against": args.against.resolve()}
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, checkout in checkouts.items():
                runs[name].append(plan_seconds(checkout, Path(tmp) / "work"))
    wall = {name: statistics.median(w for w, _ in r) for name, r in runs.items()}
    cpu = {name: statistics.median(c for _, c in r) for name, r in runs.items()}
    for name, checkout in checkouts.items():
        print(
            f"{name:14s} {checkout}: median wall {wall[name]:.2f} s, CPU {cpu[name]:.2f} s "
            f"(wall of each run: {', '.join(f'{w:.2f}' for w, _ in runs[name])})"
        )
    print(
        f"ratio against / this checkout: wall {wall['against'] / wall['this checkout']:.2f}x, "
        f"CPU {cpu['against'] / cpu['this checkout']:.2f}x"
    )


if __name__ == "__main__":
    main()
