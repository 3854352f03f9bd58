"""The study's analysis on DataFrames: merge, class statistics, standardisation, correlations.

Pure functions (DataFrames in, DataFrames out); reading and writing happens in
``featnorm.cli.analysis``.

Sign convention: every coefficient is signed. BRISQUE is lower for better images and the feature
norm is meant to be higher for better images, so a norm that agrees with BRISQUE has a *negative*
r. Each correlation table adds ``quality_aligned_r`` (and its interval) with the sign flipped for
lower-is-better references, so agreement always reads as positive there.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from featnorm.analysis import standardisation, stats
from featnorm.data.splits import training_images
from featnorm.options import STANDARDISATION_POLICIES
from featnorm.quality.references import REFERENCE_COLUMNS
from featnorm.status import MISSING, NON_FINITE, OK

logger = logging.getLogger(__name__)

__all__ = [
    "GROUND_TRUTH_QUALITY",
    "NORM_COLUMN",
    "QUALITY_REFERENCES",
    "DEMO_NOTE",
    "SEED_SIGN_NOTE",
    "SEED_TABLE1",
    "class_stats",
    "compare_models",
    "correlation_table",
    "merge_samples",
    "norm_columns",
    "standardise",
    "table1",
    "table1_markdown",
]

NORM_COLUMN = "feature_norm"
BRISQUE_COLUMN = "brisque"
GROUND_TRUTH_QUALITY = "true_quality"
# y columns correlated with every norm column -> True when lower is better; the face-quality
# references from the embeddings (featnorm.quality.references) are all higher = better
QUALITY_REFERENCES = {
    BRISQUE_COLUMN: True,
    GROUND_TRUTH_QUALITY: False,
    **dict.fromkeys(REFERENCE_COLUMNS, False),
}
# Kim & Sohn, Table 1: Pearson r of AdaFace's norm with BRISQUE on CASIA-WebFace.
SEED_TABLE1 = {"feature_norm": 0.053, "feature_norm_z": 0.204}
# Manifest columns that are identifiers, not per-image measurements to summarise per class.
_ID_COLUMNS = ("sample_id", "label", "class_name", "path")


def norm_columns(policies: list[str] | tuple[str, ...]) -> list[str]:
    """The norm columns the analysis correlates: the raw norm, then one per policy."""
    for p in policies:
        if p not in STANDARDISATION_POLICIES:
            raise ValueError(
                f"analysis.policies contains {p!r}; use any of {', '.join(STANDARDISATION_POLICIES)}"
            )
    return [NORM_COLUMN] + [f"{NORM_COLUMN}_{p}" for p in policies]


# ---------------------------------------------------------------------------------------------
# merge
# ---------------------------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, required: tuple[str, ...], name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{name} lacks column(s) {missing}; it has {list(df.columns)}. "
            "Re-run the step that produces it."
        )
    if "sample_id" in df.columns and df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "sample_id"].iloc[:5].tolist()
        raise ValueError(f"{name} repeats sample_id values, e.g. {dup}; each image needs one row")


def _join_part(manifest_ids: pd.Series, part: pd.DataFrame, value: str, name: str) -> pd.DataFrame:
    extra = ~part["sample_id"].isin(manifest_ids)
    if extra.any():
        raise ValueError(
            f"{name} has {int(extra.sum())} sample_id(s) not in the manifest, e.g. "
            f"{part.loc[extra, 'sample_id'].iloc[:5].tolist()}; it was made from another "
            "manifest: re-run it"
        )
    return part[["sample_id", value, "status"]]


def merge_samples(
    manifest: pd.DataFrame, brisque: pd.DataFrame, embed: pd.DataFrame
) -> pd.DataFrame:
    """One row per manifest image with its BRISQUE score and feature norm.

    Parameters
    ----------
    manifest : DataFrame
        ``sample_id`` int64, ``path``, ``label`` int64, ``class_name`` (+ ground-truth columns).
    brisque : DataFrame
        All BRISQUE shards concatenated: ``sample_id``, ``brisque`` float64 (lower is better,
        NaN when not computable), ``status``.
    embed : DataFrame
        All embedding shards of one model concatenated: ``sample_id``, ``feature_norm``
        (higher meant to be better), ``status``; an ``embedding`` column is dropped.

    Returns
    -------
    DataFrame
        The manifest rows in manifest order (rows in = rows out) plus ``brisque``,
        ``feature_norm`` (float64), ``brisque_status``, ``embed_status`` (``missing`` when the
        image has no row there), ``class_size`` (training images of the class: see :func:`featnorm.data.splits.training_images`) and
        ``status``: ``ok`` when both scores are ok and finite, otherwise the reasons.

    Raises
    ------
    ValueError
        A table lacks a column, repeats a ``sample_id`` or has ids the manifest lacks.
    """
    _check_columns(manifest, ("sample_id", "label", "class_name"), "manifest")
    _check_columns(brisque, ("sample_id", BRISQUE_COLUMN, "status"), "BRISQUE table")
    _check_columns(embed, ("sample_id", NORM_COLUMN, "status"), "embedding table")
    ids = manifest["sample_id"]
    b = _join_part(ids, brisque, BRISQUE_COLUMN, "BRISQUE table").rename(
        columns={"status": "brisque_status"}
    )
    e = _join_part(ids, embed, NORM_COLUMN, "embedding table").rename(
        columns={"status": "embed_status"}
    )
    out = manifest.merge(b, on="sample_id", how="left", validate="one_to_one")
    out = out.merge(e, on="sample_id", how="left", validate="one_to_one")
    out[NORM_COLUMN] = out[NORM_COLUMN].astype(np.float64)
    out[BRISQUE_COLUMN] = out[BRISQUE_COLUMN].astype(np.float64)
    out["brisque_status"] = out["brisque_status"].fillna(MISSING)
    out["embed_status"] = out["embed_status"].fillna(MISSING)
    _set_status(out)
    out["class_size"] = training_images(out).groupby(out["label"]).transform("sum").astype(np.int64)
    counts = out["status"].value_counts()
    logger.info("merged %d images; status counts: %s", len(out), counts.to_dict())
    return out


def _set_status(out: pd.DataFrame) -> None:
    """Per row, in place: ``status`` ``ok`` when both scores are ok and finite, else the reasons
    (``brisque:<status>; embed:<status>``); a score that is not ok becomes NaN."""
    # a row marked ok with a non-finite value is not ok
    b_bad = (out["brisque_status"] == OK) & ~np.isfinite(out[BRISQUE_COLUMN])
    e_bad = (out["embed_status"] == OK) & ~np.isfinite(out[NORM_COLUMN])
    out.loc[b_bad, "brisque_status"] = NON_FINITE
    out.loc[e_bad, "embed_status"] = NON_FINITE
    b_ok = out["brisque_status"] == OK
    e_ok = out["embed_status"] == OK
    out.loc[~b_ok, BRISQUE_COLUMN] = np.nan
    out.loc[~e_ok, NORM_COLUMN] = np.nan
    reasons = np.where(b_ok, "", "brisque:" + out["brisque_status"].astype(str))
    reasons2 = np.where(e_ok, "", "embed:" + out["embed_status"].astype(str))
    joined = (
        pd.Series(reasons, index=out.index)
        .str.cat(pd.Series(reasons2, index=out.index), sep="; ")
        .str.strip("; ")
    )
    out["status"] = joined.where(joined != "", OK)


# ---------------------------------------------------------------------------------------------
# standardisation and class statistics
# ---------------------------------------------------------------------------------------------


def _codes(labels: pd.Series) -> np.ndarray:
    return pd.factorize(labels, sort=True)[0].astype(np.int64)


def standardise(
    samples: pd.DataFrame,
    *,
    policies: list[str],
    min_class_size: int,
    ddof: int,
    residual_degree: int,
) -> tuple[pd.DataFrame, dict]:
    """Add one standardised norm column per policy (``feature_norm_<policy>``).

    Parameters
    ----------
    samples : DataFrame
        From ``merge_samples``. Norms of rows whose ``embed_status`` is not ok are NaN and stay
        NaN in every policy column.
    policies : list of {"z", "shrinkage_z", "rank", "residual"}
        ``z``: the seed's ``(norm - class mean) / class std`` with ``ddof``; classes with fewer
        than ``min_class_size`` norms or std = 0 are NaN and flagged in ``z_excluded``.
        ``shrinkage_z``: z about the class's own mean with limma's moderated class variance
        (``standardisation.shrinkage_z``), defined for every class.
        ``rank``: within-class percentile in (0, 1); classes below ``min_class_size`` NaN.
        ``residual``: norm minus the fitted trend ``poly(log class_size, residual_degree)``.
    min_class_size, ddof, residual_degree : int

    Returns
    -------
    samples : DataFrame
        A copy with the policy columns (float64) and ``z_excluded`` (bool; rows of classes the
        z-score leaves out).
    info : dict
        What each policy estimated or excluded (for metadata and the summary).
    """
    norm_columns(policies)
    if min_class_size < 1:
        raise ValueError(f"analysis.min_class_size = {min_class_size} must be >= 1 (e.g. 2)")
    out = samples.copy()
    codes = _codes(out["label"])
    x = out[NORM_COLUMN].to_numpy(np.float64)
    info: dict = {"ddof": ddof, "min_class_size": min_class_size}
    z, excluded = standardisation.within_class_z(x, codes, ddof=ddof, min_class_size=min_class_size)
    out["z_excluded"] = excluded
    info["z_excluded_classes"] = int(out.loc[excluded, "label"].nunique())
    info["z_excluded_images"] = int(excluded.sum())
    if "z" in policies:
        out[f"{NORM_COLUMN}_z"] = z
    _add_other_policies(out, x, codes, policies, info, residual_degree=residual_degree)
    logger.info(
        "standardised %d images with %s; z excludes %d classes (%d images)",
        len(out),
        policies,
        info["z_excluded_classes"],
        info["z_excluded_images"],
    )
    return out, info


def _add_other_policies(
    out: pd.DataFrame,
    x: np.ndarray,
    codes: np.ndarray,
    policies: list[str],
    info: dict,
    *,
    residual_degree: int,
) -> None:
    """Add the shrinkage_z, rank and residual columns of ``policies`` to ``out`` (in place), and
    what they estimated to ``info`` (see :func:`standardise`)."""
    min_class_size = info["min_class_size"]
    if "shrinkage_z" in policies:
        out[f"{NORM_COLUMN}_shrinkage_z"], info["shrinkage_z"] = standardisation.shrinkage_z(
            x, codes
        )
    if "rank" in policies:
        out[f"{NORM_COLUMN}_rank"], _ = standardisation.within_class_rank(
            x, codes, min_class_size=min_class_size
        )
    if "residual" in policies:
        resid, coef = standardisation.class_size_residual(
            x, out["class_size"].to_numpy(), degree=residual_degree
        )
        out[f"{NORM_COLUMN}_residual"] = resid
        info["residual_coefficients"] = [float(c) for c in coef]


def _ground_truth_columns(samples: pd.DataFrame) -> list[str]:
    known = set(_ID_COLUMNS) | {BRISQUE_COLUMN, NORM_COLUMN, "class_size", "z_excluded"}
    return [
        c
        for c in samples.columns
        if c not in known
        and not c.startswith(f"{NORM_COLUMN}_")
        and pd.api.types.is_numeric_dtype(samples[c])
        and not pd.api.types.is_bool_dtype(samples[c])
    ]


def class_stats(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per class: size and summaries of the norm, BRISQUE and ground truth.

    Returns
    -------
    DataFrame
        Computed over the training images (:func:`featnorm.data.splits.training_images`: split ``train`` where the
        manifest has a split, as the seed's classes hold only what the model saw; every row
        otherwise): ``label``, ``class_name``, ``n`` (images), ``n_ok`` (rows with status
        ok), ``norm_mean``/``norm_std``/``norm_median`` (std with ddof = 1, NaN for n < 2) over
        rows with a norm, ``brisque_mean``/``brisque_std``/``brisque_median`` over rows with a
        BRISQUE score, ``<column>_mean`` for each numeric ground-truth column (demo) and
        ``z_excluded``; sorted by ``n`` descending, then ``label``.
    """
    samples = samples[training_images(samples).to_numpy()]
    g = samples.groupby("label", sort=True)
    out = pd.DataFrame(
        {
            "class_name": g["class_name"].first(),
            "n": g.size().astype(np.int64),
            "n_ok": (samples["status"] == OK)
            .groupby(samples["label"], sort=True)
            .sum()
            .astype(np.int64),
            "norm_mean": g[NORM_COLUMN].mean(),
            "norm_std": g[NORM_COLUMN].std(ddof=1),
            "norm_median": g[NORM_COLUMN].median(),
            "brisque_mean": g[BRISQUE_COLUMN].mean(),
            "brisque_std": g[BRISQUE_COLUMN].std(ddof=1),
            "brisque_median": g[BRISQUE_COLUMN].median(),
        }
    )
    for c in _ground_truth_columns(samples):
        out[f"{c}_mean"] = g[c].mean()
    if "z_excluded" in samples.columns:
        out["z_excluded"] = g["z_excluded"].first().astype(bool)
    out = out.reset_index().sort_values(["n", "label"], ascending=[False, True])
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# correlations
# ---------------------------------------------------------------------------------------------


