"""Tests of featnorm.report.plots: each figure draws the data it claims, from small tables."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from featnorm import options, tableio
from featnorm.analysis import (
    class_stats,
    columns,
    contrast_tables,
    correlations,
    merge,
    standardisation,
)
from featnorm.cli.main import main
from featnorm.report import plots

POLICIES = ["z", "rank"]


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 30, size=30)
    labels = np.repeat(np.arange(30), sizes)
    n = len(labels)
    manifest = pd.DataFrame(
        {
            "sample_id": np.arange(n),
            "path": "x.png",
            "label": labels,
            "class_name": [f"c{label}" for label in labels],
            "true_quality": rng.uniform(size=n),
        }
    )
    brisque = pd.DataFrame(
        {"sample_id": np.arange(n), "brisque": rng.normal(40, 8, n), "status": "ok"}
    )
    embed = pd.DataFrame(
        {"sample_id": np.arange(n), "feature_norm": rng.normal(20, 1, n), "status": "ok"}
    )
    samples, _ = standardisation.standardise(
        merge.merge_samples(manifest, brisque, embed),
        policies=POLICIES,
        min_class_size=2,
        ddof=1,
        residual_degree=1,
    )
    corr = correlations.correlation_table(
        samples,
        model="m",
        x_columns=columns.norm_columns(POLICIES),
        methods=["pearson"],
        replicates=50,
        confidence=0.95,
        seed=0,
    )
    return samples, class_stats.class_stats(samples), corr


def test_class_sizes_plots_sizes_sorted_descending(study):
    _, cs, _ = study
    fig = plots.class_sizes(cs, model="m")
    y = fig.axes[0].lines[0].get_ydata()
    assert np.all(np.diff(y) <= 0) and sorted(y, reverse=True) == list(y)
    assert y.sum() == cs["n"].sum() and fig.axes[0].get_yscale() == "log"
    plt.close(fig)


def test_class_norm_mean_follows_class_size_order(study):
    _, cs, _ = study
    fig = plots.class_norm_mean(cs, model="m")
    dots = fig.axes[0].collections[0].get_offsets()[:, 1]
    expected = cs.sort_values(["n", "label"], ascending=[False, True])["norm_mean"].to_numpy()
    np.testing.assert_allclose(dots, expected)
    plt.close(fig)


def test_norm_vs_brisque_titles_carry_signed_r_and_sign_note(study):
    samples, _, corr = study
    cols = columns.norm_columns(POLICIES)
    fig = plots.norm_vs_brisque(samples, corr, x_columns=cols, model="m")
    r = corr[
        (corr["x"] == "feature_norm_z") & (corr["y"] == "brisque") & (corr["method"] == "pearson")
    ]["r"].iloc[0]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert any(f"r = {r:+.3f}" in t for t in titles)
    assert "agreement is r < 0" in fig._suptitle.get_text()
    plt.close(fig)


def test_forest_has_one_row_per_correlation(study):
    _, _, corr = study
    fig = plots.forest(corr, title="t")
    assert len(fig.axes[0].get_yticks()) == len(corr)
    plt.close(fig)


@pytest.mark.parametrize("kind", ["trends", "ground_truth"])
def test_sample_figures_have_a_panel_per_column(study, kind):
    samples, _, _ = study
    cols = columns.norm_columns(POLICIES)
    fig = plots.FIGURES[kind](samples, x_columns=cols, model="m")
    if kind == "trends":
        assert len(fig.axes[0].get_legend().get_texts()) == len(cols)
    else:
        assert len([a for a in fig.axes if a.get_xlabel()]) == len(cols) + 1
    plt.close(fig)


def test_two_levels_draws_class_means_and_centred_images(study):
    samples, _, _ = study
    dec = contrast_tables.decomposition_table(
        samples, model="m", x_columns=["feature_norm"], replicates=50, confidence=0.95, seed=0
    )
    fig = plots.two_levels(samples, dec, model="m")
    left, right = fig.axes[0], fig.axes[1]
    means = samples[samples["status"] == "ok"].groupby("label")[["brisque", "feature_norm"]].mean()
    np.testing.assert_allclose(left.collections[0].get_offsets(), means.to_numpy())
    row = dec[dec["y"] == "brisque"].iloc[0]
    assert f"r_between = {row['r_between']:+.3f}" in left.get_title()
    assert f"r_within = {row['r_within']:+.3f}" in right.get_title()
    assert "agreement is r < 0" in fig._suptitle.get_text()
    plt.close(fig)


def test_by_class_size_has_one_point_per_band_and_column(study):
    samples, _, _ = study
    cols = columns.norm_columns(POLICIES)
    table = contrast_tables.by_class_size_table(
        samples,
        model="m",
        x_columns=cols,
        methods=["pearson"],
        size_bins=[2, 4, 8, 16],
        replicates=50,
        confidence=0.95,
        seed=0,
    )
    fig = plots.by_class_size(table, model="m")
    ax = fig.axes[0]
    assert len(ax.get_legend().get_texts()) == len(cols)
    bands = table[["size_low", "size_high"]].drop_duplicates()
    assert len(ax.get_xticks()) == len(bands)
    raw = table[(table["x"] == "feature_norm") & (table["y"] == "brisque")]
    plotted = ax.lines[0].get_ydata()  # the first series: feature_norm markers
    np.testing.assert_allclose(plotted, raw["r"].to_numpy())
    plt.close(fig)


def test_every_figure_has_a_drawing_function():
    assert sorted(plots.FIGURES) == sorted(options.FIGURES)


@pytest.mark.parametrize("kind", options.FIGURES)
def test_plot_step_draws_each_figure_from_the_tables_options_names(study, tmp_path, capsys, kind):
    """`featnorm plot` reads exactly the tables of options.FIGURE_INPUTS[kind] (the ones the
    workflow's rule passes) and draws the figure from them; without one it names the flag."""
    samples, class_stats, corr = study
    tables = {"samples": samples, "class_stats": class_stats, "correlations": corr}
    tables["decomposition"] = contrast_tables.decomposition_table(
        samples, model="m", x_columns=["feature_norm"], replicates=20, confidence=0.95, seed=0
    )
    tables["by_class_size"] = contrast_tables.by_class_size_table(
        samples,
        model="m",
        x_columns=["feature_norm"],
        methods=["pearson"],
        size_bins=[2, 8],
        replicates=20,
        confidence=0.95,
        seed=0,
    )
    flags = []
    for name in options.FIGURE_INPUTS[kind]:
        if name in ("samples", "class_stats"):
            path = tmp_path / f"{name}.parquet"
            tableio.write_table(tables[name], path)
        else:
            path = tmp_path / f"{name}.csv"
            tableio.write_text(tables[name].to_csv(index=False), path)
        flags += [options.table_flag(name), str(path)]
    if kind in options.FIGURES_WITH_POLICIES:
        flags += ["--policies", *POLICIES]
    png, svg = tmp_path / "f.png", tmp_path / "f.svg"
    common = ["plot", "--kind", kind, "--model", "m", "--png", str(png), "--svg", str(svg)]
    assert main(common + flags) == 0
    assert png.stat().st_size > 0 and svg.stat().st_size > 0
    capsys.readouterr()
    assert main(common + flags[2:]) == 1  # the first table left out: refused, naming its flag
    assert f"plot --kind {kind} needs {flags[0]}" in capsys.readouterr().err
