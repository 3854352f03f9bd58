"""``results/summary.md``: the study's findings in plain text, written from the result tables.

Every sentence is derived from the numbers it quotes; the wording follows the signs and whether
the cluster-bootstrap interval excludes zero, so the summary never claims more than the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.analysis.columns import (
    BRISQUE_COLUMN,
    BRISQUE_GIVEN_CLASS_SIZE,
    CLASS_SIZE_EFFECT,
    GROUND_TRUTH_QUALITY,
    NORM_COLUMN,
    QUALITY_REFERENCES,
    RowKey,
)
from featnorm.quality.references import CERTAINTY_RATIO, REFERENCE_COLUMNS
from featnorm.report.table1 import DEMO_NOTE, SEED_SIGN_NOTE, SEED_TABLE1
from featnorm.status import OK

logger = logging.getLogger(__name__)

# the registered references the summary names
BRISQUE, GROUND_TRUTH = (
    next(ref for ref in QUALITY_REFERENCES if ref.column == name)
    for name in (BRISQUE_COLUMN, GROUND_TRUTH_QUALITY)
)

__all__ = ["ModelResults", "edc_section", "render"]


@dataclass
class ModelResults:
    """What the summary needs of one model."""

    correlations: pd.DataFrame  # correlations.csv
    class_stats: pd.DataFrame  # class_stats.parquet
    samples: pd.DataFrame  # at least label, status, z_excluded
    standardise: dict  # the `standardise` metadata of samples.parquet
    # tests of the seed's claim (issue 10): differences.csv, decomposition.csv, by_class_size.csv
    differences: pd.DataFrame | None = None
    decomposition: pd.DataFrame | None = None
    by_class_size: pd.DataFrame | None = None
    # the `references_meta` metadata of samples.parquet (None: references off)
    references: dict | None = None


def _fmt(row: pd.Series, *, over_classes: bool = False) -> str:
    if not np.isfinite(row["r"]):
        return f"n/a ({row['flag']})"
    ci = (
        "no CI"
        if not np.isfinite(row["ci_low"])
        else f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
    )
    if over_classes:
        return f"{row['r']:+.3f} {ci}, n = {int(row['n'])} classes"
    return f"{row['r']:+.3f} {ci}, n = {int(row['n'])} images in {int(row['n_classes'])} classes"


def _excludes_zero(row: pd.Series) -> bool:
    return bool(np.isfinite(row["ci_low"]) and (row["ci_low"] > 0 or row["ci_high"] < 0))


def _pick(c: pd.DataFrame, key: RowKey) -> pd.Series | None:
    """The row of correlations.csv with ``key``'s x, y label and method, or None."""
    sel = c[(c["x"] == key.x) & (c["y"] == key.y.label) & (c["method"] == key.method)]
    return None if sel.empty else sel.iloc[0]


def _brisque_lines(c: pd.DataFrame) -> list[str]:
    """One line per norm column: its Pearson r with BRISQUE and what the sign means."""
    lines = []
    for x in pd.unique(c.loc[c["y"] == BRISQUE_COLUMN, "x"]):
        row = _pick(c, RowKey(x, BRISQUE, "pearson"))
        if row is None:
            continue
        agree = ""
        if _excludes_zero(row):
            agree = (
                " — agrees with BRISQUE (higher norm, better image)"
                if row["r"] < 0
                else " — *disagrees* with BRISQUE (higher norm, worse BRISQUE)"
            )
        else:
            agree = " — not distinguishable from zero"
        lines.append(f"- Pearson r({x}, BRISQUE) = {_fmt(row)}{agree}.")
    return lines


