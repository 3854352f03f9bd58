"""Building the manifest: one row per image, with a stable ``sample_id``.

Formats (``dataset.format``):

* ``demo``: generate the embedded synthetic dataset (``featnorm.data.demo``) and list it;
* ``imagefolder``: ``root/<class>/<image>`` with extensions jpg, jpeg, png, bmp, webp (any case);
* ``list``: a CSV or Parquet file with columns ``path,label`` (optional ``class_name``); relative
  paths resolve against the list file's folder;
* ``recordio``: insightface ``train.rec`` + ``train.idx`` (``featnorm.data.recordio``).

``sample_id`` is 0..N-1 after sorting by (class, path), never filesystem order, so the same input
gives the same ids on every machine. Labels of an image folder are the sorted class-folder
indices, as torchvision's ImageFolder assigns them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["IMAGE_EXTENSIONS", "build_manifest", "finalise", "from_imagefolder", "from_list"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
MANIFEST_COLUMNS = ["sample_id", "path", "label", "class_name"]


def finalise(table: pd.DataFrame, *, order: tuple[str, ...] = ("label", "path")) -> pd.DataFrame:
    """Sort by ``order``, number the rows 0..N-1 as ``sample_id``, fix dtypes.

    ``table`` needs ``path``, ``label`` and ``class_name``; other columns are kept after them.
    RecordIO sorts by (label, record_index): its locators ``train.rec#9`` / ``#10`` do not sort
    as strings. Raises ValueError for an empty table or duplicated paths.
    """
    if table.empty:
        raise ValueError("the dataset holds no images; check dataset.root / dataset.list")
    dupes = table["path"][table["path"].duplicated()]
    if len(dupes):
        raise ValueError(f"{len(dupes)} image paths are listed twice, e.g. {dupes.iloc[0]!r}")
    table = table.astype({"path": "string", "label": "int64", "class_name": "string"})
    table = table.sort_values(list(order), kind="stable").reset_index(drop=True)
    table.insert(0, "sample_id", pd.RangeIndex(len(table), dtype="int64").to_numpy())
    extra = [c for c in table.columns if c not in MANIFEST_COLUMNS]
    return table[MANIFEST_COLUMNS + extra]


def from_imagefolder(root: str | os.PathLike) -> pd.DataFrame:
    """List ``root/<class>/<image>``; classes are sorted folder names, labels their index.

    Empty class folders are reported in the log and have no rows (they have no image to score).
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(
            f"dataset.root = {str(root)!r} is not a folder; point it at root/<class>/<image>"
        )
    class_dirs = sorted(p for p in root_path.iterdir() if p.is_dir())
    rows, empty = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(
            f.name
            for f in class_dir.iterdir()
            if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not files:
            empty.append(class_dir.name)
        rows += [
            {
                "path": os.path.join(str(root), class_dir.name, name),
                "label": label,
                "class_name": class_dir.name,
            }
            for name in files
        ]
    if empty:
        logger.warning("%d class folders hold no image and are skipped: %s", len(empty), empty[:10])
    return pd.DataFrame(rows, columns=["path", "label", "class_name"])


def from_list(list_file: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet list with columns ``path,label`` (optional ``class_name``)."""
    list_path = Path(list_file)
    if not list_path.is_file():
        raise FileNotFoundError(f"dataset.list = {str(list_file)!r} does not exist")
    if list_path.suffix.lower() == ".parquet":
        table = pd.read_parquet(list_path)
    else:
        table = pd.read_csv(list_path, dtype={"path": str})
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise ValueError(
            f"dataset.list {str(list_file)!r} lacks column(s) {sorted(missing)}; it needs path,label"
        )
    if not pd.api.types.is_integer_dtype(table["label"]):
        raise ValueError(f"dataset.list {str(list_file)!r}: column label must hold integers")
    base = os.path.dirname(str(list_file))
    table["path"] = [p if os.path.isabs(p) else os.path.join(base, p) for p in table["path"]]
    if "class_name" not in table.columns:
        table["class_name"] = table["label"].astype(str)
    return table


def build_manifest(
    fmt: str,
    *,
    root: str | None = None,
    list_file: str | None = None,
    demo: dict[str, Any] | None = None,
    demo_dir: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The manifest table of a dataset and the parameters to store in its metadata."""
    params: dict[str, Any] = {"format": fmt}
    order = ("label", "path")
    if fmt == "demo":
        from featnorm.data import demo as demo_mod

        if demo_dir is None:
            raise ValueError("format demo needs --demo-dir, the folder for the generated images")
        demo_params = demo_mod.DemoParams(**(demo or {}))
        table = demo_mod.generate(demo_params, demo_dir)
        params["demo"] = demo_params.__dict__
    elif fmt == "imagefolder":
        if root is None:
            raise ValueError("dataset.format = imagefolder needs dataset.root")
        table = from_imagefolder(root)
        params["root"] = root
    elif fmt == "list":
        if list_file is None:
            raise ValueError("dataset.format = list needs dataset.list")
        table = from_list(list_file)
        params["list"] = list_file
    elif fmt == "recordio":
        from featnorm.data import recordio

        if root is None:
            raise ValueError("dataset.format = recordio needs dataset.root")
        with recordio.RecordIO(root) as records:
            table = records.manifest().drop(columns=["sample_id"])
        params["root"] = root
        order = ("label", "record_index")
    else:
        raise ValueError(
            f"dataset.format = {fmt!r} is not known; use demo, imagefolder, list or recordio"
        )
    manifest = finalise(table, order=order)
    sizes = manifest.groupby("label").size()
    logger.info(
        "%d images, %d classes, class size min %d / median %d / max %d",
        len(manifest),
        len(sizes),
        sizes.min(),
        int(sizes.median()),
        sizes.max(),
    )
    return manifest, params
