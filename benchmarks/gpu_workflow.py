"""GPU workflow benchmark: the real workflow end to end, one GPU shared by the embed jobs.

What it does, in order (``benchmarks/gpu.sh`` calls it after the embedding sweep):

1. **Dataset** (timed, not part of the run): N synthetic CASIA-like faces, written as an image
   folder and as the insightface RecordIO pair of the same images, by
   ``benchmarks/scale.py``'s ``build_dataset`` (reused when already complete).
2. **Checkpoint**: the golden-recipe weights (``tests/support/recipe.py``) of ``--arch`` saved as a
   plain state dict, so the workflow loads a real checkpoint file of the real architecture
   without ``../shared`` or any download (speed does not depend on the weight values).
3. **Workflow**: ``snakemake --cores C --resources gpu=S --set-resources embed_shard:gpu=1
   --set-threads embed_shard=T`` on this repository's Snakefile with ``embed.device``,
   ``embed.precision``, ``embed.batch_size`` and ``embed.workers`` set. The resource is named
   ``gpu`` as in ``profiles/slurm`` (``set-resources: embed_shard: gpu: 1``); on one machine
   ``--resources gpu=S`` lets S embed jobs share the one GPU at a time (S=1: strictly one),
   while BRISQUE and the analysis run on the remaining cores.
4. **Sampling**, every ``--interval`` seconds while Snakemake runs: GPU utilisation and memory
   (``nvidia-smi --query-gpu``; NaN without a GPU) and how many ``python -m featnorm <step>`` jobs
   of this run are running (found in ``/proc`` by their working directory; DataLoader workers are
   not counted twice).
5. **Per stage**, from Snakemake's benchmark TSVs (``results/benchmarks/**.tsv``): jobs, summed
   and longest wall time, CPU time, peak RSS; for ``embed_shard`` also the embedding loop's own
   time and images from each job's log (``embedded N images in X s``), hence the stage's
   img/s and each job's start-up cost (job wall minus loop).
6. **Which stage bounds the run**: each sample's interval is attributed to embedding if an embed
   job ran, else to BRISQUE, else to another featnorm step, else to Snakemake itself (parsing,
   scheduling, job start before Python runs: idle waits). The largest share bounds the run; for
   embedding, the mean GPU utilisation while it ran says whether the GPU (>= 80 %) or the input
   side (decoding, job start-up) held it back.
7. **Checks**: every per-image table holds every manifest row exactly once, class sizes sum to N
   (``scale.reconcile``; raises otherwise).

Writes to ``--out``: ``workflow_stages.csv``, ``workflow_timeline.csv``, ``workflow.json``, and
appends a human-readable verdict to ``--summary`` (default ``OUT/summary.txt``).

    python benchmarks/gpu_workflow.py --images 100000 --device cuda --arch ir_101 \\
        --precision bf16 --cores 16 --out /tmp/gpu-out
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the golden-recipe weights live in tests/support, beside the tests, because the installed
# featnorm never uses them
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import scale  # noqa: E402  (benchmarks/scale.py: dataset, Snakemake runner, job tables, checks)
from support.recipe import golden_state_dict  # noqa: E402

from featnorm.embedding import models  # noqa: E402

logger = logging.getLogger("benchmarks.gpu_workflow")

MODEL_NAME = "gpu"  # the model's name in the workflow config (results/embed/gpu/...)
FAMILY = "adaface"
#: featnorm CLI step -> the timeline column counting its running jobs; other steps: other_jobs
STEP_COLUMNS = {"embed": "embed_jobs", "brisque": "brisque_jobs"}
#: attribution order of a sample's interval (first running category wins)
CATEGORIES = ("embed", "brisque", "other", "snakemake_idle")
GPU_BOUND_UTIL_PCT = 80.0  # mean GPU utilisation while embedding above which the GPU bounds it
_LOOP_LINE = re.compile(r"embedded (\d+) images in ([0-9.]+) s")
TIMELINE_COLUMNS = [
    "t_s",
    "gpu_util_pct",
    "gpu_mem_mib",
    "embed_jobs",
    "brisque_jobs",
    "other_jobs",
    "load1",
]


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------


def query_gpu() -> tuple[float, float]:
    """(utilisation %, memory used MiB) of GPU 0 from nvidia-smi; NaN, NaN without one."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                "--id=0",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        util, mem = (float(v) for v in out.strip().splitlines()[0].split(","))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return math.nan, math.nan
    return util, mem


