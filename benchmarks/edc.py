"""EDC throughput: 500,000 synthetic 512-d embeddings in 10,000 identities, 1M genuine and 1M
impostor pairs drawn and scored, 8 quality proxies x 2 FMRs x 2 discard limits with 200
cluster-bootstrap replicates (target: <= 120 s on 2 cores).

The embeddings are float16 unit vectors, as the embed step stores them: an identity centre plus
noise whose size falls with a per-image quality, so the proxies (quality with more or less noise)
carry real information. Prints the time of each stage, the peak resident memory
(``resource.getrusage`` maxrss) and the load average. Run:
``python benchmarks/edc.py [--images N --identities G --replicates B]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time

import numpy as np
import pandas as pd

from featnorm.evaluation import edc, pairs

logger = logging.getLogger("benchmarks.edc")
DIM = 512
PROXIES = 8
FMRS = [1e-3, 1e-2]
LIMITS = [0.2, 0.3]


def synthetic(images: int, identities: int, seed: int):
    """Labels, per-image quality in (0, 1) and float16 unit embeddings, built in blocks."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, identities, size=images))
    quality = rng.uniform(size=images)
    centres = rng.standard_normal((identities, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    emb = np.empty((images, DIM), np.float16)
    block = 50_000
    for s in range(0, images, block):
        lab, q = labels[s : s + block], quality[s : s + block]
        noise = rng.standard_normal((len(lab), DIM)).astype(np.float32)
        noise *= ((0.5 + 2.5 * (1 - q)) / np.sqrt(DIM)).astype(np.float32)[:, None]
        x = centres[lab] + noise
        emb[s : s + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return labels, quality, emb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=500_000)
    p.add_argument("--identities", type=int, default=10_000)
    p.add_argument("--genuine-per-class", type=int, default=100)
    p.add_argument("--impostors", type=int, default=1_000_000)
    p.add_argument("--replicates", type=int, default=200)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    times = {}
    t0 = time.perf_counter()
    labels, quality, emb = synthetic(args.images, args.identities, seed=0)
    times["synthesise (not part of the target)"] = time.perf_counter() - t0
    samples = pd.DataFrame({"sample_id": np.arange(args.images, dtype=np.int64), "label": labels})
    started = time.perf_counter()
    table = pairs.pairs_table(
        samples,
        emb,
        max_genuine_per_class=args.genuine_per_class,
        impostor_pairs_per_stratum=args.impostors,
        seed=0,
    )
    times["draw + score pairs"] = time.perf_counter() - started
    t1 = time.perf_counter()
    gen = table[table["genuine"]]
    a = gen["sample_id_a"].to_numpy()
    b = gen["sample_id_b"].to_numpy()
    rng = np.random.default_rng(1)
    qualities = {}
    for k in range(PROXIES):  # quality seen through more and more noise
        proxy = quality + rng.normal(0, 0.1 * k, size=len(quality))
        qualities[f"proxy_{k}"] = edc.pair_quality(proxy, a, b)
    result = edc.edc(
        gen["score"].to_numpy(),
        labels[a],
        table.loc[~table["genuine"], "score"].to_numpy(),
        qualities,
        fmrs=FMRS,
        limits=LIMITS,
        step=0.001,
        replicates=args.replicates,
        confidence=0.95,
        seed=0,
    )
    times["EDC + bootstrap"] = time.perf_counter() - t1
    total = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\n{args.images} images x {DIM}, {args.identities} identities; "
        f"{int(table['genuine'].sum())} genuine + {int((~table['genuine']).sum())} impostor "
        f"pairs; {PROXIES} proxies (+ ideal, random) x {len(FMRS)} FMRs x {len(LIMITS)} "
        f"limits; {args.replicates} replicates"
    )
    for name, sec in times.items():
        print(f"  {name:40s} {sec:7.1f} s")
    print(f"  {'total (pairs + EDC)':40s} {total:7.1f} s  (target <= 120 s)")
    print(
        f"  peak resident memory {peak_mb:,.0f} MB; embeddings (float16) "
        f"{emb.nbytes / 2**20:,.0f} MB; load average {os.getloadavg()}; "
        f"cores {os.cpu_count()}"
    )
    best = result.table.query("fmr == 0.001 and discard_limit == 0.2")[
        ["quality", "pauc", "ci_low", "ci_high"]
    ]
    print(best.to_string(index=False))


if __name__ == "__main__":
    main()
