"""docs/results.py, the generator of docs/results.md's findings tables, on the tiny run's outputs:
every cell is the value of the output file it names, and a missing run is refused clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "results.py"

pytestmark = pytest.mark.workflow


def _table(*args: str) -> tuple[list[str], dict[str, list[str]]]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=True
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return header, rows


def test_cells_are_the_run_s_values(tiny_run):
    results = tiny_run / "results"
    header, rows = _table(
        f"tiny={results}",
        f"again={results}",
        "--models",
        "demo",
        "--edc-split",
        "all",
        "--edc-fmr",
        "0.01",
    )
    assert header == ["tiny/demo", "again/demo"]

    corr = pd.read_csv(results / "demo" / "correlations.csv")
    effect = corr[(corr["x"] == "class_size") & (corr["y"] == "class_norm_mean")].iloc[0]
    r, lo, hi = (float(effect[k]) for k in ("r", "ci_low", "ci_high"))
    cell = rows["Spearman(class size, class mean norm)"][0].replace("−", "-")
    assert [float(v) for v in cell.replace("[", "").replace("]", "").replace(",", "").split()] == (
        pytest.approx([r, lo, hi], abs=5e-4)
    )

    curve = pd.read_csv(results / "models" / "demo" / "training_curve.csv")
    accuracy = rows["training accuracy (last epoch)"][1]
    assert float(accuracy) == pytest.approx(curve["train_accuracy"].iloc[-1], abs=5e-4)

    edc = pd.read_csv(results / "demo" / "edc.csv")
    # the tiny demo holds out one image per identity: no held-out pairs, so the test reads "all";
    # its one-epoch model misses every genuine pair at FMR 1e-3, so it reads FMR 1e-2
    footing = edc[(edc["split"] == "all") & (edc["fmr"] == 0.01) & (edc["discard_limit"] == 0.2)]
    pauc = footing.set_index("quality")["pauc"]
    # gap closed, recomputed from the pAUCs: (random - pAUC) / (random - ideal)
    expected = (pauc["random"] - pauc["true_quality"]) / (pauc["random"] - pauc["ideal"])
    got = float(rows["EDC: gap closed by true_quality"][0].replace("−", "-"))
    assert got == pytest.approx(expected, abs=5e-3)


def test_a_folder_without_a_run_or_a_split_is_refused(tmp_path, tiny_run):
    def refused(*args: str) -> str:
        proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)
        assert proc.returncode != 0
        return proc.stderr

    assert "run the workflow first" in refused(str(tmp_path))
    assert "--edc-split one of ['all', 'train']" in refused(str(tiny_run / "results"))
