"""featnorm.report.training_length: gathering each trained model's rows against its epochs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from featnorm.report import training_length


def _correlations(model: str, effect: float) -> pd.DataFrame:
    rows = [
        ("feature_norm", "true_quality", "spearman", 0.10, 0.10),
        ("feature_norm", "brisque", "spearman", -0.20, 0.20),
        ("feature_norm", "brisque", "pearson", -0.30, 0.30),
        ("feature_norm_z", "true_quality", "spearman", 0.15, 0.15),
        ("feature_norm", "brisque | log class_size", "partial_pearson", -0.1, 0.1),
        ("class_size", "class_norm_mean", "spearman", effect, float("nan")),
    ]
    table = pd.DataFrame(rows, columns=["x", "y", "method", "r", "quality_aligned_r"])
    table["model"], table["n"] = model, 100
    table["ci_low"], table["ci_high"] = table["r"] - 0.05, table["r"] + 0.05
    table["quality_aligned_ci_low"] = table["quality_aligned_r"] - 0.05
    table["quality_aligned_ci_high"] = table["quality_aligned_r"] + 0.05
    return table


def _curve(epochs: int, accuracy: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "loss": [9.0] * (epochs - 1) + [1.5],
            "train_accuracy": [0.1] * (epochs - 1) + [accuracy],
        }
    )


def test_collect_keeps_the_effect_and_the_method_rows_ordered_by_epochs():
    table = training_length.collect(
        {"long": _correlations("long", 0.3), "short": _correlations("short", 0.0)},
        {"long": _curve(4, 0.99), "short": _curve(2, 0.5)},
        {"long": 4, "short": 2},
        method="spearman",
    )
    assert table["model"].tolist() == ["short"] * 4 + ["long"] * 4  # epochs 2 before 4
    assert set(table["method"]) == {"spearman"}
    assert "brisque | log class_size" not in set(table["y"])
    effect = table[table["x"] == "class_size"].set_index("model")
    assert effect.loc["long", "r"] == 0.3 and effect.loc["short", "r"] == 0.0
    assert effect.loc["long", "train_accuracy"] == 0.99  # the last epoch of the curve
    assert effect.loc["long", "final_loss"] == 1.5
    assert list(table.columns) == training_length.TABLE_COLUMNS
    fig = training_length.plot(table, confidence=0.95)
    assert len(fig.axes) == 3  # class-size effect, true_quality, brisque
    plt.close(fig)


def test_collect_refuses_a_model_without_its_curve_or_method():
    with pytest.raises(ValueError, match=r"\['b'\] lack"):
        training_length.collect(
            {"a": _correlations("a", 0), "b": _correlations("b", 0)},
            {"a": _curve(2, 0.5)},
            {"a": 2, "b": 3},
            method="spearman",
        )
    with pytest.raises(ValueError, match="no kendall rows"):
        training_length.collect(
            {"a": _correlations("a", 0)}, {"a": _curve(2, 0.5)}, {"a": 2}, method="kendall"
        )