def _model_section(model: str, res: ModelResults, pct: str) -> list[str]:
    c = res.correlations
    s = res.samples
    ok = int((s["status"] == OK).sum())
    lines = [f"## Model `{model}`", ""]
    lines.append(
        f"- Images: {len(s)} in {s['label'].nunique()} classes; {ok} with both a "
        f"feature norm and a BRISQUE score (status ok), {len(s) - ok} without."
    )
    statuses = s.loc[s["status"] != OK, "status"].value_counts()
    if len(statuses):
        lines.append("  Not ok: " + ", ".join(f"{k}: {v}" for k, v in statuses.items()) + ".")
    info = res.standardise
    if info:
        lines.append(
            f"- Per-class z-score (ddof = {info.get('ddof')}): {info.get('z_excluded_classes')} "
            f"classes ({info.get('z_excluded_images')} images) excluded for fewer than "
            f"{info.get('min_class_size')} images or zero spread."
        )
    size = _pick(c, CLASS_SIZE_EFFECT)
    if size is not None:
        verdict = (
            ("rises" if size["r"] > 0 else "falls")
            if _excludes_zero(size)
            else "shows no clear trend"
        )
        lines.append(
            f"- Class-size effect: the mean feature norm of a class {verdict} with the "
            f"class size (Spearman over classes {_fmt(size, over_classes=True)})."
        )
    lines.extend(_brisque_lines(c))
    part = _pick(c, RowKey(NORM_COLUMN, BRISQUE_GIVEN_CLASS_SIZE, "partial_pearson"))
    if part is not None:
        lines.append(f"- Partial r(feature_norm, BRISQUE | log class size) = {_fmt(part)}.")
    if GROUND_TRUTH_QUALITY in set(c["y"]):
        lines.append("- Against the demo's ground-truth quality (higher = better; Spearman):")
        for x in pd.unique(c.loc[c["y"] == GROUND_TRUTH_QUALITY, "x"]):
            row = _pick(c, RowKey(x, GROUND_TRUTH, "spearman"))
            if row is not None:
                lines.append(f"  - {x}: {_fmt(row)}")
    lines.extend(_claim_lines(res, pct))
    lines.extend(_reference_lines(res))
    flagged = c[c["flag"].fillna("").astype(str) != ""]
    if len(flagged):
        lines.append(
            f"- {len(flagged)} statistic(s) flagged: "
            + "; ".join(f"{r.x} ~ {r.y} ({r.method}): {r.flag}" for r in flagged.itertuples())
            + "."
        )
    lines.append("")
    return lines


# ---------------------------------------------------------------------------------------------
# tests of the seed's claim: paired differences, within/between split, class-size bands
# ---------------------------------------------------------------------------------------------


def _ci(lo: float, hi: float) -> str:
    return "no CI" if not np.isfinite(lo) else f"[{lo:+.3f}, {hi:+.3f}]"


def _r_ci(r: float, lo: float, hi: float) -> str:
    return "n/a" if not np.isfinite(r) else f"{r:+.3f} {_ci(lo, hi)}"


def _difference_line(row: pd.Series, pct: str) -> str:
    """Did standardising change the agreement with BRISQUE, in which direction, with the CI."""
    if not np.isfinite(row["delta"]):
        return f"  - {row['x']}: n/a ({row['flag']})"
    if np.isfinite(row["ci_low"]) and (row["ci_low"] > 0 or row["ci_high"] < 0):
        verdict = (
            "**strengthened** agreement with BRISQUE"
            if row["quality_aligned_delta"] > 0
            else "**weakened** agreement with BRISQUE"
        )
        verdict = f"changed agreement: it {verdict} (the {pct} CI excludes 0)"
    else:
        verdict = f"no change distinguishable from zero (the {pct} CI includes 0)"
    return (
        f"  - {row['x']}: delta = {row['delta']:+.3f} {_ci(row['ci_low'], row['ci_high'])} "
        f"(r {row['r_x']:+.3f} vs {row['r_reference']:+.3f} on the same "
        f"{int(row['n'])} images; bootstrap p = {row['p_value']:.3g}): {verdict}."
    )


def _claim_lines(res: ModelResults, pct: str) -> list[str]:
    """Summary lines from differences.csv, decomposition.csv and by_class_size.csv."""
    lines: list[str] = []
    d = res.differences
    if d is not None and len(d):
        sel = d[(d["y"] == BRISQUE_COLUMN) & (d["method"] == "pearson")]
        if len(sel):
            lines.append(
                "- Does standardising change the agreement with BRISQUE? Paired "
                "delta = r(standardised, BRISQUE) - r(feature_norm, BRISQUE), Pearson, "
                "same images and same bootstrap draws (negative delta = closer to "
                "BRISQUE):"
            )
            lines.extend(_difference_line(row, pct) for _, row in sel.iterrows())
    dec = res.decomposition
    if dec is not None and len(dec):
        sel = dec[(dec["x"] == NORM_COLUMN) & (dec["y"] == BRISQUE_COLUMN)]
        if len(sel):
            r = sel.iloc[0]
            lines.append(
                f"- Two levels: {r['between_share_x']:.0%} of the feature norm's variance "
                f"(and {r['between_share_y']:.0%} of BRISQUE's) lies between classes. "
                "Within classes (class-centred) r = "
                f"{_r_ci(r['r_within'], r['r_within_ci_low'], r['r_within_ci_high'])}; between "
                "classes (class means, one point per class) r = "
                f"{_r_ci(r['r_between'], r['r_between_ci_low'], r['r_between_ci_high'])}. A "
                "within-class z-score keeps only the within-class part."
            )
    b = res.by_class_size
    if b is not None and len(b):
        for x in (f"{NORM_COLUMN}_z", NORM_COLUMN):
            sel = b[(b["x"] == x) & (b["y"] == BRISQUE_COLUMN) & (b["method"] == "pearson")]
            if len(sel):
                bands = "; ".join(
                    f"{int(r.size_low)}-{int(r.size_high)} images: "
                    f"{_r_ci(r.r, r.ci_low, r.ci_high)} (n = {int(r.n)} in {int(r.n_classes)} "
                    "classes)"
                    for r in sel.itertuples()
                )
                lines.append(f"- Pearson r({x}, BRISQUE) by class size: {bands}.")
    return lines


