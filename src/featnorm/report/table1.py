"""The seed's Table 1: Pearson r of each norm column with BRISQUE, per model (``table1.csv``
and ``table1.md``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.analysis.columns import BRISQUE_COLUMN

__all__ = ["DEMO_NOTE", "SEED_SIGN_NOTE", "SEED_TABLE1", "Table1", "table1", "table1_markdown"]

# Kim & Sohn, Table 1: Pearson r of AdaFace's norm with BRISQUE on CASIA-WebFace.
SEED_TABLE1 = {"feature_norm": 0.053, "feature_norm_z": 0.204}
# Why Table 1 shows the seed's numbers without reading them as agreement or disagreement.
SEED_SIGN_NOTE = (
    "Kim & Sohn's values are shown as printed. Their sign convention is ambiguous (the "
    "paper's reading of a positive r does not match BRISQUE's lower-is-better scale), so featnorm "
    "does not read them as agreement or disagreement with BRISQUE."
)
DEMO_NOTE = (
    "The embedded demo is a **pipeline check on synthetic data**, not a replication of "
    "Kim & Sohn: a small model trained on a few thousand rendered faces."
)
# per model, the columns <model>_<column> of table1.csv, in this order
_MODEL_COLUMNS = (
    "r",
    "ci_low",
    "ci_high",
    "n",
    "quality_aligned_r",
    "quality_aligned_ci_low",
    "quality_aligned_ci_high",
)


@dataclass(frozen=True)
class Table1:
    """``frame``: the table as ``table1.csv`` holds it; ``models``: its models, in column order."""

    frame: pd.DataFrame
    models: list[str]


def table1(correlations: pd.DataFrame) -> Table1:
    """The seed's Table 1 in form: Pearson r of each norm column with BRISQUE, per model.

    Parameters
    ----------
    correlations : DataFrame
        ``correlation_table`` outputs of all models, concatenated.

    Returns
    -------
    Table1
        ``frame``: one row per norm column (``feature_norm``, ``feature_norm_z``, other
        policies), columns ``norm``, ``seed_r`` (Kim & Sohn's value as printed, where they
        report one), ``seed_sign`` (``ambiguous`` beside every seed value: see
        ``SEED_SIGN_NOTE``) and per model ``<model>_r``, ``<model>_ci_low``,
        ``<model>_ci_high``, ``<model>_n``, ``<model>_quality_aligned_r`` (and its
        ``_ci_low``/``_ci_high``). Signed r: agreement with BRISQUE is negative;
        quality-aligned r: agreement is positive.
    """
    sel = correlations[
        (correlations["y"] == BRISQUE_COLUMN) & (correlations["method"] == "pearson")
    ]
    out = pd.DataFrame({"norm": pd.unique(sel["x"])})
    out["seed_r"] = out["norm"].map(SEED_TABLE1)
    out["seed_sign"] = np.where(out["seed_r"].notna(), "ambiguous", "")
    models = []
    for model, part in sel.groupby("model", sort=False):
        p = part.set_index("x")
        for col in _MODEL_COLUMNS:
            out[f"{model}_{col}"] = out["norm"].map(p[col])
        models.append(str(model))
    return Table1(out, models)


def table1_markdown(table: Table1, *, confidence: float, demo: bool = False) -> str:
    """Markdown rendering of ``table1`` with the sign convention and CI method stated.

    ``demo``: the correlations come from the embedded demo dataset; the table then says it is
    a pipeline check on synthetic data, not a replication.
    """
    models = table.models
    pct = f"{confidence * 100:g} %"
    head = (
        "| norm | Kim & Sohn (as printed) | "
        + " | ".join(f"{m}: r [{pct} CI] (n) | {m}: quality-aligned r" for m in models)
        + " |"
    )
    lines = [
        "# Table 1: Pearson correlation of the feature norm with BRISQUE",
        "",
        "Signed r. BRISQUE is lower for better images, so a norm that agrees with BRISQUE "
        "has a **negative** r; the quality-aligned r flips the sign (positive = agrees). "
        "Intervals: cluster bootstrap resampling classes (percentile).",
        "",
        SEED_SIGN_NOTE,
        "",
    ]
    if demo:
        lines += [DEMO_NOTE, ""]
    lines += [head, "|" + "---|" * (2 + 2 * len(models))]
    for _, row in table.frame.iterrows():
        seed = "" if pd.isna(row["seed_r"]) else f"{row['seed_r']:.3f} (sign ambiguous)"
        cells = []
        for m in models:
            r, lo, hi, n = (row[f"{m}_{c}"] for c in ("r", "ci_low", "ci_high", "n"))
            cells.append("n/a" if pd.isna(r) else f"{r:+.3f} [{lo:+.3f}, {hi:+.3f}] ({int(n)})")
            qa = row.get(f"{m}_quality_aligned_r", np.nan)
            cells.append("n/a" if pd.isna(qa) else f"{qa:+.3f}")
        lines.append(f"| {row['norm']} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