def running_steps(workdir: Path) -> dict[str, int]:
    """featnorm steps running in ``workdir``: step -> jobs (child processes not counted)."""
    found: dict[int, tuple[str, int]] = {}  # pid -> (step, parent pid)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if Path(os.readlink(proc / "cwd")) != workdir:
                continue
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone, or not ours to read
        for i in range(len(argv) - 2):
            if argv[i] == b"-m" and argv[i + 1] == b"featnorm":
                found[int(proc.name)] = (argv[i + 2].decode(), ppid)
                break
    counts: dict[str, int] = {}
    for step, ppid in found.values():
        if ppid not in found:  # a DataLoader worker's parent is the job itself
            counts[step] = counts.get(step, 0) + 1
    return counts


class Timeline:
    """Called by ``scale.run_snakemake`` every interval; keeps one row per sample."""

    def __init__(self, workdir: Path, *, gpu: bool):
        self.workdir = workdir.resolve()
        self.gpu = gpu
        self.rows: list[dict] = []

    def __call__(self, elapsed_s: float) -> None:
        util, mem = query_gpu() if self.gpu else (math.nan, math.nan)
        steps = running_steps(self.workdir)
        row = {
            "t_s": round(elapsed_s, 2),
            "gpu_util_pct": util,
            "gpu_mem_mib": mem,
            "embed_jobs": 0,
            "brisque_jobs": 0,
            "other_jobs": 0,
            "load1": os.getloadavg()[0],
        }
        for step, n in steps.items():
            row[STEP_COLUMNS.get(step, "other_jobs")] += n
        self.rows.append(row)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=TIMELINE_COLUMNS)


# ---------------------------------------------------------------------------------------------
# analysis of a run
# ---------------------------------------------------------------------------------------------


def occupancy(timeline: pd.DataFrame, wall_s: float) -> pd.DataFrame:
    """Seconds of the run attributed to each category (embed > brisque > other > Snakemake).

    Sample ``i`` stands for the interval up to sample ``i + 1`` (the last one: up to
    ``wall_s``). Returns one row per category: ``attributed_s`` (sums to ``wall_s`` minus the
    time before the first sample), ``fraction`` of ``wall_s``, ``active_s`` (any job of the
    category running, overlaps included) and ``gpu_util_mean_pct`` over the attributed samples.
    """
    t = timeline["t_s"].to_numpy(dtype=float)
    dt = np.diff(np.append(t, max(wall_s, t[-1] if len(t) else 0.0)))
    running = {
        "embed": timeline["embed_jobs"].to_numpy() > 0,
        "brisque": timeline["brisque_jobs"].to_numpy() > 0,
        "other": timeline["other_jobs"].to_numpy() > 0,
    }
    running["snakemake_idle"] = ~(running["embed"] | running["brisque"] | running["other"])
    taken = np.zeros(len(t), dtype=bool)
    util = timeline["gpu_util_pct"].to_numpy(dtype=float)
    rows = []
    for category in CATEGORIES:
        mine = running[category] & ~taken
        taken |= mine
        rows.append(
            {
                "category": category,
                "attributed_s": float(dt[mine].sum()),
                "fraction": float(dt[mine].sum() / wall_s) if wall_s > 0 else math.nan,
                "active_s": float(dt[running[category]].sum()),
                "gpu_util_mean_pct": float(np.nanmean(util[mine]))
                if mine.any() and not np.isnan(util[mine]).all()
                else math.nan,
            }
        )
    return pd.DataFrame(rows)


def embed_loops(results: Path) -> pd.DataFrame:
    """Per embed job: images and the embedding loop's seconds, from its log."""
    rows = []
    for log in sorted((results / "logs" / "embed_shard" / MODEL_NAME).glob("shard-*.log")):
        match = _LOOP_LINE.search(log.read_text())
        if match is None:
            raise RuntimeError(f"{log}: no 'embedded N images in X s' line; did the job finish?")
        rows.append(
            {
                "job": f"embed_shard/{MODEL_NAME}/{log.stem}",
                "images": int(match[1]),
                "loop_s": float(match[2]),
            }
        )
    return pd.DataFrame(rows, columns=["job", "images", "loop_s"])


