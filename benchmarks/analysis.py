"""Analysis cost against data size: the workflow's analysis steps on synthetic CASIA-, WebFace4M-
and WebFace12M-size tables, each step a real ``python -m featnorm`` job, with its wall time, CPU
time and peak resident memory.

Per size: synthetic Parquet tables (manifest, 8 BRISQUE and 8 embedding shards; a long-tailed
class-size law, BRISQUE and feature norms with class effects) are written to a temporary folder,
then ``merge`` (merge, all four standardisation policies, class statistics), ``correlate`` (21
rows), ``differences`` (12), ``decompose`` (5) and ``by-class-size`` (150 band rows) run one
after the other as the workflow runs them, with 1,000 cluster-bootstrap replicates. Each step's
peak RSS and CPU time come from ``os.wait4`` on its process (what SLURM's ``mem_mb`` and
``runtime`` must cover). Sizes given as ROWS:CLASSES; ``casia``, ``webface4m`` and
``webface12m`` name the three studies. The acceptance ratio compares sizes within one run.

Run: ``python benchmarks/analysis.py --sizes casia webface4m [webface12m]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from featnorm import options, tableio

SHARDS = 8  # the demo's default shard count
SIZE_BINS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]  # the schema's default class-size bands
# rows, classes of the studies the issue names (CASIA-WebFace: 494k images of 10,575 identities)
SIZES = {
    "casia": (500_000, 10_000),
    "webface4m": (4_200_000, 205_000),
    "webface12m": (12_000_000, 617_000),
}
POLICIES = list(options.STANDARDISATION_POLICIES)
METHODS = list(options.CORRELATION_METHODS)


def synthetic_tables(rows: int, classes: int, seed: int):
    """Manifest, BRISQUE and embedding tables with a power-law class-size distribution."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, classes + 1) ** 0.8  # long tail; every class gets >= 1 image
    sizes = 1 + rng.multinomial(rows - classes, weights / weights.sum())
    labels = np.repeat(np.arange(classes), sizes)
    effect = rng.normal(size=classes)
    quality = rng.uniform(size=rows)
    manifest = pd.DataFrame(
        {
            "sample_id": np.arange(rows, dtype=np.int64),
            "path": pd.Series(np.arange(rows)).map("img/{:08d}.jpg".format),
            "label": labels.astype(np.int64),
            "class_name": pd.Series(labels).map("id{:06d}".format),
        }
    )
    brisque = pd.DataFrame(
        {
            "sample_id": manifest["sample_id"],
            "brisque": 60 - 30 * quality + rng.normal(0, 5, rows),
            "status": "ok",
        }
    )
    norm = 20 + 0.5 * np.log(sizes)[labels] + effect[labels] + quality + rng.normal(0, 1, rows)
    embed = pd.DataFrame(
        {
            "sample_id": manifest["sample_id"],
            "feature_norm": norm.astype(np.float32),
            "status": "ok",
        }
    )
    return manifest, brisque, embed


def write_inputs(folder: Path, rows: int, classes: int) -> None:
    """The merge step's inputs: manifest.parquet and SHARDS BRISQUE and embedding shards."""
    manifest, brisque, embed = synthetic_tables(rows, classes, seed=0)
    tableio.write_table(manifest, folder / "manifest.parquet")
    for k, idx in enumerate(np.array_split(np.arange(rows), SHARDS)):
        tableio.write_table(brisque.iloc[idx], folder / f"brisque-{k}.parquet")
        tableio.write_table(embed.iloc[idx], folder / f"embed-{k}.parquet")