def _row(
    model: str,
    x: str,
    y: str,
    method: str,
    res: stats.CorrelationResult,
    lower_is_better: bool | None,
) -> dict:
    d = {"model": model, "x": x, "y": y, "method": method, **res.as_dict()}
    if lower_is_better is None:
        d["quality_aligned_r"] = np.nan
        d["quality_aligned_ci_low"] = np.nan
        d["quality_aligned_ci_high"] = np.nan
    else:
        aligned = stats.quality_aligned(
            res.r, res.ci_low, res.ci_high, lower_is_better=lower_is_better
        )
        d["quality_aligned_r"], d["quality_aligned_ci_low"], d["quality_aligned_ci_high"] = aligned
    return d


def _bootstrap_setup(samples: pd.DataFrame, *, replicates: int, seed: int):
    """What every bootstrap table shares: the ok rows, class codes, the weight matrix (one
    generator seeded by ``seed``, so every table of a model uses the same draws) and the
    quality references present (column -> lower is better)."""
    if replicates < 1:
        raise ValueError(f"analysis.bootstrap_replicates = {replicates} must be >= 1")
    ok = samples["status"].to_numpy() == OK
    codes_all = _codes(samples["label"])
    n_classes = int(codes_all.max()) + 1 if len(codes_all) else 0
    rng = np.random.default_rng(seed)
    weights = (
        stats.cluster_bootstrap_weights(n_classes, replicates=replicates, rng=rng)
        if n_classes >= 1
        else None
    )
    refs = {y: lib for y, lib in QUALITY_REFERENCES.items() if y in samples.columns}
    return ok, codes_all, weights, refs


