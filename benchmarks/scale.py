"""Scale benchmark: a synthetic CASIA-like dataset of N images through the full workflow.

What it does, in order:

1. **Demo checkpoint, once.** A small demo dataset (``featnorm manifest --format demo``) and
   ``featnorm train-demo`` give an ``ir_demo`` checkpoint under ``OUT/model/``; every scale run
   passes it as ``models.demo.checkpoint`` so training does not grow with N. Reused if present.
2. **Dataset, once per N** (not measured): N JPEG face images drawn with ``featnorm.data.demo``'s
   renderer and degradations, identities with a CASIA-WebFace-like long tail (identities =
   N x 10,575 / 494,414, 2 .. 800 images per identity, Zipf exponent solved so sizes sum to N).
   Two worker processes render; the main process writes each JPEG to the image folder
   ``DATA/imagefolder/<class>/<i>.jpg`` and streams the same bytes into the insightface RecordIO
   pair ``DATA/recordio/train.{rec,idx}`` (``write_recordio``, tests/support).
3. **Workflow, once per format**, through the real ``snakemake --cores C`` on this repository's
   Snakefile, in ``OUT/runs/<format>-<N>/`` with the default analysis settings, ``--shards``
   static shards and ``embed.device: cpu``. Measured: the wall time of the run, Snakemake's own
   CPU time (its process only, sampled from /proc), the machine's load average, and then the wall
   time of a second run where everything is up to date (Snakemake's fixed cost: parsing, DAG,
   file checks).
4. **Per job**, from Snakemake's benchmark TSVs (``results/benchmarks/**.tsv``): wall ``s``,
   ``cpu_time`` and ``max_rss`` (MiB), aggregated per rule.
5. **Checks**: the manifest holds N rows; shards, BRISQUE and embedding tables hold every
   manifest ``sample_id`` exactly once, with status counts; ``samples.parquet`` has N rows and
   ``class_stats`` sums to N; the two formats give the same per-class statistics.
6. **Projection** to CASIA-WebFace (494,414 images): each rule's job time is fitted as
   ``a + b * N`` over every result JSON of the same format in ``OUT`` (proportional to N when only
   one size exists), then combined for C cores (per-shard stages divide by C, single jobs do not)
   and for one GPU node (BRISQUE on its CPU cores, embedding bound by the GPU or by decoding).

Writes ``OUT/scale-<N>.json`` and prints a markdown report; when results for other sizes are in
``OUT``, the report compares per-shard peak memory across sizes.

Timings are upper bounds on a shared machine: the load average during each run is recorded.

Usage (from the repository root)::

    python benchmarks/scale.py --images 10000
    python benchmarks/scale.py --images 100000 --clean      # then remove the generated data
    python benchmarks/scale.py --images 100000 --gpu-embed-ips 4000   # a measured GPU figure
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from featnorm import tableio
from featnorm.data import demo
from featnorm.data.sources import read_image
from featnorm.embedding import models

# the RecordIO writer lives in tests/support, beside the tests, because the installed featnorm
# only reads RecordIO
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.recordio_writer import write_recordio  # noqa: E402

logger = logging.getLogger("benchmarks.scale")

REPO = Path(__file__).resolve().parents[1]
CASIA_IMAGES = 494_414  # CASIA-WebFace as distributed (insightface faces_webface_112x112)
CASIA_IDENTITIES = 10_575
CASIA_MAX_PER_ID = 800  # CASIA's largest identities hold roughly this many images
MIN_PER_ID = 2  # CASIA's smallest identities
MODEL_NAME = "demo"
MODEL_ARCH = "ir_demo"
# demo model: trained once on a small demo (a few thousand images, ~1-2 min on 2 cores)
CHECKPOINT_DEMO = {"identities": 96, "min_images": 4, "max_images": 48, "seed": 0}
CHECKPOINT_TRAIN = {"epochs": 3, "batch_size": 32, "lr": 0.1, "seed": 0}
PER_SHARD_RULES = ("score_brisque", "embed_shard")
# threads each rule's job takes (workflow/rules/*.smk); others take 1
RULE_THREADS = {"embed_shard": 2, "train_demo_model": 2, "score_brisque": 1}
LOAD_SAMPLE_S = 2.0  # load average / Snakemake CPU sampling interval
DECODE_PROBE_IMAGES = 2000  # images timed for the decode + preprocess cost (GPU-node projection)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------
# dataset
# ---------------------------------------------------------------------------------------------


def casia_like_sizes(n_images: int) -> np.ndarray:
    """Images per identity, (identities,) int64 descending, summing exactly to ``n_images``.

    Identities scale with CASIA's ratio; sizes follow ``featnorm.data.demo.class_sizes`` (Zipf law
    clipped to [2, 800]) with the exponent found by bisection, then the remainder is spread one
    image at a time over the largest identities that have room.
    """
    identities = max(2, round(n_images * CASIA_IDENTITIES / CASIA_IMAGES))
    max_images = min(CASIA_MAX_PER_ID, n_images // 4)
    if n_images < identities * MIN_PER_ID or max_images < MIN_PER_ID:
        raise ValueError(f"--images {n_images} is too small; use at least 1000")

    def sizes_for(a: float) -> np.ndarray:
        return demo.class_sizes(
            demo.DemoParams(
                identities=identities, min_images=MIN_PER_ID, max_images=max_images, zipf_exponent=a
            )
        )

    lo, hi = 0.0, 10.0  # sum decreases with the exponent
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sizes_for(mid).sum() > n_images else (lo, mid)
    sizes = sizes_for(hi).copy()
    step = 1 if n_images > sizes.sum() else -1
    i = 0
    while sizes.sum() != n_images:
        k = i % len(sizes)
        if MIN_PER_ID <= sizes[k] + step <= max_images:
            sizes[k] += step
        i += 1
    return np.sort(sizes)[::-1]


def _render_identity(job: tuple[int, int, int]) -> tuple[int, list[bytes]]:
    """Worker: JPEG bytes of all images of identity ``label`` (featnorm.data.demo seeding scheme)."""
    seed, label, n = job
    traits = demo.identity_traits(seed, label)
    return label, [demo.image_file(seed, label, i, traits, "jpg")[0] for i in range(n)]


def build_dataset(data_dir: Path, n_images: int, *, seed: int, processes: int) -> dict:
    """Write the image folder and the RecordIO pair of the same images; reused when complete."""
    marker = data_dir / "dataset.json"
    sizes = casia_like_sizes(n_images)
    info = {
        "images": n_images,
        "identities": len(sizes),
        "max_per_identity": int(sizes[0]),
        "seed": seed,
        "sizes_checksum": int((sizes * np.arange(1, len(sizes) + 1)).sum()),
    }
    if (
        marker.is_file()
        and json.loads(marker.read_text()).get("sizes_checksum") == info["sizes_checksum"]
    ):
        logger.info("dataset of %d images already in %s", n_images, data_dir)
        return json.loads(marker.read_text())
    shutil.rmtree(data_dir, ignore_errors=True)
    folder, rec_root = data_dir / "imagefolder", data_dir / "recordio"
    rec_root.mkdir(parents=True)
    started = time.perf_counter()
    jobs = [(seed, label, int(n)) for label, n in enumerate(sizes)]
    total_bytes = 0

    def records():
        nonlocal total_bytes
        with mp.get_context("fork").Pool(processes) as pool:
            for label, blobs in pool.imap(_render_identity, jobs, chunksize=4):
                class_dir = folder / f"id{label:05d}"
                class_dir.mkdir(parents=True)
                for i, data in enumerate(blobs):
                    (class_dir / f"{i:04d}.jpg").write_bytes(data)
                    total_bytes += len(data)
                    yield label, data
                if label % 200 == 0:
                    logger.info("dataset: identity %d/%d", label, len(sizes))

    summary = write_recordio(rec_root, records())
    if summary.n_images != n_images:
        raise RuntimeError(f"wrote {summary.n_images} records, expected {n_images}")
    info.update(
        generation_s=round(time.perf_counter() - started, 1),
        jpeg_bytes=total_bytes,
        rec_bytes=summary.rec_path.stat().st_size,
    )
    marker.write_text(json.dumps(info, indent=1))
    logger.info(
        "dataset: %d images, %d identities, %.0f MB JPEG, in %.0f s",
        n_images,
        len(sizes),
        total_bytes / 1e6,
        info["generation_s"],
    )
    return info


# ---------------------------------------------------------------------------------------------
# checkpoint
# ---------------------------------------------------------------------------------------------


def demo_checkpoint(out: Path) -> tuple[Path, dict]:
    """Train the ir_demo checkpoint once on a small demo; returns its path and timings."""
    folder = out / "model"
    ckpt, info_path = folder / "checkpoint.ckpt", folder / "checkpoint.json"
    if ckpt.is_file() and info_path.is_file():
        return ckpt, json.loads(info_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.parquet"
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "featnorm",
            "manifest",
            "--format",
            "demo",
            "--demo",
            json.dumps(CHECKPOINT_DEMO),
            "--demo-dir",
            str(folder / "images"),
            "--output",
            str(manifest),
        ],
        check=True,
    )
    made = time.perf_counter()
    t = CHECKPOINT_TRAIN
    subprocess.run(
        [
            sys.executable,
            "-m",
            "featnorm",
            "train-demo",
            "--manifest",
            str(manifest),
            "--arch",
            MODEL_ARCH,
            "--epochs",
            str(t["epochs"]),
            "--batch-size",
            str(t["batch_size"]),
            "--lr",
            str(t["lr"]),
            "--seed",
            str(t["seed"]),
            "--threads",
            "2",
            "--precision",
            "fp32",
            "--output",
            str(ckpt),
        ],
        check=True,
    )
    info = {
        "demo": CHECKPOINT_DEMO,
        "train": t,
        "images": len(tableio.read_table(manifest)),
        "demo_s": round(made - started, 1),
        "train_s": round(time.perf_counter() - made, 1),
    }
    info_path.write_text(json.dumps(info, indent=1))
    shutil.rmtree(folder / "images")
    return ckpt, info


# ---------------------------------------------------------------------------------------------
# running the workflow
# ---------------------------------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float | None:
    """utime + stime of one process (not its children), seconds; None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15 of proc(5)