def _reference_lines(res: ModelResults) -> list[str]:
    """Pearson r of each norm column with each face-quality reference, the two levels of the
    raw norm's, and why ``certainty_ratio`` is absent when it is."""
    c, info = res.correlations, res.references
    if info is None:
        return []
    lines = [
        "- Against the face-quality references from the model's own embeddings (higher = "
        "better, so agreement is r > 0; Pearson; not EDC proxies, see docs/references.md):"
    ]
    for ref in REFERENCE_COLUMNS:
        rows = c[(c["y"] == ref) & (c["method"] == "pearson")]
        if len(rows):
            cells = "; ".join(f"{r.x} {_r_ci(r.r, r.ci_low, r.ci_high)}" for r in rows.itertuples())
            lines.append(f"  - {ref}: {cells}.")
        dec = res.decomposition if res.decomposition is not None else pd.DataFrame()
        sel = dec[(dec["x"] == "feature_norm") & (dec["y"] == ref)] if len(dec) else dec
        if len(sel):
            r = sel.iloc[0]
            lines.append(
                f"    Two levels (feature_norm): within classes "
                f"{_r_ci(r['r_within'], r['r_within_ci_low'], r['r_within_ci_high'])}, between "
                f"classes {_r_ci(r['r_between'], r['r_between_ci_low'], r['r_between_ci_high'])}"
                f"; {r['between_share_y']:.0%} of {ref}'s variance lies between classes."
            )
    cr = info.get("certainty_ratio", {})
    if not cr.get("computed", False):
        lines.append(f"  - {CERTAINTY_RATIO}: not computed: {cr.get('reason')}.")
    counts = {k: v for k, v in info.get("status_counts", {}).items() if k != OK}
    if counts:
        lines.append(
            "  Images without references: "
            + ", ".join(f"{k}: {v}" for k, v in counts.items())
            + "."
        )
    return lines


def _holm_family(per_model: dict[str, ModelResults]) -> str:
    """The sentence that states the Holm family and the smallest p it can reach."""
    parts = []
    for model, res in per_model.items():
        c = res.correlations
        m = int(np.isfinite(c["p_value"]).sum())
        reps = int(c["replicates"].max()) if len(c) else 0
        floor = min(1.0, m * 2 / (1 + reps)) if reps else np.nan
        parts.append(f"`{model}`: {m} tests, smallest reachable p_holm {floor:.3g}")
    return (
        "`p_value` in `correlations.csv` is a two-sided cluster-bootstrap p, never below "
        "2 / (1 + replicates); `p_holm` adjusts it by Holm's method over the family of "
        "every row of that model's `correlations.csv` that has a p ("
        + "; ".join(parts)
        + "). More replicates (`analysis.bootstrap_replicates`) resolve smaller p-values."
    )