def _class_size_effect(
    samples: pd.DataFrame, weights: np.ndarray | None, confidence: float
) -> stats.CorrelationResult:
    """Spearman correlation over classes of class size and class mean norm (signed).

    Classes are the units (each class weighs once); class size and class mean norm over the
    training images (held-out images would lower the mean of small classes).
    """
    has_norm = (
        np.isfinite(samples[NORM_COLUMN].to_numpy(np.float64)) & training_images(samples).to_numpy()
    )
    per = (
        samples[has_norm]
        .groupby("label")
        .agg(size=("class_size", "first"), mean=(NORM_COLUMN, "mean"))
    )
    per_codes = pd.Index(np.sort(samples["label"].unique())).get_indexer(per.index)
    return stats.correlate(
        per["size"].to_numpy(np.float64),
        per["mean"].to_numpy(np.float64),
        per_codes,
        method="spearman",
        weights=weights,
        confidence=confidence,
    )


def correlation_table(
    samples: pd.DataFrame,
    *,
    model: str,
    x_columns: list[str],
    methods: list[str],
    replicates: int,
    confidence: float,
    seed: int,
) -> pd.DataFrame:
    """Every correlation of the study for one model, with cluster-bootstrap intervals.

    Rows: each x in ``x_columns`` against each quality reference present (``brisque``, lower
    is better; ``true_quality`` on the demo, higher is better) and each method; then
    ``method = "partial_pearson"`` of each x with BRISQUE given ``log(class_size)``
    (``y = "brisque | log class_size"``); then the class-size effect, Spearman over classes of
    (``class_size``, class mean norm) (``x = "class_size"``, ``y = "class_norm_mean"``, n =
    classes, resampling classes).

    Only rows with status ok enter (and a finite x); one weight matrix (seeded by ``seed``)
    is shared by all rows so intervals are comparable.

    Returns
    -------
    DataFrame
        Columns ``model, x, y, method, n, r, ci_low, ci_high, p_value`` (the contract) and
        ``n_classes, ci_method, naive_ci_low, naive_ci_high, p_value_wald, p_value_iid,
        replicates, flag, quality_aligned_r, quality_aligned_ci_low, quality_aligned_ci_high,
        lower_is_better, p_holm``. ``p_value`` is the cluster-bootstrap p (never below
        ``2 / (1 + replicates)``), ``p_value_wald`` its normal approximation, ``p_holm`` the
        Holm adjustment of ``p_value`` over every row of the table (the model's family).
        r is signed: agreement with BRISQUE is negative; ``quality_aligned_r`` is positive
        when the norm agrees with the reference. ``quality_aligned_*`` is NaN for the
        class-size row (no quality reference).
    """
    for m in methods:
        stats._check_method(m)
    started = time.perf_counter()
    ok, codes_all, weights, refs = _bootstrap_setup(samples, replicates=replicates, seed=seed)
    rows = []
    codes = codes_all[ok]
    for y, lower in refs.items():
        yv = samples[y].to_numpy(np.float64)[ok]
        for x in x_columns:
            xv = samples[x].to_numpy(np.float64)[ok]
            for m in methods:
                res = stats.correlate(
                    xv, yv, codes, method=m, weights=weights, confidence=confidence
                )
                rows.append(_row(model, x, y, m, res, lower))
    logn = np.log(samples["class_size"].to_numpy(np.float64))[ok]
    yv = samples[BRISQUE_COLUMN].to_numpy(np.float64)[ok]
    given = f"{BRISQUE_COLUMN} | log class_size"
    for x in x_columns:
        xv = samples[x].to_numpy(np.float64)[ok]
        res = stats.partial_correlation(xv, yv, logn, codes, weights=weights, confidence=confidence)
        rows.append(_row(model, x, given, "partial_pearson", res, True))
    res = _class_size_effect(samples, weights, confidence)
    rows.append(_row(model, "class_size", "class_norm_mean", "spearman", res, None))
    return _correlations(rows, model, replicates, started)