def stage_table(jobs: pd.DataFrame, loops: pd.DataFrame) -> pd.DataFrame:
    """``scale.per_rule`` plus, for embed_shard, its images, loop time, img/s and start-up."""
    rules = scale.per_rule(jobs)
    embed_jobs = jobs[jobs["rule"] == "embed_shard"].merge(loops, on="job", how="left")
    for col in ("images", "loop_s", "loop_ips", "startup_s_mean"):
        rules[col] = math.nan
    if len(embed_jobs):
        loop_s = embed_jobs["loop_s"].sum()
        rules.loc["embed_shard", "images"] = embed_jobs["images"].sum()
        rules.loc["embed_shard", "loop_s"] = loop_s
        rules.loc["embed_shard", "loop_ips"] = embed_jobs["images"].sum() / loop_s
        rules.loc["embed_shard", "startup_s_mean"] = (embed_jobs["s"] - embed_jobs["loop_s"]).mean()
    return rules.rename_axis("rule").reset_index()


def verdict(occ: pd.DataFrame) -> dict:
    """Which category bounds the run, and for embedding whether the GPU or its input side."""
    top = occ.loc[occ["attributed_s"].idxmax()]
    out = {"bound_by": str(top["category"]), "fraction": float(top["fraction"])}
    if out["bound_by"] == "embed":
        util = float(top["gpu_util_mean_pct"])
        out["gpu_util_mean_pct"] = util
        if math.isnan(util):
            out["detail"] = "embedding (no GPU counters: CPU run)"
        elif util >= GPU_BOUND_UTIL_PCT:
            out["detail"] = f"embedding, GPU-bound (GPU busy {util:.0f} % while embedding)"
        else:
            out["detail"] = (
                f"embedding, input-side bound (GPU busy only {util:.0f} % while "
                "embedding: decoding or job start-up)"
            )
    elif out["bound_by"] == "snakemake_idle":
        out["detail"] = "Snakemake itself (parsing, scheduling, job start-up before Python runs)"
    else:
        out["detail"] = f"{out['bound_by']} jobs"
    return out


# ---------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------


def write_checkpoint(folder: Path, arch: str) -> Path:
    """The golden-recipe weights of ``arch`` as a plain state dict file (reused if present)."""
    path = folder / f"{arch}-recipe.pt"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        model = models.build(FAMILY, arch)
        tmp = path.with_suffix(".tmp")
        torch.save(golden_state_dict(model), tmp)
        tmp.replace(path)
    return path


def write_config(workdir: Path, args: argparse.Namespace, root: Path, checkpoint: Path) -> dict:
    config = {
        "dataset": {"format": args.format, "root": str(root)},
        "shards": args.shards,
        "models": {
            MODEL_NAME: {"family": FAMILY, "arch": args.arch, "checkpoint": str(checkpoint)}
        },
        "embed": {
            "device": args.device,
            "batch_size": args.batch_size,
            "workers": args.workers,
            "precision": args.precision,
        },
    }
    if args.bootstrap_replicates is not None:
        config["analysis"] = {"bootstrap_replicates": args.bootstrap_replicates}
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return config


