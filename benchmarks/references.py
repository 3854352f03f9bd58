"""Face-quality references throughput: 500,000 synthetic 512-d embeddings in 10,000 identities
with a CASIA-like long tail, and a 512 x 10,000 margin head: centre_similarity, SDD-FIQA
(m = 24, k = 12) and the CR-FIQA certainty ratio, as the references step computes them
(target: <= 120 s on 2 cores).

Class sizes follow a Zipf law n(rank) = largest * rank^-a (a solved so that they sum to the
image count; the largest class as CASIA-WebFace's, about 800), so the within-class work (sum of
n^2) is that of a long-tailed set, not of equal classes. Embeddings are float16 unit vectors (an
identity centre plus noise that grows as a per-image quality falls), as the embed step stores
them; the head's columns are the identity centres plus noise. Prints each reference's wall and
CPU time (with ``--threads 1``, the rule's, CPU time is the wall time on a free core), the peak
resident memory (``getrusage`` maxrss), the load average and the Spearman
rho of each reference with the planted quality (a sanity check, not a target). Run:
``python benchmarks/references.py [--images N --identities G --largest L]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import time

import numpy as np
from scipy import optimize, stats

from featnorm import threads
from featnorm.quality import references

DIM = 512


def class_sizes(images: int, identities: int, largest: int) -> np.ndarray:
    """Zipf class sizes (at least 2) summing to ``images``, the largest ``largest``."""
    rank = np.arange(1, identities + 1, dtype=np.float64)

    def excess(a: float) -> float:
        return np.maximum(2, np.round(largest * rank**-a)).sum() - images

    a = optimize.brentq(excess, 0.0, 5.0)
    sizes = np.maximum(2, np.round(largest * rank**-a)).astype(np.int64)
    sizes[-1] += images - sizes.sum()  # rounding remainder on the smallest class
    return sizes


def synthetic(sizes: np.ndarray, seed: int):
    """Labels, per-image quality in (0, 1), float16 unit embeddings, built in blocks, and a head
    (DIM x classes) whose columns are the identity centres plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    quality = rng.uniform(size=len(labels))
    centres = rng.standard_normal((len(sizes), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    emb = np.empty((len(labels), DIM), np.float16)
    block = 50_000
    for s in range(0, len(labels), block):
        lab, q = labels[s : s + block], quality[s : s + block]
        noise = rng.standard_normal((len(lab), DIM)).astype(np.float32)
        noise *= ((0.5 + 2.5 * (1 - q)) / np.sqrt(DIM)).astype(np.float32)[:, None]
        x = centres[lab] + noise
        emb[s : s + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
    head = centres.T + rng.standard_normal((DIM, len(sizes))).astype(np.float32) * 0.02
    return labels, quality, emb, head


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=500_000)
    p.add_argument("--identities", type=int, default=10_000)
    p.add_argument("--largest", type=int, default=800, help="images of the largest class")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (the rule's threads)")
    args = p.parse_args()
    threads.set_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sizes = class_sizes(args.images, args.identities, args.largest)
    labels, quality, emb, head = synthetic(sizes, seed=0)
    codes = labels  # already 0 .. G - 1
    runs = {
        references.CENTRE_SIMILARITY: lambda: references.centre_similarity(emb, codes),
        references.SDD_QUALITY: lambda: references.sdd_quality(
            emb, codes, references.SddSettings()
        ),
        references.CERTAINTY_RATIO: lambda: references.certainty_ratio(emb, labels, head),
    }
    print(
        f"\n{len(labels)} images x {DIM}, {len(sizes)} identities of {sizes.min()}..{sizes.max()} "
        f"images (median {int(np.median(sizes))}; sum of n^2 = {int((sizes**2).sum()):,}); "
        f"head {DIM} x {head.shape[1]}; {args.threads} BLAS thread(s)"
    )
    total_wall = total_cpu = 0.0
    for name, run in runs.items():
        wall, cpu = time.perf_counter(), time.process_time()
        values = run()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall += wall
        total_cpu += cpu
        rho = stats.spearmanr(values, quality, nan_policy="omit").statistic
        print(f"  {name:20s} {wall:7.1f} s wall {cpu:7.1f} s CPU   rho(planted quality) {rho:+.3f}")
    print(f"  {'total':20s} {total_wall:7.1f} s wall {total_cpu:7.1f} s CPU  (target <= 120 s)")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  peak resident memory {peak_mb:,.0f} MB; embeddings (float16) "
        f"{emb.nbytes / 2**20:,.0f} MB; load average {os.getloadavg()}; cores {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
