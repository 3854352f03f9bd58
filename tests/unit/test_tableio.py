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


def test_read_tables_keeps_the_order_of_the_paths(tmp_path):
    parts = [
        pd.DataFrame({"sample_id": [k * 10, k * 10 + 1], "s": [f"a{k}", None]}) for k in range(3)
    ]
    paths = [tmp_path / f"shard-{k}.parquet" for k in range(3)]
    for part, path in zip(parts, paths, strict=True):
        tableio.write_table(part, path, params={"shard": 0})
    order = [2, 0, 1]
    got = tableio.read_tables([paths[k] for k in order], columns=["sample_id"])
    assert got["sample_id"].tolist() == [20, 21, 0, 1, 10, 11]
    both = tableio.read_tables(paths)
    assert both.equals(pd.concat(parts, ignore_index=True))
