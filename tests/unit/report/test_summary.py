"""featnorm.report.summary: the face-quality reference lines and the EDC tables quote the
numbers of the tables they come from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featnorm.analysis import class_stats, contrast_tables, correlations, standardisation
from featnorm.report import summary


def _samples(seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """40 classes of 3..12 images with a norm, BRISQUE and two references that track it."""
    rng = np.random.default_rng(seed)
    label = np.repeat(np.arange(40), rng.integers(3, 13, 40))
    quality = rng.normal(size=len(label))
    frame = pd.DataFrame(
        {
            "sample_id": np.arange(len(label)),
            "label": label,
            "class_name": [f"c{v}" for v in label],
            "brisque": 40 - 5 * quality + rng.normal(0, 5, len(label)),
            "feature_norm": 20 + quality + rng.normal(0, 1, len(label)),
            "status": "ok",
            "class_size": pd.Series(label).map(pd.Series(label).value_counts()).to_numpy(),
            "centre_similarity": 0.5 + 0.1 * quality + rng.normal(0, 0.1, len(label)),
            "sdd_quality": 0.4 + 0.1 * quality + rng.normal(0, 0.1, len(label)),
        }
    )
    return standardisation.standardise(
        frame, policies=["z"], min_class_size=2, ddof=1, residual_degree=2
    )


def _results(references: dict | None) -> summary.ModelResults:
    samples, info = _samples()
    kw = {"model": "m", "x_columns": ["feature_norm", "feature_norm_z"], "replicates": 50}
    kw |= {"confidence": 0.95, "seed": 0}
    return summary.ModelResults(
        correlations=correlations.correlation_table(samples, methods=["pearson"], **kw),
        class_stats=class_stats.class_stats(samples),
        samples=samples,
        standardise=info,
        decomposition=contrast_tables.decomposition_table(samples, **kw),
        references=references,
    )


def test_reference_lines_quote_the_correlations_and_why_certainty_ratio_is_absent():
    reason = "the checkpoint has no margin head (head.kernel, embedding_dim x classes)"
    meta = {
        "certainty_ratio": {"computed": False, "reason": reason},
        "status_counts": {"ok": 300, "single_image_class": 2},
    }
    res = _results(meta)
    text = summary.render({"m": res}, confidence=0.95)
    c = res.correlations
    for ref in ("centre_similarity", "sdd_quality"):
        row = c[(c["y"] == ref) & (c["x"] == "feature_norm_z")].iloc[0]
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(f"- {ref}:"))
        assert (
            f"feature_norm_z {row['r']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]" in line
        )
    assert f"certainty_ratio: not computed: {reason}." in text
    assert "single_image_class: 2" in text
    assert "face-quality references" not in summary.render({"m": _results(None)}, confidence=0.95)


def _edc_rows() -> pd.DataFrame:
    rows = []
    for split in ("all", "holdout"):
        for quality, pauc, delta in (
            ("feature_norm", 0.15, np.nan),
            ("brisque", 0.18, 0.03),
            ("true_quality", 0.12, -0.03),
            ("random", 0.20, np.nan),
            ("ideal", 0.10, np.nan),
        ):
            rows.append(
                {
                    "model": "m",
                    "split": split,
                    "quality": quality,
                    "fmr": 0.01,
                    "discard_limit": 0.2,
                    "pauc": pauc,
                    "ci_low": pauc - 0.01,
                    "ci_high": pauc + 0.01,
                    "delta_vs_feature_norm": delta,
                    "delta_ci_low": delta - 0.01,
                    "delta_ci_high": delta + 0.01,
                    "gap_closed": (0.20 - pauc) / (0.20 - 0.10),
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("split_column", [1, 2])
def test_edc_table_cells_give_pauc_gap_and_difference(split_column: int):
    text = summary.edc_section(_edc_rows(), confidence=0.95)
    table = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert table[0] == "| quality | all pairs | holdout pairs |"
    cells = {ln.split(" | ")[0][2:]: ln.split(" | ")[split_column].strip(" |") for ln in table[1:]}
    assert cells["feature_norm"] == "0.1500 [0.1400, 0.1600] · +50%"
    assert (
        cells["true_quality"]
        == "0.1200 [0.1100, 0.1300] · +80% · Δ -0.0300 [-0.0400, -0.0200] better"
    )
    assert cells["brisque"].endswith("Δ +0.0300 [+0.0200, +0.0400] worse")
    assert cells["random"].endswith("+0%") and cells["ideal"].endswith("+100%")
    assert "all pairs **true_quality** (closes 80% of the gap)" in text
