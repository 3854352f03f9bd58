"""Independent recomputation of a finished run's paired differences, within/between split and
limma shrinkage z (not a test module: run it by hand after a workflow run).

It shares no code with featnorm: numpy/pandas/scipy only on results/<model>/samples.parquet, a
plain pandas-loop cluster bootstrap with its own seed, pandas group operations for the two levels,
and Smyth (2004)'s formulas with trigamma inverted by brentq for the shrinkage z.

Run: ``python tests/scripts/independent_analysis.py results [MODEL]``; exits non-zero when delta,
r_within, r_between, the between shares or the shrinkage z differ by more than 1e-6, or a delta
CI bound by more than 0.02 from the plain bootstrap (Monte Carlo error of two 1000/2000-draw
percentile bounds).
"""

import sys

import numpy as np
import pandas as pd
from scipy import optimize, special

results, model = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "demo")
s = pd.read_parquet(f"{results}/{model}/samples.parquet")
diff = pd.read_csv(f"{results}/{model}/differences.csv")
dec = pd.read_csv(f"{results}/{model}/decomposition.csv")
ok = s[s["status"] == "ok"]
print(f"{len(s)} images, {s['label'].nunique()} classes, {len(ok)} ok")

# 1. paired delta (Pearson, BRISQUE) and a plain, separately seeded cluster bootstrap
rng = np.random.default_rng(2026)
B = 2000
worst_delta, worst_ci = 0.0, 0.0
for _, row in diff[(diff["method"] == "pearson") & (diff["y"] == "brisque")].iterrows():
    part = ok[["label", row["x"], "feature_norm", "brisque"]].dropna()
    delta = part[row["x"]].corr(part["brisque"]) - part["feature_norm"].corr(part["brisque"])
    labels = part["label"].unique()
    groups = {g: part[part["label"] == g] for g in labels}
    reps = []
    for _ in range(B):
        res = pd.concat([groups[g] for g in rng.choice(labels, size=len(labels))])
        reps.append(res[row["x"]].corr(res["brisque"]) - res["feature_norm"].corr(res["brisque"]))
    lo, hi = np.nanquantile(reps, [0.025, 0.975])
    worst_delta = max(worst_delta, abs(delta - row["delta"]))
    worst_ci = max(worst_ci, abs(lo - row["ci_low"]), abs(hi - row["ci_high"]))
    print(
        f"  {row['x']}: delta {row['delta']:+.6f} vs {delta:+.6f}; CI [{row['ci_low']:+.4f}, "
        f"{row['ci_high']:+.4f}] vs plain [{lo:+.4f}, {hi:+.4f}]"
    )
print(f"delta: max |diff| = {worst_delta:.2e}; CI bounds: max |diff| = {worst_ci:.4f}")

# 2. within/between split by pandas group operations
worst = 0.0
for _, row in dec.iterrows():
    part = ok[["label", row["x"], row["y"]]].dropna()
    x, y = part[row["x"]], part[row["y"]]
    cx = x - part.groupby("label")[row["x"]].transform("mean")
    cy = y - part.groupby("label")[row["y"]].transform("mean")
    r_within = (cx * cy).sum() / np.sqrt((cx**2).sum() * (cy**2).sum())
    means = part.groupby("label")[[row["x"], row["y"]]].mean()
    r_between = means[row["x"]].corr(means[row["y"]]) if means[row["x"]].std() > 1e-9 else np.nan
    n = part.groupby("label").size()
    share_x = (n * (means[row["x"]] - x.mean()) ** 2).sum() / ((x - x.mean()) ** 2).sum()
    share_y = (n * (means[row["y"]] - y.mean()) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    for mine, theirs in (
        (r_within, row["r_within"]),
        (r_between, row["r_between"]),
        (share_x, row["between_share_x"]),
        (share_y, row["between_share_y"]),
    ):
        if np.isnan(mine) and np.isnan(theirs):
            continue
        worst = max(worst, abs(mine - theirs))
print(f"decomposition ({len(dec)} rows): max |diff| of r_within, r_between, shares = {worst:.2e}")

# 3. shrinkage z from Smyth (2004)'s formulas, trigamma inverted by brentq
norm = s[["label", "feature_norm"]].dropna()
g = norm.groupby("label")["feature_norm"]
n, var = g.size(), g.var(ddof=1)
d = (n - 1).astype(float)
keep = d > 0
e = np.log(var[keep]) - special.digamma(d[keep] / 2) + np.log(d[keep] / 2)
excess = e.var(ddof=1) - special.polygamma(1, d[keep] / 2).mean()
if excess > 0:
    d0 = 2 * optimize.brentq(lambda t: special.polygamma(1, t) - excess, 1e-10, 1e10, xtol=1e-14)
    s0 = np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2))
    moderated = (d0 * s0 + d * var.fillna(0)) / (d0 + d)
else:
    d0, s0 = np.inf, np.exp(e.mean())
    moderated = pd.Series(s0, index=n.index)
z = (norm["feature_norm"] - g.transform("mean")) / np.sqrt(norm["label"].map(moderated))
worst_z = np.max(np.abs(z - s.loc[norm.index, "feature_norm_shrinkage_z"]))
print(
    f"shrinkage z: s0^2 = {s0:.6g}, d0 = {d0:.6g}; max |diff| over {len(z)} images = {worst_z:.2e}"
)

failed = worst_delta > 1e-6 or worst_ci > 0.02 or worst > 1e-6 or worst_z > 1e-6
print("FAILED" if failed else "all within tolerance")
sys.exit(1 if failed else 0)