def steps(folder: Path, replicates: int) -> dict[str, list[str]]:
    """The command line of every analysis step, as the workflow's rules call them."""
    samples = str(folder / "samples.parquet")
    shared = ["--samples", samples, "--model", "bench", "--policies", *POLICIES]
    boot = ["--replicates", str(replicates), "--confidence", "0.95", "--seed", "0"]
    shards = [str(folder / f"{{}}-{k}.parquet") for k in range(SHARDS)]
    return {
        "merge_samples": [
            "merge",
            "--manifest",
            str(folder / "manifest.parquet"),
            "--brisque",
            *(s.format("brisque") for s in shards),
            "--embed",
            *(s.format("embed") for s in shards),
            "--model",
            "bench",
            "--policies",
            *POLICIES,
            "--min-class-size",
            "2",
            "--ddof",
            "1",
            "--residual-degree",
            "2",
            "--samples",
            samples,
            "--class-stats",
            str(folder / "class_stats.parquet"),
        ],
        "correlate": ["correlate", *shared, "--methods", *METHODS, *boot]
        + ["--output", str(folder / "correlations.csv")],
        "paired_differences": ["differences", *shared, "--methods", *METHODS, *boot]
        + ["--output", str(folder / "differences.csv")],
        "decompose_correlations": ["decompose", *shared, *boot]
        + ["--output", str(folder / "decomposition.csv")],
        "correlate_by_class_size": ["by-class-size", *shared, "--methods", *METHODS]
        + ["--size-bins", *map(str, SIZE_BINS), *boot]
        + ["--output", str(folder / "by_class_size.csv")],
    }


def run_step(argv: list[str], log: Path, env: dict[str, str]) -> dict[str, float]:
    """Run one ``python -m featnorm`` step: its job wall s, its own time as it logs it (after
    start-up and imports), CPU s and peak RSS (GB) from ``wait4``."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "featnorm", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}); see {log}")
    done = re.search(r"step \S+ done in ([0-9.]+) s", log.read_text())
    return {
        "wall_s": time.perf_counter() - started,
        "step_s": float(done.group(1)) if done else float("nan"),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_gb": usage.ru_maxrss * 1024 / 1e9,  # ru_maxrss is in KiB on Linux
    }


def measure(name: str, rows: int, classes: int, replicates: int, env: dict[str, str]) -> dict:
    """Every step's cost at one size (temporary folder, removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix=f"featnorm-bench-{name}-") as tmp:
        folder = Path(tmp)
        write_inputs(folder, rows, classes)
        result = {"size": name, "rows": rows, "classes": classes, "steps": {}}
        for step, argv in steps(folder, replicates).items():
            result["steps"][step] = run_step(argv, folder / f"{step}.log", env)
            print(f"{name:>11} {step:24} " + _cost(result["steps"][step]), flush=True)
    return result


def _cost(c: dict[str, float]) -> str:
    return (
        f"{c['step_s']:7.1f} s step {c['wall_s']:7.1f} s job {c['cpu_s']:7.1f} s CPU "
        f"{c['peak_gb']:6.2f} GB peak"
    )


def _size(spec: str) -> tuple[str, int, int]:
    if spec in SIZES:
        return (spec, *SIZES[spec])
    rows, classes = spec.split(":")
    return (spec, int(rows), int(classes))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["casia", "webface4m"], type=_size)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--json", help="also write the measurements here")
    p.add_argument("--src", help="measure the featnorm package in this src folder instead")
    args = p.parse_args()
    env = dict(os.environ)
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    results = [
        measure(name, rows, classes, args.replicates, env) for name, rows, classes in args.sizes
    ]
    print(f"\nload average {os.getloadavg()}, cores {os.cpu_count()}")
    keys = ("step_s", "wall_s", "cpu_s")
    ref = {k: sum(s[k] for s in results[0]["steps"].values()) for k in keys}
    for res in results:
        total = {k: sum(s[k] for s in res["steps"].values()) for k in keys}
        peak = max(s["peak_gb"] for s in res["steps"].values())
        print(
            f"{res['size']:>11} ({res['rows']:,} rows / {res['classes']:,} classes): "
            f"{total['step_s']:.1f} s in the steps (x{total['step_s'] / ref['step_s']:.1f}), "
            f"{total['wall_s']:.1f} s as jobs (x{total['wall_s'] / ref['wall_s']:.1f}), "
            f"{total['cpu_s']:.1f} s CPU (x{total['cpu_s'] / ref['cpu_s']:.1f}), "
            f"peak {peak:.2f} GB"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
