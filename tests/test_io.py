"""featnorm.io: atomic Parquet with provenance metadata."""

import pandas as pd
import pytest

from featnorm import __version__, io


def test_tables_round_trip_with_metadata(tmp_path):
    df = pd.DataFrame({"sample_id": [0, 1], "brisque": [1.5, float("nan")]})
    io.write_table(df, tmp_path / "t.parquet", params={"flavour": "live"})
    assert io.read_table(tmp_path / "t.parquet").equals(df)
    assert io.read_metadata(tmp_path / "t.parquet") == {
        "featnorm_version": __version__,
        "flavour": "live",
    }


def test_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "t.txt"
    io.write_text("old", target)
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