def run_snakemake(
    workdir: Path,
    cores: int,
    log_name: str,
    *,
    extra_args: Sequence[str] = (),
    sample: Callable[[float], None] | None = None,
    interval_s: float = LOAD_SAMPLE_S,
) -> dict:
    """Run snakemake in ``workdir``; wall time, Snakemake's own CPU seconds, load samples.

    ``extra_args`` go on the command line after ``--cores``; ``sample(elapsed_s)``, when given,
    is called every ``interval_s`` while Snakemake runs (e.g. to record GPU utilisation).
    """
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        str(cores),
        *extra_args,
    ]
    loads: list[float] = []
    cpu_s = 0.0
    with open(workdir / log_name, "w") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            loads.append(os.getloadavg()[0])
            cpu_s = _proc_cpu_s(proc.pid) or cpu_s
            if sample is not None:
                sample(time.perf_counter() - started)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=interval_s)
        wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"snakemake failed in {workdir} (exit {proc.returncode}); see {workdir / log_name}"
        )
    loads.append(os.getloadavg()[0])
    return {
        "wall_s": round(wall, 2),
        "snakemake_cpu_s": round(cpu_s, 2),
        "load_mean": round(statistics.fmean(loads), 2),
        "load_max": round(max(loads), 2),
        "command": " ".join(cmd),
    }


