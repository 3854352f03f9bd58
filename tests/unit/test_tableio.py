"""featnorm.tableio: atomic Parquet with provenance metadata."""

import numpy as np
import pandas as pd
import pytest

from featnorm import __version__, tableio


def test_tables_round_trip_with_metadata(tmp_path):
    df = pd.DataFrame({"sample_id": [0, 1], "brisque": [1.5, float("nan")]})
    tableio.write_table(df, tmp_path / "t.parquet", params={"flavour": "live"})
    assert tableio.read_table(tmp_path / "t.parquet").equals(df)
    assert tableio.read_metadata(tmp_path / "t.parquet") == {
        "featnorm_version": __version__,
        "flavour": "live",
    }


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "t.txt"
    tableio.write_text("old", target)
    with pytest.raises(RuntimeError), tableio.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_read_csv_keeps_a_model_named_na_and_reads_empty_fields_as_missing(tmp_path):
    table = pd.DataFrame({"model": ["NA", "None"], "r": [0.5, np.nan], "flag": ["", "constant"]})
    tableio.write_text(table.to_csv(index=False), tmp_path / "a.csv")
    tableio.write_text(table.to_csv(index=False), tmp_path / "b.csv")
    back = tableio.read_csv(tmp_path / "a.csv")
    assert back["model"].tolist() == ["NA", "None"]
    assert np.isnan(back["r"].iloc[1]) and pd.isna(back["flag"].iloc[0])
    both = tableio.read_csvs([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert both["model"].tolist() == ["NA", "None", "NA", "None"] and both.index.is_unique