def summary_lines(result: dict, stages: pd.DataFrame) -> list[str]:
    run, v = result["run"], result["verdict"]
    lines = [
        f"== workflow: {result['images']:,} images ({result['format']}), {result['arch']} "
        f"{result['precision']} on {result['device']}, {result['shards']} shards, --cores "
        f"{result['cores']}, gpu slots {result['gpu_slots']} ==",
        f"wall {run['wall_s']:.1f} s; Snakemake's own CPU {run['snakemake_cpu_s']:.1f} s; "
        f"dataset generation {result['dataset'].get('generation_s', 'reused')} s (not in "
        "the wall time)",
        f"bounded by: {v['detail']} ({100 * v['fraction']:.0f} % of the wall time)",
        "rows reconcile: " + str(result["checks"]["reconciled"]),
        "",
        "occupancy (s of wall time; embed > brisque > other > snakemake_idle):",
    ]
    for row in result["occupancy"]:
        lines.append(
            f"  {row['category']:<15} {row['attributed_s']:8.1f} s  "
            f"{100 * row['fraction']:5.1f} %  active {row['active_s']:8.1f} s  "
            f"GPU util {row['gpu_util_mean_pct']:.0f} %"
        )
    lines += [
        "",
        "per stage (benchmark TSVs):",
        stages[
            ["rule", "jobs", "sum_s", "max_s", "cpu_s", "rss_max_mib", "loop_ips", "startup_s_mean"]
        ].to_string(index=False, float_format=lambda x: f"{x:.1f}"),
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=100_000, help="dataset size N")
    p.add_argument("--format", default="recordio", choices=["recordio", "imagefolder"])
    p.add_argument("--arch", default="ir_101")
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=3, help="decoding processes per embed job")
    p.add_argument("--embed-threads", type=int, default=4, help="threads of an embed job")
    p.add_argument(
        "--gpu-slots",
        type=int,
        default=2,
        help="embed jobs on the one GPU at once (--resources gpu=N)",
    )
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--cores", type=int, default=16, help="snakemake --cores")
    p.add_argument(
        "--bootstrap-replicates",
        type=int,
        default=None,
        help="analysis.bootstrap_replicates (default: the schema's)",
    )
    p.add_argument("--gen-processes", type=int, default=os.cpu_count() or 2)
    p.add_argument("--interval", type=float, default=1.0, help="sampling interval, s")
    p.add_argument(
        "--until",
        default=None,
        help="stop after this rule (snakemake --until; merge_samples still reconciles)",
    )
    p.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/featnorm-gpu"),
        help="dataset, checkpoint and run folder",
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the CSV/JSON results")
    p.add_argument("--summary", type=Path, default=None, help="text file to append the verdict to")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    # a time limit (gpu.sh runs each step under `timeout`) still leaves the timeline written
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)

    dataset = scale.build_dataset(
        work / f"data-{args.images}", args.images, seed=0, processes=args.gen_processes
    )
    checkpoint = write_checkpoint(work / "model", args.arch)
    workdir = work / f"run-{args.format}-{args.images}"
    shutil.rmtree(workdir, ignore_errors=True)
    config = write_config(workdir, args, work / f"data-{args.images}" / args.format, checkpoint)
    extra = [
        "--resources",
        f"gpu={args.gpu_slots}",
        "--set-resources",
        "embed_shard:gpu=1",
        "--set-threads",
        f"embed_shard={args.embed_threads}",
        "--show-failed-logs",
    ]  # a failed job's log lands in snakemake.log, hence in ours
    if args.until:
        extra += ["--until", args.until]
    timeline = Timeline(workdir, gpu=args.device == "cuda")
    logger.info("running the workflow in %s (%s)", workdir, " ".join(extra))
    try:
        run = scale.run_snakemake(
            workdir,
            args.cores,
            "snakemake.log",
            extra_args=extra,
            sample=timeline,
            interval_s=args.interval,
        )
    except RuntimeError:
        log = (workdir / "snakemake.log").read_text().splitlines()
        sys.stderr.write("\n".join(log[-60:]) + "\n")
        raise
    finally:
        timeline.table().to_csv(out / "workflow_timeline.csv", index=False)
    results = workdir / "results"
    stages = stage_table(scale.job_table(results), embed_loops(results))
    stages.to_csv(out / "workflow_stages.csv", index=False)
    occ = occupancy(timeline.table(), run["wall_s"])
    result = {
        "images": args.images,
        "format": args.format,
        "arch": args.arch,
        "precision": args.precision,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "shards": args.shards,
        "cores": args.cores,
        "gpu_slots": args.gpu_slots,
        "embed_threads": args.embed_threads,
        "workers": args.workers,
        "batch_size": args.batch_size,
        "cpu_count": os.cpu_count(),
        "until": args.until,
        "config": config,
        "dataset": dataset,
        "run": run,
        "occupancy": occ.to_dict(orient="records"),
        "verdict": verdict(occ),
        "checks": scale.reconcile(results, args.images, dataset["identities"], model=MODEL_NAME),
    }
    (out / "workflow.json").write_text(json.dumps(result, indent=1, default=float))
    text = "\n".join(summary_lines(result, stages))
    with open(args.summary or out / "summary.txt", "a") as f:
        f.write(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