def write_config(workdir: Path, fmt: str, root: Path, *, shards: int, checkpoint: Path) -> None:
    config = {
        "dataset": {"format": fmt, "root": str(root)},
        "shards": shards,
        "models": {
            MODEL_NAME: {"family": "adaface", "arch": MODEL_ARCH, "checkpoint": str(checkpoint)}
        },
        "embed": {"device": "cpu"},
    }
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def job_table(results: Path) -> pd.DataFrame:
    """One row per job from Snakemake's benchmark TSVs: rule, job, s, cpu_time, max_rss (MiB)."""
    rows = []
    bench = results / "benchmarks"
    for tsv in sorted(bench.rglob("*.tsv")):
        rel = tsv.relative_to(bench)
        rule = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
        t = pd.read_csv(tsv, sep="\t")
        for col in ("max_rss", "cpu_time"):
            t[col] = pd.to_numeric(t[col], errors="coerce")
        rows.append(
            {
                "rule": rule,
                "job": str(rel.with_suffix("")),
                "s": float(t["s"].iloc[-1]),
                "cpu_time": float(t["cpu_time"].iloc[-1]),
                "max_rss": float(t["max_rss"].iloc[-1]),
            }
        )
    if not rows:
        raise RuntimeError(f"no benchmark TSVs under {bench}")
    return pd.DataFrame(rows)


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    g = jobs.groupby("rule")
    out = pd.DataFrame(
        {
            "jobs": g.size(),
            "sum_s": g["s"].sum(),
            "max_s": g["s"].max(),
            "cpu_s": g["cpu_time"].sum(),
            "rss_mean_mib": g["max_rss"].mean(),
            "rss_max_mib": g["max_rss"].max(),
        }
    )
    out["threads"] = [RULE_THREADS.get(r, 1) for r in out.index]
    return out.sort_values("sum_s", ascending=False)


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------