def render(per_model: dict[str, ModelResults], *, confidence: float) -> str:
    """The Markdown text of ``results/summary.md``.

    Parameters
    ----------
    per_model : dict of model name -> ModelResults
    confidence : float
        The confidence level the intervals were computed at (for the text).
    """
    pct = f"{confidence * 100:g} %"
    lines = [
        "# featnorm summary",
        "",
        "Is the feature norm a measure of image quality, or of how familiar the model is with "
        "the identity? Correlations are **signed**: BRISQUE is lower for better images, so a "
        "norm that agrees with BRISQUE has a **negative** r. Intervals are "
        f"{pct} cluster-bootstrap percentile intervals that resample classes (identities); "
        "`correlations.csv` also has the naive i.i.d. Fisher-z intervals and a "
        "`quality_aligned_r` column (positive = agrees).",
        "",
    ]
    if any(GROUND_TRUTH_QUALITY in set(res.correlations["y"]) for res in per_model.values()):
        lines += [DEMO_NOTE, ""]
    seed = ", ".join(f"{k}: {v:+.3f}" for k, v in SEED_TABLE1.items())
    lines += [
        f"Kim & Sohn printed Pearson r with BRISQUE of {seed}. {SEED_SIGN_NOTE}",
        "",
        _holm_family(per_model),
        "",
    ]
    for model, res in per_model.items():
        lines.extend(_model_section(model, res, pct))
    lines.append("See `table1.md` for the seed's Table 1 and `comparison.csv` for all models.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# quality utility (EDC)
# ---------------------------------------------------------------------------------------------

_REFERENCES = ("random", "ideal")
_RAW = "feature_norm"


def _pauc_cell(row: pd.Series) -> str:
    """``pAUC [CI] · gap closed · difference to the raw norm [CI] verdict`` of one edc.csv row."""
    if not np.isfinite(row["pauc"]):
        return "n/a"
    cell = f"{row['pauc']:.4f}"
    if np.isfinite(row["ci_low"]):
        cell += f" [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"
    if np.isfinite(row["gap_closed"]):
        cell += f" · {row['gap_closed']:+.0%}"
    d, lo, hi = (row[c] for c in ("delta_vs_feature_norm", "delta_ci_low", "delta_ci_high"))
    if row["quality"] not in (_RAW, *_REFERENCES) and np.isfinite(d) and np.isfinite(lo):
        verdict = " better" if hi < 0 else (" worse" if lo > 0 else "")
        cell += f" · Δ {d:+.4f} [{lo:+.4f}, {hi:+.4f}]{verdict}"
    return cell


def _edc_table(part: pd.DataFrame) -> list[str]:
    """One Markdown table of one (model, fmr, discard limit): rows = quality proxies (random
    and ideal last), columns = splits."""
    splits = list(pd.unique(part["split"]))
    qualities = [q for q in pd.unique(part["quality"]) if q not in _REFERENCES]
    qualities += [q for q in _REFERENCES if q in set(part["quality"])]
    cells = part.set_index(["quality", "split"], drop=False)
    lines = ["| quality | " + " | ".join(f"{s} pairs" for s in splits) + " |"]
    lines.append("|---|" + "---|" * len(splits))
    for q in qualities:
        row = [_pauc_cell(cells.loc[(q, s)]) if (q, s) in cells.index else "n/a" for s in splits]
        lines.append(f"| {q} | " + " | ".join(row) + " |")
    return lines


def _edc_best(part: pd.DataFrame) -> str:
    """The proxy with the lowest pAUC per split, with the share of the gap it closes."""
    proxies = part[~part["quality"].isin(_REFERENCES) & np.isfinite(part["pauc"])]
    best = proxies.loc[proxies.groupby("split", sort=False)["pauc"].idxmin()]
    return "Best proxy: " + "; ".join(
        f"{r.split} pairs **{r.quality}** (closes {r.gap_closed:.0%} of the gap)"
        for r in best.itertuples()
    )


def edc_section(edc_table: pd.DataFrame, *, confidence: float) -> str:
    """Markdown: the EDC of every model as tables, one per (model, fmr, discard limit), rows =
    quality proxies, columns = splits.

    Each cell: pAUC [cluster-bootstrap CI] (lower = better) · ``gap_closed`` = (random - pAUC)
    / (random - ideal) (100 % = as good as discarding the errors first, 0 = random) · the
    paired difference of pAUC to the raw norm [CI], marked "better" when the interval lies
    below zero and "worse" when above.
    """
    pct = f"{confidence * 100:g} %"
    lines = [
        "",
        "## Quality utility: error-versus-discard characteristic",
        "",
        "Discarding the lowest-quality genuine pairs (pair quality = the lower of the two; "
        "BRISQUE negated so that higher = better) should lower the false non-match rate at a "
        "threshold fixed by the false match rate. Each cell: **pAUC** (area under FNMR over "
        f"the discarded fraction up to the limit; lower = better) [{pct} cluster-bootstrap "
        "interval over identities] · **gap closed** = (random − pAUC) / (random − ideal): "
        "100 % discards the errors first, 0 % is no better than random · **Δ** = pAUC minus "
        "the raw norm's on the same replicates [interval], *better* when it lies below 0. "
        "`random` is the expectation without quality (fnmr_at_0 × limit), `ideal` discards "
        "the errors first. The face-quality references from the embeddings are not EDC "
        "proxies: they are built from the genuine similarities the EDC measures. See "
        "`edc.csv` per model.",
        "",
    ]
    if edc_table.empty:
        lines.append("- No EDC: no split had both genuine and impostor pairs.")
    for (model, fmr, limit), part in edc_table.groupby(
        ["model", "fmr", "discard_limit"], sort=False
    ):
        lines += [f"### `{model}`: FMR {fmr:g}, discarded fraction up to {limit:g}", ""]
        lines += _edc_table(part)
        lines += ["", _edc_best(part), ""]
    return "\n".join(lines) + "\n"
