"""Reading and writing featnorm's tables: Parquet written atomically, with provenance metadata.

Every table carries, in its Parquet key-value metadata under ``featnorm``, a JSON object with the
featnorm version and the parameters that produced it. Writes go to a temporary file in the
destination folder and are renamed into place, so a killed job never leaves a half-written
table that a re-run would accept.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from featnorm import __version__

__all__ = [
    "METADATA_KEY",
    "atomic_path",
    "read_csv",
    "read_csvs",
    "read_metadata",
    "read_table",
    "read_tables",
    "write_table",
    "write_text",
]

METADATA_KEY = b"featnorm"


class atomic_path:
    """Context manager yielding a temporary path beside ``path``; renamed onto it on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """

    def __init__(self, path: str | os.PathLike, suffix: str = ""):
        self.path = Path(path)
        self.tmp: Path | None = None
        self.suffix = suffix or self.path.suffix

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=f".tmp{self.suffix}", dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def _metadata_json(params: Mapping[str, Any] | None) -> bytes:
    payload = {"featnorm_version": __version__, **(params or {})}
    return json.dumps(payload, sort_keys=True, default=str).encode()


def _nested_read_as_object(pandas_meta: bytes) -> bytes:
    """Pandas metadata that reads nested Arrow columns back as object columns of arrays.

    An embedding column may arrive as an Arrow fixed-size list (``pd.ArrowDtype``), built from one
    matrix; pandas records that dtype by a name it cannot parse back, so every nested column is
    recorded as what ``read_table`` gives for it: an object column of NumPy arrays.
    """
    info = json.loads(pandas_meta)
    for column in info["columns"]:
        if str(column["numpy_type"]).startswith(("fixed_size_list", "list")):
            column["pandas_type"] = column["numpy_type"] = "object"
    return json.dumps(info).encode()


def write_table(
    df: pd.DataFrame,
    path: str | os.PathLike,
    *,
    params: Mapping[str, Any] | None = None,
    schema: pa.Schema | None = None,
) -> None:
    """Write ``df`` to Parquet at ``path`` atomically, with ``params`` in the metadata.

    The index is not stored. ``schema`` may force column types (e.g. a fixed-size list).
    """
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"pandas"] = _nested_read_as_object(meta[b"pandas"])
    meta[METADATA_KEY] = _metadata_json(params)
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a featnorm Parquet table into a DataFrame."""
    return pq.read_table(path, columns=columns).to_pandas()


def read_tables(paths: list[str | os.PathLike], columns: list[str] | None = None) -> pd.DataFrame:
    """The Parquet tables at ``paths`` (e.g. every shard of a step) as one DataFrame, rows in the
    order of ``paths``; Arrow reads them in one call, on its own threads."""
    return pq.read_table([str(p) for p in paths], columns=columns).to_pandas()


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV table that featnorm wrote (correlations.csv, edc.csv, training_curve.csv, ...).

    Only empty fields are missing values (``to_csv`` writes NaN and None so); pandas' default
    would also turn the text NA, None or nan into NaN, a model of that name among them.
    """
    return pd.read_csv(path, keep_default_na=False, na_values=[""])


def read_csvs(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """The CSV tables at ``paths`` (one per model) in one table, in the order of ``paths``."""
    return pd.concat([read_csv(p) for p in paths], ignore_index=True)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The featnorm metadata (version and parameters) of a Parquet table; {} if absent."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file (CSV, Markdown, JSON) atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
