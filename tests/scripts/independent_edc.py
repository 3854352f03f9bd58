"""Independent recomputation of edc.csv from pairs.parquet and samples.parquet (not a test module:
run it by hand after a workflow run).

It shares no code with featnorm.evaluation.edc: plain pandas / Python loops, and a different discretisation
of the pAUC (one point per discarded pair, f = k/n, instead of featnorm's fixed grid), so
agreement within a few per cent checks the definitions, not the implementation against itself.

Run: ``python tests/scripts/independent_edc.py results/demo`` (prints one line per checked row and exits
non-zero when any value differs by more than 5 % + 5e-4).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

TOLERANCE_REL, TOLERANCE_ABS = 0.05, 5e-4


def threshold(impostors: list[float], fmr: float) -> float:
    """Plain loop over the distinct impostor scores, ascending: the first with FMR <= fmr."""
    values = sorted(set(impostors))
    n = len(impostors)
    above = {v: 0 for v in values}
    for s in impostors:
        above[s] += 1
    at_or_above = n
    for v in values:  # FMR(v) = share of scores >= v
        if at_or_above / n <= fmr:
            return v
        at_or_above -= above[v]
    return float(np.nextafter(np.float32(values[-1]), np.float32(np.inf)))


def pauc(quality: list[float], errors: list[bool], limit: float) -> float:
    """Trapezoid over f = k/n of FNMR after discarding k pairs, ties averaged, to f = limit."""
    n = len(quality)
    key = [(-np.inf if np.isnan(q) else q) for q in quality]
    order = sorted(range(n), key=lambda i: key[i])
    total_err = sum(errors)
    removed = [0.0] * (n + 1)  # expected errors among the first k discarded
    k = 0
    before = 0.0
    for _, group in itertools.groupby(order, key=lambda i: key[i]):
        members = list(group)
        g_err = sum(errors[i] for i in members)
        for j in range(1, len(members) + 1):
            removed[k + j] = before + j * g_err / len(members)
        k += len(members)
        before += g_err
    fnmr = [(total_err - removed[k]) / (n - k) for k in range(n)]
    area = 0.0
    k_max = int(np.floor(limit * n))
    for k in range(k_max):
        area += (fnmr[k] + fnmr[k + 1]) / 2 / n
    rest = limit - k_max / n
    if rest > 0 and k_max + 1 < n:
        at_limit = fnmr[k_max] + (fnmr[k_max + 1] - fnmr[k_max]) * rest * n
        area += (fnmr[k_max] + at_limit) / 2 * rest
    return area


def main(folder: Path) -> int:
    samples = pd.read_parquet(folder / "samples.parquet")
    pairs = pd.read_parquet(folder / "pairs.parquet")
    table = pd.read_csv(folder / "edc.csv")
    bad = 0
    for row in table.itertuples():
        if row.quality == "ideal":
            continue
        scope = pairs if row.split == "all" else pairs[pairs["split"] == row.split]
        imp = scope.loc[~scope["genuine"], "score"].astype(float).tolist()
        gen = scope[scope["genuine"]]
        t = threshold(imp, row.fmr)
        errors = (gen["score"].to_numpy() < np.float32(t)).tolist()
        fnmr0 = sum(errors) / len(errors)
        if row.quality == "random":
            p = fnmr0 * row.discard_limit
        else:
            q = samples.set_index("sample_id")[row.quality].astype(float)
            if row.quality == "brisque":
                q = -q
            qa = q.reindex(gen["sample_id_a"]).to_numpy()
            qb = q.reindex(gen["sample_id_b"]).to_numpy()
            p = pauc(np.minimum(qa, qb).tolist(), errors, row.discard_limit)
        checks = {
            "threshold": (t, row.threshold),
            "fnmr_at_0": (fnmr0, row.fnmr_at_0),
            "pauc": (p, row.pauc),
        }
        for name, (mine, theirs) in checks.items():
            ok = abs(mine - theirs) <= TOLERANCE_REL * abs(mine) + TOLERANCE_ABS
            bad += not ok
            print(
                f"{'ok ' if ok else 'BAD'} {row.split:8s} {row.quality:26s} fmr={row.fmr:<6g} "
                f"limit={row.discard_limit:<4g} {name:9s} independent={mine:.6f} "
                f"edc.csv={theirs:.6f} diff={mine - theirs:+.2e}"
            )
    print(f"{bad} value(s) outside 5 % + 5e-4")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
