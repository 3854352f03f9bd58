"""Analysis throughput: 500,000 images in 10,000 classes through merge, statistics, every
standardisation policy, correlations, paired differences, the within/between split and the
class-size bands, with 1,000 cluster-bootstrap replicates (target: <= 60 s on 2 cores).

Writes synthetic Parquet shards (a long-tailed class-size law like CASIA-WebFace's, BRISQUE and
feature norms with class effects) to a temporary folder, reads them back as the workflow does
and logs the time of each stage. Run: ``python benchmarks/correlations.py [--rows N --classes G]``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from featnorm import options, tableio
from featnorm.analysis import (
    class_stats,
    columns,
    contrast_tables,
    correlations,
    merge,
    standardisation,
)

logger = logging.getLogger("benchmarks.analysis")
SHARDS = 8  # the demo's default shard count
SIZE_BINS = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]  # the schema's default class-size bands


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
            "path": pd.Series(np.arange(rows)).map("img/{:07d}.jpg".format),
            "label": labels.astype(np.int64),
            "class_name": pd.Series(labels).map("id{:05d}".format),
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=500_000)
    p.add_argument("--classes", type=int, default=10_000)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=list(options.CORRELATION_METHODS))
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    manifest, brisque, embed = synthetic_tables(args.rows, args.classes, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tableio.write_table(manifest, tmp / "manifest.parquet")
        for k, idx in enumerate(np.array_split(np.arange(args.rows), SHARDS)):
            tableio.write_table(brisque.iloc[idx], tmp / f"brisque-{k}.parquet")
            tableio.write_table(embed.iloc[idx], tmp / f"embed-{k}.parquet")
        times = {}
        t0 = time.perf_counter()
        m = tableio.read_table(tmp / "manifest.parquet")
        b = pd.concat([tableio.read_table(tmp / f"brisque-{k}.parquet") for k in range(SHARDS)])
        e = pd.concat([tableio.read_table(tmp / f"embed-{k}.parquet") for k in range(SHARDS)])
        merged = merge.merge_samples(m, b, e)
        times["read + merge"] = time.perf_counter() - t0
        t = time.perf_counter()
        samples, _ = standardisation.standardise(
            merged,
            policies=list(options.STANDARDISATION_POLICIES),
            min_class_size=2,
            ddof=1,
            residual_degree=2,
        )
        times["standardise (4 policies)"] = time.perf_counter() - t
        t = time.perf_counter()
        class_stats.class_stats(samples)
        times["class statistics"] = time.perf_counter() - t
        t = time.perf_counter()
        corr = correlations.correlation_table(
            samples,
            model="bench",
            x_columns=columns.norm_columns(list(options.STANDARDISATION_POLICIES)),
            methods=args.methods,
            replicates=args.replicates,
            confidence=0.95,
            seed=0,
        )
        times[f"correlations ({len(corr)} rows, {args.replicates} replicates)"] = (
            time.perf_counter() - t
        )
        shared = {
            "model": "bench",
            "x_columns": columns.norm_columns(list(options.STANDARDISATION_POLICIES)),
            "replicates": args.replicates,
            "confidence": 0.95,
            "seed": 0,
        }
        t = time.perf_counter()
        diff = contrast_tables.differences_table(samples, methods=args.methods, **shared)
        times[f"paired differences ({len(diff)} rows)"] = time.perf_counter() - t
        t = time.perf_counter()
        dec = contrast_tables.decomposition_table(samples, **shared)
        times[f"within/between split ({len(dec)} rows)"] = time.perf_counter() - t
        t = time.perf_counter()
        bands = contrast_tables.by_class_size_table(
            samples, methods=args.methods, size_bins=SIZE_BINS, **shared
        )
        times[f"class-size bands ({len(bands)} rows)"] = time.perf_counter() - t
        t = time.perf_counter()
        tableio.write_table(samples, tmp / "samples.parquet")
        times["write samples"] = time.perf_counter() - t
        total = time.perf_counter() - t0
    for name, secs in times.items():
        logger.info("%-45s %6.2f s", name, secs)
    logger.info(
        "total for %d rows in %d classes: %.2f s (target <= 60 s)", args.rows, args.classes, total
    )


if __name__ == "__main__":
    main()