def _concat(paths) -> pd.DataFrame:
    return pd.concat([tableio.read_table(p) for p in sorted(paths)], ignore_index=True)


def reconcile(results: Path, n_images: int, identities: int, *, model: str = MODEL_NAME) -> dict:
    """Raise unless every per-image table holds every manifest row exactly once (``model``'s)."""
    manifest = tableio.read_table(results / "manifest.parquet")
    ids = manifest["sample_id"].to_numpy()
    problems = []
    if len(manifest) != n_images:
        problems.append(f"manifest has {len(manifest)} rows, expected {n_images}")
    if manifest["label"].nunique() != identities:
        problems.append(
            f"manifest has {manifest['label'].nunique()} classes, expected {identities}"
        )
    if not np.array_equal(ids, np.arange(len(manifest))):
        problems.append("manifest sample_id is not 0..N-1")
    tables = {
        "shards": _concat((results / "shards").glob("shard-*.parquet")),
        "brisque": _concat((results / "brisque").glob("shard-*.parquet")),
        "embed": _concat((results / "embed" / model).glob("shard-*.parquet")),
        "samples": tableio.read_table(results / model / "samples.parquet"),
    }
    status = {}
    for name, table in tables.items():
        if len(table) != len(manifest) or not np.array_equal(np.sort(table["sample_id"]), ids):
            problems.append(f"{name}: {len(table)} rows do not match the manifest's sample_ids")
        if "status" in table.columns:
            status[name] = {str(k): int(v) for k, v in table["status"].value_counts().items()}
    stats = tableio.read_table(results / model / "class_stats.parquet")
    if int(stats["n"].sum()) != n_images:
        problems.append(f"class_stats n sums to {int(stats['n'].sum())}, expected {n_images}")
    if problems:
        raise RuntimeError(f"{results}: counts do not reconcile: " + "; ".join(problems))
    return {
        "manifest_rows": len(manifest),
        "classes": identities,
        "status": status,
        "reconciled": True,
    }


