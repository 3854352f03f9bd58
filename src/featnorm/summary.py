"""``results/summary.md``: the study's findings in plain text, written from the result tables.

Every sentence is derived from the numbers it quotes; the wording follows the signs and whether
the cluster-bootstrap interval excludes zero, so the summary never claims more than the data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from featnorm.analysis import GROUND_TRUTH_QUALITY, SEED_TABLE1

logger = logging.getLogger(__name__)

__all__ = ["ModelResults", "edc_section", "render"]


@dataclass
class ModelResults:
    """What the summary needs of one model."""

    correlations: pd.DataFrame  # correlations.csv
    class_stats: pd.DataFrame  # class_stats.parquet
    samples: pd.DataFrame  # at least label, status, z_excluded
    standardise: dict  # the `standardise` metadata of samples.parquet


def _fmt(row: pd.Series, *, over_classes: bool = False) -> str:
    if not np.isfinite(row["r"]):
        return f"n/a ({row['flag']})"
    ci = ("no CI" if not np.isfinite(row["ci_low"])
          else f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]")
    if over_classes:
        return f"{row['r']:+.3f} {ci}, n = {int(row['n'])} classes"
    return f"{row['r']:+.3f} {ci}, n = {int(row['n'])} images in {int(row['n_classes'])} classes"


def _excludes_zero(row: pd.Series) -> bool:
    return bool(np.isfinite(row["ci_low"]) and (row["ci_low"] > 0 or row["ci_high"] < 0))


def _pick(c: pd.DataFrame, x: str, y: str, method: str) -> pd.Series | None:
    sel = c[(c["x"] == x) & (c["y"] == y) & (c["method"] == method)]
    return None if sel.empty else sel.iloc[0]


def _model_section(model: str, res: ModelResults, pct: str) -> list[str]:
    c = res.correlations
    s = res.samples
    ok = int((s["status"] == "ok").sum())
    lines = [f"## Model `{model}`", ""]
    lines.append(f"- Images: {len(s)} in {s['label'].nunique()} classes; {ok} with both a "
                 f"feature norm and a BRISQUE score (status ok), {len(s) - ok} without.")
    statuses = s.loc[s["status"] != "ok", "status"].value_counts()
    if len(statuses):
        lines.append("  Not ok: " + ", ".join(f"{k}: {v}" for k, v in statuses.items()) + ".")
    info = res.standardise
    if info:
        lines.append(
            f"- Per-class z-score (ddof = {info.get('ddof')}): {info.get('z_excluded_classes')} "
            f"classes ({info.get('z_excluded_images')} images) excluded for fewer than "
            f"{info.get('min_class_size')} images or zero spread.")
    size = _pick(c, "class_size", "class_norm_mean", "spearman")
    if size is not None:
        verdict = ("rises" if size["r"] > 0 else "falls") if _excludes_zero(size) else \
            "shows no clear trend"
        lines.append(f"- Class-size effect: the mean feature norm of a class {verdict} with the "
                     f"class size (Spearman over classes {_fmt(size, over_classes=True)}).")
    for x in pd.unique(c.loc[c["y"] == "brisque", "x"]):
        row = _pick(c, x, "brisque", "pearson")
        if row is None:
            continue
        agree = ""
        if _excludes_zero(row):
            agree = (" — agrees with BRISQUE (higher norm, better image)" if row["r"] < 0
                     else " — *disagrees* with BRISQUE (higher norm, worse BRISQUE)")
        else:
            agree = " — not distinguishable from zero"
        seed = SEED_TABLE1.get(x)
        seed_txt = f" (Kim & Sohn: {seed:+.3f})" if seed is not None else ""
        lines.append(f"- Pearson r({x}, BRISQUE) = {_fmt(row)}{seed_txt}{agree}.")
    part = _pick(c, "feature_norm", "brisque | log class_size", "partial_pearson")
    if part is not None:
        lines.append(f"- Partial r(feature_norm, BRISQUE | log class size) = {_fmt(part)}.")
    if GROUND_TRUTH_QUALITY in set(c["y"]):
        lines.append("- Against the demo's ground-truth quality (higher = better; Spearman):")
        for x in pd.unique(c.loc[c["y"] == GROUND_TRUTH_QUALITY, "x"]):
            row = _pick(c, x, GROUND_TRUTH_QUALITY, "spearman")
            if row is not None:
                lines.append(f"  - {x}: {_fmt(row)}")
    flagged = c[c["flag"].fillna("").astype(str) != ""]
    if len(flagged):
        lines.append(f"- {len(flagged)} statistic(s) flagged: " + "; ".join(
            f"{r.x} ~ {r.y} ({r.method}): {r.flag}" for r in flagged.itertuples()) + ".")
    lines.append("")
    return lines


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
    for model, res in per_model.items():
        lines.extend(_model_section(model, res, pct))
    lines.append("See `table1.md` for the seed's Table 1 and `comparison.csv` for all models.")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# quality utility (EDC)
# ---------------------------------------------------------------------------------------------

_REFERENCES = ("random", "ideal")


def _pauc_text(row: pd.Series) -> str:
    return f"{row['pauc']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"


def edc_section(edc_table: pd.DataFrame, *, confidence: float) -> str:
    """Markdown: the best quality proxy per model by EDC pAUC, and whether the standardised
    norm beats the raw norm (paired cluster-bootstrap difference of pAUC).

    One line per (model, split, fmr, discard_limit). Lower pAUC = discarding by that proxy
    removes more false non-matches. "Beats" needs the paired interval of
    pAUC(standardised) - pAUC(raw) to lie below zero.
    """
    pct = f"{confidence * 100:g} %"
    lines = [
        "",
        "## Quality utility: error-versus-discard characteristic",
        "",
        "Discarding the lowest-quality genuine pairs (pair quality = the lower of the two; "
        "BRISQUE negated so that higher = better) should lower the false non-match rate at a "
        "threshold fixed by the false match rate. pAUC = area under FNMR(discarded fraction) "
        f"up to the discard limit, lower = better; intervals are {pct} cluster-bootstrap "
        "intervals over identities. `random` is the expectation without quality "
        "(fnmr_at_0 x limit), `ideal` discards the errors first. See `edc.csv` per model.",
        "",
    ]
    if edc_table.empty:
        lines.append("- No EDC: no split had both genuine and impostor pairs.")
    for (model, split, fmr, limit), part in edc_table.groupby(
            ["model", "split", "fmr", "discard_limit"], sort=False):
        p = part.set_index("quality")
        proxies = p.drop(index=[r for r in _REFERENCES if r in p.index])
        if proxies.empty or not np.isfinite(proxies["pauc"]).any():
            continue
        best = proxies["pauc"].idxmin()
        head = (f"- `{model}`, {split} pairs, FMR {fmr:g}, discard <= {limit:g}: best proxy "
                f"**{best}**, pAUC {_pauc_text(p.loc[best])}")
        refs = [f"{r} {p.loc[r, 'pauc']:.4f}" for r in _REFERENCES if r in p.index]
        lines.append(head + (f" ({', '.join(refs)})" if refs else "") + ".")
        if "feature_norm" in p.index:
            parts = []
            for z in [q for q in proxies.index if q.startswith("feature_norm_")]:
                d, lo, hi = (p.loc[z, c] for c in
                             ("delta_vs_feature_norm", "delta_ci_low", "delta_ci_high"))
                if not np.isfinite(lo):
                    verdict = "no interval"
                elif hi < 0:
                    verdict = "**beats** the raw norm"
                elif lo > 0:
                    verdict = "**worse** than the raw norm"
                else:
                    verdict = "no clear difference"
                parts.append(f"{z} {d:+.4f} [{lo:+.4f}, {hi:+.4f}], {verdict}")
            if parts:
                lines.append("  - Standardised minus raw norm (paired pAUC difference): "
                             + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"