def _correlations(rows: list[dict], model: str, replicates: int, started: float) -> pd.DataFrame:
    """The rows as a table with ``lower_is_better`` of each row's reference (None for the
    class-size row) and ``p_holm``, the Holm adjustment over every row that has a bootstrap p
    (the model's family); logged with the time since ``started``."""
    table = pd.DataFrame(rows)
    table["lower_is_better"] = table["y"].map(lambda y: QUALITY_REFERENCES.get(y.split(" |")[0]))
    table["p_holm"] = stats.holm(table["p_value"].to_numpy(np.float64))
    logger.info(
        "%d correlations for model %s (%d replicates) in %.1f s",
        len(table),
        model,
        replicates,
        time.perf_counter() - started,
    )
    return table


# ---------------------------------------------------------------------------------------------
# Table 1 and the comparison across models
# ---------------------------------------------------------------------------------------------


def table1(correlations: pd.DataFrame) -> pd.DataFrame:
    """The seed's Table 1 in form: Pearson r of each norm column with BRISQUE, per model.

    Parameters
    ----------
    correlations : DataFrame
        ``correlation_table`` outputs of all models, concatenated.

    Returns
    -------
    DataFrame
        One row per norm column (``feature_norm``, ``feature_norm_z``, other policies), columns
        ``norm``, ``seed_r`` (Kim & Sohn's value as printed, where they report one),
        ``seed_sign`` (``ambiguous`` beside every seed value: see ``SEED_SIGN_NOTE``) and per
        model ``<model>_r``, ``<model>_ci_low``, ``<model>_ci_high``, ``<model>_n``,
        ``<model>_quality_aligned_r`` (and its ``_ci_low``/``_ci_high``). Signed r: agreement
        with BRISQUE is negative; quality-aligned r: agreement is positive.
    """
    sel = correlations[
        (correlations["y"] == BRISQUE_COLUMN) & (correlations["method"] == "pearson")
    ]
    out = pd.DataFrame({"norm": pd.unique(sel["x"])})
    out["seed_r"] = out["norm"].map(SEED_TABLE1)
    out["seed_sign"] = np.where(out["seed_r"].notna(), "ambiguous", "")
    for model, part in sel.groupby("model", sort=False):
        p = part.set_index("x")
        for col in (
            "r",
            "ci_low",
            "ci_high",
            "n",
            "quality_aligned_r",
            "quality_aligned_ci_low",
            "quality_aligned_ci_high",
        ):
            out[f"{model}_{col}"] = out["norm"].map(p[col])
    return out


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


