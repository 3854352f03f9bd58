"""Print the findings tables of docs/results.md from the outputs of workflow runs.

    python docs/results.py results                        # every model of one run
    python docs/results.py results --models demo_seed1 demo_seed2
    python docs/results.py "seed 0=results" "seed 1=../other/results"   # runs side by side

One column per model (``label/model`` when a run is given a label), one row per finding; every
cell is read from the model's ``correlations.csv``, ``differences.csv`` and ``edc.csv`` and its
``models/<model>/training_curve.csv`` (trained models), never recomputed. Intervals are the
analysis' cluster-bootstrap intervals. Nothing here is needed to run featnorm.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

#: (row label, x, y, method) of correlations.csv; signed r (agreement with BRISQUE is r < 0)
CORRELATION_ROWS = [
    ("Spearman(class size, class mean norm)", "class_size", "class_norm_mean", "spearman"),
    ("Pearson r(norm, BRISQUE)", "feature_norm", "brisque", "pearson"),
    ("Pearson r(z-scored norm, BRISQUE)", "feature_norm_z", "brisque", "pearson"),
    ("Spearman(norm, true quality)", "feature_norm", "true_quality", "spearman"),
    ("Spearman(z-scored norm, true quality)", "feature_norm_z", "true_quality", "spearman"),
]
#: (row label, x, reference, y, method) of differences.csv
DIFFERENCE_ROWS = [
    (
        "paired delta r(z) − r(norm), BRISQUE",
        "feature_norm_z",
        "feature_norm",
        "brisque",
        "pearson",
    ),
]
#: discarded fraction of the EDC rows (the FMR and the split are options: by default 1e-3 and
#: held-out pairs, the pairs of images the model was not trained on)
EDC_DISCARD_LIMIT = 0.2
EDC_QUALITIES = ["true_quality", "feature_norm", "feature_norm_z", "brisque"]
CAPTION = (
    "Signed r, so agreement with BRISQUE is r < 0; cluster-bootstrap intervals over identities"
    " at the analysis' confidence level (95 % by default). EDC: {split} pairs, FMR {fmr:g},"
    " discarded fraction up to 0.2; gap closed = (random − pAUC) / (random − ideal)."
    " Made by `python docs/results.py`."
)


def _ci(r: float, lo: float, hi: float) -> str:
    return f"{r:+.3f} [{lo:+.3f}, {hi:+.3f}]".replace("-", "−")


def _one(table: pd.DataFrame, what: str, **key) -> pd.Series:
    match = table.loc[(table[list(key)] == pd.Series(key)).all(axis=1)]
    if len(match) != 1:
        raise SystemExit(f"{what}: {len(match)} rows for {key}, expected 1")
    return match.iloc[0]


def model_column(results: Path, model: str, edc: dict) -> dict[str, str]:
    """Row label -> cell for one model of one run; ``edc``: the split and FMR of the EDC rows."""
    out = results / model
    cells: dict[str, str] = {}
    curve = results / "models" / model / "training_curve.csv"
    if curve.is_file():
        accuracy = pd.read_csv(curve)["train_accuracy"].iloc[-1]
        cells["training accuracy (last epoch)"] = f"{accuracy:.3f}"
    corr = pd.read_csv(out / "correlations.csv")
    for label, x, y, method in CORRELATION_ROWS:
        row = _one(corr, f"{out}/correlations.csv", x=x, y=y, method=method)
        cells[label] = _ci(row["r"], row["ci_low"], row["ci_high"])
    diff = pd.read_csv(out / "differences.csv")
    for label, x, reference, y, method in DIFFERENCE_ROWS:
        row = _one(diff, f"{out}/differences.csv", x=x, reference=reference, y=y, method=method)
        cells[label] = _ci(row["delta"], row["ci_low"], row["ci_high"])
    edc_file = out / "edc.csv"
    if edc_file.is_file():
        rows = pd.read_csv(edc_file)
        if edc["split"] not in set(rows["split"]):
            splits = sorted(set(rows["split"]))
            raise SystemExit(f"{edc_file}: no {edc['split']!r} pairs; --edc-split one of {splits}")
        footing = edc | {"discard_limit": EDC_DISCARD_LIMIT}
        row = _one(rows, str(edc_file), quality="random", **footing)
        cells["EDC: FNMR at zero discard"] = f"{row['fnmr_at_0']:.3f}"
        for quality in EDC_QUALITIES:
            gap = _one(rows, str(edc_file), quality=quality, **footing)["gap_closed"]
            # undefined (—) where random = ideal: no errors to discard, or nothing but errors
            cells[f"EDC: gap closed by {quality}"] = "—" if pd.isna(gap) else f"{gap:+.2f}"
    return cells


def table(runs: list[tuple[str, Path]], models: list[str] | None, edc: dict) -> str:
    columns: dict[str, dict[str, str]] = {}
    for label, results in runs:
        found = sorted(p.parent.name for p in results.glob("*/correlations.csv"))
        if not found:
            raise SystemExit(f"{results}: no <model>/correlations.csv; run the workflow first")
        for model in models or found:
            if model in found:
                columns[f"{label}/{model}" if label else model] = model_column(results, model, edc)
    if not columns:
        raise SystemExit(f"none of the models {models} in {[str(r) for _, r in runs]}")
    rows = list(dict.fromkeys(k for cells in columns.values() for k in cells))
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(c.get(row, "—") for c in columns.values()) + " |")
    lines.append("\n(" + CAPTION.format(**edc) + ")")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="results folder of a run, or LABEL=folder")
    p.add_argument("--models", nargs="+", help="only these models, in this order")
    p.add_argument("--edc-split", default="holdout", help="pairs of the EDC rows (edc.csv split)")
    p.add_argument("--edc-fmr", type=float, default=1e-3, help="FMR of the EDC rows")
    args = p.parse_args(argv)
    runs = [
        (r.split("=", 1)[0], Path(r.split("=", 1)[1])) if "=" in r else ("", Path(r))
        for r in args.runs
    ]
    print(table(runs, args.models, {"split": args.edc_split, "fmr": args.edc_fmr}))


if __name__ == "__main__":
    main()