def compare_formats(runs: dict[str, Path]) -> dict | None:
    """Largest per-class difference in n, BRISQUE mean and norm mean between the formats."""
    if len(runs) < 2:
        return None
    (fa, ra), (fb, rb) = list(runs.items())[:2]
    a = tableio.read_table(ra / MODEL_NAME / "class_stats.parquet").set_index("label").sort_index()
    b = tableio.read_table(rb / MODEL_NAME / "class_stats.parquet").set_index("label").sort_index()
    out = {
        "formats": [fa, fb],
        "same_classes": bool(a.index.equals(b.index)),
        "same_class_sizes": bool((a["n"] == b["n"]).all()),
    }
    for col in ("brisque_mean", "norm_mean"):
        out[f"{col}_max_abs_diff"] = float((a[col] - b[col]).abs().max())
    cols = ["x", "y", "method", "r"]
    ca = pd.read_csv(ra / MODEL_NAME / "correlations.csv")[cols]
    cb = pd.read_csv(rb / MODEL_NAME / "correlations.csv")[cols]
    merged = ca.merge(cb, on=["x", "y", "method"], suffixes=("_a", "_b"))
    out["r_max_abs_diff"] = float((merged["r_a"] - merged["r_b"]).abs().max())
    return out


def decode_cost(results: Path, images: int) -> float:
    """CPU seconds per image to decode and preprocess (the embed input side), one thread."""
    manifest = tableio.read_table(results / "manifest.parquet")
    paths = manifest["path"].iloc[:: max(1, len(manifest) // images)].tolist()[:images]
    cv2.setNumThreads(1)
    started = time.process_time()
    for i in range(0, len(paths), 64):
        batch = [read_image(p).image for p in paths[i : i + 64]]
        models.preprocess(batch, family="adaface")
    return (time.process_time() - started) / len(paths)


# ---------------------------------------------------------------------------------------------
# projection
# ---------------------------------------------------------------------------------------------


def fit_rule_times(results: list[dict], fmt: str, key: str) -> dict[str, tuple[float, float]]:
    """Per rule, (a, b) of ``key`` (summed over its jobs) = a + b * N over the runs of ``fmt``."""
    points: dict[str, list[tuple[int, float]]] = {}
    for res in results:
        run = res["runs"].get(fmt)
        if run:
            for rule, row in run["rules"].items():
                points.setdefault(rule, []).append((res["images"], row[key]))
    fits = {}
    for rule, pts in points.items():
        sizes = {n for n, _ in pts}
        if len(sizes) >= 2:
            n, t = np.array(pts, float).T
            b, a = np.polyfit(n, t, 1)
            if a < 0 or b < 0:  # noise on tiny stages: fall back to proportional
                a, b = 0.0, float(np.sum(t) / np.sum(n))
        else:
            n, t = pts[-1]
            a, b = 0.0, t / n
        fits[rule] = (float(a), float(b))
    return fits


# how each basis turns a rule's summed job figure into core-seconds: wall x threads, CPU as is
BASES = {"cpu": ("cpu_s", False), "wall": ("sum_s", True)}


def project(
    fits: dict,
    n_images: int,
    *,
    threads_scale: bool,
    cores_list,
    noop_s: float,
    gpu_embed_ips: float | None,
    decode_s_per_image: float,
    gpu_node_cores: int,
) -> dict:
    """Wall-time projection for ``n_images`` on C cores and on one GPU node (seconds).

    ``fits`` maps rule -> (a, b) of job seconds = a + b * N; with ``threads_scale`` they are wall
    seconds (multiplied by the rule's threads to give core-seconds), else CPU seconds.
    """
    parallel = serial = 0.0  # core-seconds of per-shard stages; seconds of single jobs
    for rule, (a, b) in fits.items():
        t = a + b * n_images
        if rule in PER_SHARD_RULES:
            parallel += t * (RULE_THREADS.get(rule, 1) if threads_scale else 1)
        else:
            serial += t
    cpu = {str(c): round(serial + parallel / c + noop_s, 1) for c in cores_list}
    a, b = fits.get("score_brisque", (0.0, 0.0))
    brisque_core_s = (a + b * n_images) * (RULE_THREADS["score_brisque"] if threads_scale else 1)
    a, b = fits.get("embed_shard", (0.0, 0.0))
    embed_core_s = (a + b * n_images) * (RULE_THREADS["embed_shard"] if threads_scale else 1)
    # GPU node: decoding runs on the node's CPU cores beside BRISQUE; the forward pass on the GPU
    decode_core_s = decode_s_per_image * n_images
    cpu_side = (brisque_core_s + decode_core_s) / gpu_node_cores
    gpu_side = n_images / gpu_embed_ips if gpu_embed_ips else 0.0
    gpu_node = serial + max(cpu_side, gpu_side) + noop_s
    return {
        "images": n_images,
        "serial_s": round(serial, 1),
        "per_shard_core_s": round(parallel, 1),
        "cpu_wall_s_by_cores": cpu,
        "embed_core_s": round(embed_core_s, 1),
        "brisque_core_s": round(brisque_core_s, 1),
        "gpu_node": {
            "cores": gpu_node_cores,
            "wall_s": round(gpu_node, 1),
            "decode_core_s": round(decode_core_s, 1),
            "gpu_forward_s": round(gpu_side, 1),
            "gpu_embed_ips": gpu_embed_ips,
            "measured_gpu": gpu_embed_ips is not None,
        },
    }


def projections(result: dict, others: list[dict], args: argparse.Namespace) -> dict:
    """Per format and basis (cpu, wall), the CASIA-WebFace projection."""
    out = {}
    for fmt, run in result["runs"].items():
        sizes = sorted({o["images"] for o in others if fmt in o["runs"]} | {result["images"]})
        out[fmt] = {"fitted_on_sizes": sizes}
        for basis, (key, threads_scale) in BASES.items():
            fits = fit_rule_times([*others, result], fmt, key)
            out[fmt][basis] = project(
                fits,
                CASIA_IMAGES,
                threads_scale=threads_scale,
                cores_list=args.project_cores,
                noop_s=run["noop"]["wall_s"],
                gpu_embed_ips=args.gpu_embed_ips,
                decode_s_per_image=result["decode_cpu_s_per_image"],
                gpu_node_cores=args.gpu_node_cores,
            )
    return out


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def markdown(result: dict, others: list[dict]) -> str:
    n = result["images"]
    lines = [
        f"### {n:,} images ({result['dataset']['identities']:,} identities, "
        f"{result['shards']} shards, --cores {result['cores']})",
        "",
    ]
    for fmt, run in result["runs"].items():
        r = run["run"]
        lines += [
            f"**{fmt}**: wall {r['wall_s']:.0f} s ({_hms(r['wall_s'])}), load average "
            f"mean {r['load_mean']} / max {r['load_max']} on {os.cpu_count()} cores; "
            f"Snakemake's own CPU {r['snakemake_cpu_s']:.1f} s; up-to-date re-run "
            f"{run['noop']['wall_s']:.1f} s; packed job time (sum s x threads / cores) "
            f"{run['packed_s']:.0f} s, so wall - packed = {r['wall_s'] - run['packed_s']:.0f} s "
            f"({(r['wall_s'] - run['packed_s']) / run['jobs']:.2f} s per job, {run['jobs']} jobs)",
            "",
            "| rule | jobs | sum s | max s | CPU s | ms/image (CPU) | peak RSS MiB (mean / max) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for rule, row in run["rules"].items():
            lines.append(
                f"| {rule} | {row['jobs']} | {row['sum_s']:.1f} | {row['max_s']:.1f} | "
                f"{row['cpu_s']:.1f} | {1e3 * row['cpu_s'] / n:.3f} | "
                f"{row['rss_mean_mib']:.0f} / {row['rss_max_mib']:.0f} |"
            )
        lines.append("")
    if result.get("format_comparison"):
        c = result["format_comparison"]
        lines += [
            f"Formats agree: same classes {c['same_classes']}, same sizes "
            f"{c['same_class_sizes']}, max |diff| per class: BRISQUE mean "
            f"{c['brisque_mean_max_abs_diff']:.2e}, norm mean {c['norm_mean_max_abs_diff']:.2e}; "
            f"correlations r {c['r_max_abs_diff']:.2e}.",
            "",
        ]
    sizes = sorted({o["images"] for o in others} | {n})
    if len(sizes) > 1:
        lines += [
            "Per-job peak RSS (MiB, max over jobs) by dataset size:",
            "",
            "| format | rule | " + " | ".join(f"{s:,}" for s in sizes) + " |",
            "|---|---|" + "---:|" * len(sizes),
        ]
        by_size = {o["images"]: o for o in others} | {n: result}
        for fmt in result["runs"]:
            rules = list(result["runs"][fmt]["rules"])
            for rule in rules:
                cells = []
                for s in sizes:
                    row = by_size[s]["runs"].get(fmt, {}).get("rules", {}).get(rule)
                    cells.append(f"{row['rss_max_mib']:.0f}" if row else "-")
                lines.append(f"| {fmt} | {rule} | " + " | ".join(cells) + " |")
        lines.append("")
    gpu_ips = None
    for fmt, proj in result["projection"].items():
        lines += [
            f"Projection to CASIA-WebFace ({CASIA_IMAGES:,} images), {fmt}, demo model, "
            f"fitted on sizes {proj['fitted_on_sizes']} (job time = a + b N per rule):",
            "",
            "| basis | "
            + " | ".join(f"{c} cores" for c in proj["cpu"]["cpu_wall_s_by_cores"])
            + " | one GPU node | single jobs s | per-shard core-h | BRISQUE core-h | "
            "embed core-h (CPU) |",
            "|---|" + "---:|" * (len(proj["cpu"]["cpu_wall_s_by_cores"]) + 5),
        ]
        for basis in BASES:
            p = proj[basis]
            g = p["gpu_node"]
            gpu_ips = g["gpu_embed_ips"]
            label = "CPU time (contention-free)" if basis == "cpu" else "wall time (upper bound)"
            lines.append(
                f"| {label} | "
                + " | ".join(_hms(s) for s in p["cpu_wall_s_by_cores"].values())
                + f" | {_hms(g['wall_s'])} | {p['serial_s']:.0f} | "
                f"{p['per_shard_core_s'] / 3600:.2f} | {p['brisque_core_s'] / 3600:.2f} | "
                f"{p['embed_core_s'] / 3600:.2f} |"
            )
        lines.append("")
    g_cores = next(iter(result["projection"].values()))["cpu"]["gpu_node"]["cores"]
    if gpu_ips:
        lines.append(
            f"GPU node ({g_cores} cores): embedding forward at the given measured "
            f"{gpu_ips:.0f} images/s, BRISQUE and decoding spread over the node's cores."
        )
    else:
        lines.append(
            f"GPU node ({g_cores} cores) is an ESTIMATE: no GPU throughput was given, so the "
            "forward pass is assumed not to be the bottleneck and the embedding stage is "
            f"bound by decoding + preprocessing ({1e3 * result['decode_cpu_s_per_image']:.2f} "
            "ms CPU per image, measured) spread with BRISQUE over the node's cores."
        )
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def finish(result: dict, out: Path, args: argparse.Namespace) -> int:
    """Project, render, write OUT/scale-N.json and print the report."""
    others = []
    for path in sorted(out.glob("scale-*.json")):
        other = json.loads(path.read_text())
        if other["images"] != result["images"] and other.get("shards") == result["shards"]:
            others.append(other)
    result["projection"] = projections(result, others, args)
    result.setdefault("loadavg_end", os.getloadavg())
    result["markdown"] = markdown(result, others)
    (out / f"scale-{result['images']}.json").write_text(json.dumps(result, indent=1, default=float))
    sys.stdout.write(result["markdown"] + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=100_000, help="dataset size N")
    p.add_argument(
        "--formats",
        nargs="+",
        default=["imagefolder", "recordio"],
        choices=["imagefolder", "recordio"],
    )
    p.add_argument("--shards", type=int, default=16, help="static shard count")
    p.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("/tmp/featnorm-scale"),
        help="results folder (JSON, runs, model, data)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="dataset folder (OUT/data-N)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gen-processes", type=int, default=2, help="rendering processes")
    p.add_argument(
        "--gpu-embed-ips",
        type=float,
        default=None,
        help="measured GPU embedding throughput (images/s) for the GPU-node projection",
    )
    p.add_argument("--gpu-node-cores", type=int, default=16, help="CPU cores of the GPU node")
    p.add_argument("--project-cores", type=int, nargs="+", default=[2, 16, 64])
    p.add_argument(
        "--report-only",
        action="store_true",
        help="recompute the projection and report from OUT/scale-N.json (no runs)",
    )
    p.add_argument(
        "--clean",
        action="store_true",
        help="remove the generated dataset and run folders at the end (JSON kept)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = (args.data_dir or out / f"data-{args.images}").resolve()

    if args.report_only:
        result = json.loads((out / f"scale-{args.images}.json").read_text())
        return finish(result, out, args)
    checkpoint, ckpt_info = demo_checkpoint(out)
    logger.info("checkpoint %s (%s)", checkpoint, ckpt_info)
    dataset = build_dataset(data_dir, args.images, seed=args.seed, processes=args.gen_processes)
    result = {
        "images": args.images,
        "shards": args.shards,
        "cores": args.cores,
        "cpu_count": os.cpu_count(),
        "dataset": dataset,
        "checkpoint": ckpt_info,
        "runs": {},
        "command": " ".join([sys.executable, *sys.argv]),
    }
    roots = {"imagefolder": data_dir / "imagefolder", "recordio": data_dir / "recordio"}
    result_dirs = {}
    for fmt in args.formats:
        workdir = out / "runs" / f"{fmt}-{args.images}"
        shutil.rmtree(workdir, ignore_errors=True)
        write_config(workdir, fmt, roots[fmt], shards=args.shards, checkpoint=checkpoint)
        logger.info("%s: running the workflow in %s", fmt, workdir)
        run = run_snakemake(workdir, args.cores, "snakemake.log")
        noop = run_snakemake(workdir, args.cores, "snakemake-noop.log")
        jobs = job_table(workdir / "results")
        rules = per_rule(jobs)
        packed = float((rules["sum_s"] * rules["threads"]).sum() / args.cores)
        checks = reconcile(workdir / "results", args.images, dataset["identities"])
        result_dirs[fmt] = workdir / "results"
        result["runs"][fmt] = {
            "run": run,
            "noop": noop,
            "jobs": len(jobs),
            "packed_s": round(packed, 1),
            "rules": rules.round(3).to_dict(orient="index"),
            "checks": checks,
        }
        logger.info(
            "%s: %.0f s wall, %d jobs, load %.1f", fmt, run["wall_s"], len(jobs), run["load_mean"]
        )
    result["format_comparison"] = compare_formats(result_dirs)
    first = next(iter(result_dirs.values()))
    result["decode_cpu_s_per_image"] = decode_cost(first, DECODE_PROBE_IMAGES)

    finish(result, out, args)
    if args.clean:
        shutil.rmtree(data_dir, ignore_errors=True)
        for fmt in args.formats:
            shutil.rmtree(out / "runs" / f"{fmt}-{args.images}", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
