"""Independent check of the demo's contract on a finished run (not a test module: run it by hand
after a workflow run on the demo).

From ``pairs.parquet`` and ``samples.parquet`` only (numpy, pandas, scipy; no featnorm code), on
the held-out pairs at FMR 1e-3 and discard limit 0.2, as issue 19 asks:

* FNMR at zero discard, which must lie in [0.03, 0.5];
* the pAUC of discarding by ``true_quality`` (pair quality = the lower of the two images), of
  random discarding (FNMR x limit) and of ideal discarding (false non-matches first), each over
  f = k/n with the trapezoid rule, and ``gap_closed`` = (random - pAUC) / (random - ideal), which
  must be >= 0.5;
* Spearman's rho of the class mean of ``true_quality`` (training images) against class size,
  whose p-value must exceed 0.01;
* with ``--log``, the last ``final train accuracy`` of the training log, which must be >= 0.95.

Run: ``python tests/scripts/demo_acceptance.py results/demo [--log results/logs/train_demo_model/demo.log]``;
prints each quantity and exits non-zero when one misses its bound.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

FMR, LIMIT = 1e-3, 0.2


def threshold(impostors: np.ndarray, fmr: float) -> float:
    """The smallest impostor score v with share(scores >= v) <= fmr (just above all if none)."""
    values = np.sort(impostors.astype(np.float64))
    distinct = np.unique(values)
    at_or_above = len(values) - np.searchsorted(values, distinct, side="left")
    ok = np.nonzero(at_or_above / len(values) <= fmr)[0]
    return float(distinct[ok[0]]) if len(ok) else float(np.nextafter(values[-1], np.inf))


def pauc(order_key: np.ndarray, errors: np.ndarray, limit: float) -> float:
    """Area under FNMR(f) for f in [0, limit] after discarding the k = f n lowest keys (ties:
    expected errors spread evenly over the tied group)."""
    n = len(errors)
    frame = pd.DataFrame({"key": order_key, "err": errors.astype(float)})
    groups = frame.groupby("key", sort=True)["err"].agg(["sum", "size"])
    removed = np.zeros(n + 1)
    k = 0
    before = 0.0
    for g_err, g_size in groups.itertuples(index=False):
        j = np.arange(1, g_size + 1)
        removed[k + 1 : k + g_size + 1] = before + j * g_err / g_size
        k += g_size
        before += g_err
    fnmr = (errors.sum() - removed[:n]) / (n - np.arange(n))
    k_max = int(np.floor(limit * n))
    area = np.sum((fnmr[:k_max] + fnmr[1 : k_max + 1]) / 2) / n
    rest = limit - k_max / n
    if rest > 0 and k_max + 1 < n:
        at_limit = fnmr[k_max] + (fnmr[k_max + 1] - fnmr[k_max]) * rest * n
        area += (fnmr[k_max] + at_limit) / 2 * rest
    return float(area)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="results/<model>")
    parser.add_argument("--log", type=Path, help="the training log (train accuracy)")
    args = parser.parse_args()
    samples = pd.read_parquet(args.folder / "samples.parquet")
    pairs = pd.read_parquet(args.folder / "pairs.parquet")
    held = pairs[pairs["split"] == "holdout"]
    impostors = held.loc[~held["genuine"], "score"].to_numpy()
    genuine = held[held["genuine"]]
    t = threshold(impostors, FMR)
    errors = genuine["score"].to_numpy() < np.float32(t)
    fnmr0 = errors.mean()
    quality = samples.set_index("sample_id")["true_quality"].astype(float)
    pair_q = np.minimum(
        quality.reindex(genuine["sample_id_a"]).to_numpy(),
        quality.reindex(genuine["sample_id_b"]).to_numpy(),
    )
    random, ideal = fnmr0 * LIMIT, pauc(genuine["score"].to_numpy(), errors, LIMIT)
    p_true = pauc(pair_q, errors, LIMIT)
    gap = (random - p_true) / (random - ideal)
    train = samples[samples["split"] == "train"]
    per_class = train.groupby("label")["true_quality"].agg(["mean", "size"])
    rho, p_value = stats.spearmanr(per_class["mean"], per_class["size"])
    print(f"held-out pairs: {len(genuine)} genuine, {len(impostors)} impostor; threshold {t:.6f}")
    checks = [
        ("FNMR at zero discard", fnmr0, 0.03 <= fnmr0 <= 0.5),
        ("pAUC random", random, True),
        ("pAUC ideal", ideal, True),
        ("pAUC true_quality", p_true, True),
        ("gap_closed true_quality", gap, gap >= 0.5),
        (
            f"Spearman class mean true_quality vs class size (rho {rho:+.3f}), p",
            p_value,
            p_value > 0.01,
        ),
    ]
    if args.log is not None:
        found = re.findall(r"final train accuracy ([0-9.]+)", args.log.read_text())
        accuracy = float(found[-1]) if found else float("nan")
        checks.append(("final train accuracy", accuracy, accuracy >= 0.95))
    for name, value, ok in checks:
        print(f"{'ok ' if ok else 'BAD'} {name}: {value:.4f}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