def _table1_models(table: pd.DataFrame) -> list[str]:
    """Model names of a ``table1`` frame, in column order."""
    return [
        c[: -len("_ci_low")]
        for c in table.columns
        if c.endswith("_ci_low") and not c.endswith("quality_aligned_ci_low")
    ]


def table1_markdown(table: pd.DataFrame, *, confidence: float, demo: bool = False) -> str:
    """Markdown rendering of ``table1`` with the sign convention and CI method stated.

    ``demo``: the correlations come from the embedded demo dataset; the table then says it is
    a pipeline check on synthetic data, not a replication.
    """
    models = _table1_models(table)
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
    for _, row in table.iterrows():
        seed = "" if pd.isna(row["seed_r"]) else f"{row['seed_r']:.3f} (sign ambiguous)"
        cells = []
        for m in models:
            r, lo, hi, n = (row[f"{m}_{c}"] for c in ("r", "ci_low", "ci_high", "n"))
            cells.append("n/a" if pd.isna(r) else f"{r:+.3f} [{lo:+.3f}, {hi:+.3f}] ({int(n)})")
            qa = row.get(f"{m}_quality_aligned_r", np.nan)
            cells.append("n/a" if pd.isna(qa) else f"{qa:+.3f}")
        lines.append(f"| {row['norm']} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare_models(correlations: pd.DataFrame) -> pd.DataFrame:
    """All models' correlations in one long table, sorted for side-by-side reading.

    Adds ``r_minus_first``: each r minus the first model's r for the same (x, y, method).
    """
    if correlations.empty:
        return correlations.copy()
    key = ["x", "y", "method"]
    first_model = correlations["model"].iloc[0]
    first = correlations[correlations["model"] == first_model].set_index(key)["r"]
    out = correlations.copy()
    idx = pd.MultiIndex.from_frame(out[key])
    out["r_minus_first"] = out["r"].to_numpy() - first.reindex(idx).to_numpy()
    return out.sort_values(key + ["model"], kind="stable").reset_index(drop=True)
