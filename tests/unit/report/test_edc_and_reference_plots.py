"""The EDC grid (rows = split, columns = FMR, one legend outside) and the references figure
(rows = reference, columns = norm column) draw what they claim."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from featnorm.analysis.columns import QUALITY_REFERENCES
from featnorm.report import edc_plots, plots

SPLITS = ["all", "holdout", "train"]
FMRS = [0.001, 0.01]
QUALITIES = ["feature_norm", "feature_norm_z", "brisque", "random", "ideal"]


def _edc_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    grid = np.linspace(0, 0.3, 31)
    table, curves = [], []
    for split in SPLITS:
        for fmr in FMRS:
            for i, q in enumerate(QUALITIES):
                for limit in (0.2, 0.3):
                    table.append(
                        {
                            "model": "m",
                            "split": split,
                            "quality": q,
                            "fmr": fmr,
                            "discard_limit": limit,
                            "pauc": 0.1,
                            "threshold": 0.4,
                            "n_genuine": 100,
                        }
                    )
                fnmr = 0.2 - 0.01 * i * grid
                curves.append(
                    pd.DataFrame(
                        {
                            "model": "m",
                            "split": split,
                            "quality": q,
                            "fmr": fmr,
                            "discard_fraction": grid,
                            "fnmr": fnmr,
                        }
                    )
                )
    return pd.DataFrame(table), pd.concat(curves, ignore_index=True)


def test_edc_figure_is_a_split_by_fmr_grid_with_one_legend_outside():
    table, curves = _edc_tables()
    fig = edc_plots.edc_curves(table, curves, model="m")
    axes = fig.axes
    assert len(axes) == len(SPLITS) * len(FMRS)
    titles = [ax.get_title() for ax in axes]
    for r, split in enumerate(SPLITS):
        for c, fmr in enumerate(FMRS):
            assert titles[r * len(FMRS) + c].startswith(f"{split} pairs, FMR {fmr:g}")
    assert all(ax.get_legend() is None for ax in axes)  # no legend over the curves
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == QUALITIES
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert all(box.x0 >= ax.get_window_extent().x1 for ax in axes)  # right of every panel
    width, height = fig.get_size_inches()
    assert width / height <= 3
    line = axes[0].lines[1]  # feature_norm_z, all pairs, first FMR
    np.testing.assert_allclose(line.get_ydata(), 0.2 - 0.01 * np.linspace(0, 0.3, 31))
    plt.close(fig)


def test_references_figure_has_a_row_per_reference_and_quotes_r():
    rng = np.random.default_rng(0)
    n = 200
    label = np.repeat(np.arange(20), 10)
    samples = pd.DataFrame(
        {
            "label": label,
            "status": "ok",
            "feature_norm": rng.normal(size=n),
            "feature_norm_z": rng.normal(size=n),
            "centre_similarity": rng.uniform(size=n),
            "sdd_quality": rng.uniform(size=n),
        }
    )
    corr = pd.DataFrame(
        [
            {"x": x, "y": y, "method": "pearson", "r": 0.1 * i, "ci_low": 0.0, "ci_high": 0.2}
            for i, (x, y) in enumerate(
                (x, y)
                for y in ("centre_similarity", "sdd_quality")
                for x in ("feature_norm", "feature_norm_z")
            )
        ]
    )
    fig = plots.references(samples, corr, x_columns=["feature_norm", "feature_norm_z"], model="m")
    axes = [ax for ax in fig.axes if ax.get_xlabel()]
    assert [ax.get_xlabel() for ax in axes] == ["centre_similarity (higher = better)"] * 2 + [
        "sdd_quality (higher = better)"
    ] * 2
    assert axes[3].get_title().startswith("r = +0.300 [+0.000, +0.200]")
    assert "agreement is r > 0" in fig._suptitle.get_text()
    sdd = next(ref for ref in QUALITY_REFERENCES if ref.column == "sdd_quality")
    assert sdd.lower_is_better is False and sdd.edc_proxy is False  # higher = better, not a proxy
    plt.close(fig)
