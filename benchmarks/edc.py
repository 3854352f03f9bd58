"""EDC throughput: 500,000 synthetic 512-d embeddings in 10,000 identities, 1M genuine and 1M
impostor pairs drawn and scored, 8 quality proxies x 2 FMRs x 2 discard limits with 200
cluster-bootstrap replicates (target: <= 120 s on 2 cores); ``--size webface4m`` (4.2M images,
205k identities) and ``--size webface12m`` (12M, 617k) for the big studies.

The embeddings are float16 unit vectors, as the embed step stores them: an identity centre plus
noise whose size falls with a per-image quality, so the proxies (quality with more or less noise)
carry real information. With ``--scratch DIR`` they are written to a memory-mapped file there,
as the pairs step holds them (``read_embeddings(scratch=...)``). Prints the time of each stage,
each stage's peak anonymous and file-backed resident memory (``/proc/self/status`` sampled every
0.1 s), the process's peak RSS (``getrusage``) and the load average. Run:
``python benchmarks/edc.py [--size casia|webface4m|webface12m] [--images N --identities G
--genuine-per-class K --replicates B --scratch DIR]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from featnorm.evaluation import edc, pairs

logger = logging.getLogger("benchmarks.edc")
DIM = 512
PROXIES = 8
FMRS = [1e-3, 1e-2]
LIMITS = [0.2, 0.3]


SIZES = {"casia": (500_000, 10_000), "webface4m": (4_200_000, 205_000)}
SIZES["webface12m"] = (12_000_000, 617_000)


class PeakMemory:
    """Peak RssAnon and RssFile (GB) of this process while the ``with`` block runs, sampled, and
    the block's CPU seconds (``cpu_s``, all threads)."""

    def __enter__(self):
        self.anon = self.file = 0.0
        self._cpu = time.process_time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            fields = dict(
                line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
            )
            self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) * 1024 / 1e9)
            self.file = max(self.file, int(fields["RssFile"].split()[0]) * 1024 / 1e9)
            if self._stop.wait(0.1):
                return

    def __exit__(self, *exc) -> None:
        self.cpu_s = time.process_time() - self._cpu
        self._stop.set()
        self._thread.join()


def synthetic(images: int, identities: int, seed: int, scratch: str | None = None):
    """Labels, per-image quality in (0, 1) and float16 unit embeddings, built in blocks (in a
    memory-mapped file in ``scratch`` when given)."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, identities, size=images))
    quality = rng.uniform(size=images)
    centres = rng.standard_normal((identities, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if scratch is None:
        emb = np.empty((images, DIM), np.float16)
    else:
        path = Path(scratch) / "embeddings.f16"
        emb = np.memmap(path, dtype=np.float16, mode="w+", shape=(images, DIM))
    block = 50_000
    for s in range(0, images, block):
        lab, q = labels[s : s + block], quality[s : s + block]
        noise = rng.standard_normal((len(lab), DIM)).astype(np.float32)
        noise *= ((0.5 + 2.5 * (1 - q)) / np.sqrt(DIM)).astype(np.float32)[:, None]
        x = centres[lab] + noise
        emb[s : s + block] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return labels, quality, emb


def main() -> None:
    # long because: one straight measurement script, stage after stage
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="casia")
    p.add_argument("--images", type=int, help="default: the --size's")
    p.add_argument("--identities", type=int, help="default: the --size's")
    p.add_argument("--genuine-per-class", type=int, default=100)
    p.add_argument("--impostors", type=int, default=1_000_000)
    p.add_argument("--replicates", type=int, default=200)
    p.add_argument("--scratch", help="folder for the memory-mapped embeddings (default: memory)")
    args = p.parse_args()
    images = args.images or SIZES[args.size][0]
    identities = args.identities or SIZES[args.size][1]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    times, peaks = {}, {}
    scratch = tempfile.mkdtemp(dir=args.scratch) if args.scratch else None
    t0 = time.perf_counter()
    with PeakMemory() as peak:
        labels, quality, emb = synthetic(images, identities, seed=0, scratch=scratch)
    times["synthesise (not part of the target)"] = time.perf_counter() - t0
    peaks["synthesise (not part of the target)"] = peak
    samples = pd.DataFrame({"sample_id": np.arange(images, dtype=np.int64), "label": labels})
    started = time.perf_counter()
    with PeakMemory() as peak:
        table = pairs.pairs_table(
            samples,
            emb,
            max_genuine_per_class=args.genuine_per_class,
            impostor_pairs_per_stratum=args.impostors,
            seed=0,
        )
    times["draw + score pairs"] = time.perf_counter() - started
    peaks["draw + score pairs"] = peak
    del emb
    t1 = time.perf_counter()
    with PeakMemory() as peak:
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
    peaks["EDC + bootstrap"] = peak
    total = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(
        f"\n{images} images x {DIM}, {identities} identities; "
        f"{int(table['genuine'].sum())} genuine + {int((~table['genuine']).sum())} impostor "
        f"pairs; {PROXIES} proxies (+ ideal, random) x {len(FMRS)} FMRs x {len(LIMITS)} "
        f"limits; {args.replicates} replicates; embeddings "
        f"{'memory-mapped' if scratch else 'in memory'}"
    )
    for name, sec in times.items():
        print(
            f"  {name:40s} {sec:7.1f} s wall {peaks[name].cpu_s:7.1f} s CPU  "
            f"peak anonymous {peaks[name].anon:6.2f} GB, "
            f"file-backed {peaks[name].file:6.2f} GB"
        )
    print(f"  {'total (pairs + EDC)':40s} {total:7.1f} s  (target <= 120 s at casia size)")
    print(
        f"  peak resident memory {peak_gb:.2f} GB (getrusage); embeddings (float16) "
        f"{images * DIM * 2 / 1e9:.2f} GB; load average {os.getloadavg()}; "
        f"cores {os.cpu_count()}"
    )
    best = result.table.query("fmr == 0.001 and discard_limit == 0.2")[
        ["quality", "pauc", "ci_low", "ci_high"]
    ]
    print(best.to_string(index=False))
    if scratch:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
