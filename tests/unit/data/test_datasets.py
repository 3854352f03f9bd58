"""featnorm.data.datasets and featnorm.data.shards: manifests from folders and lists, stable ids, shards."""

import cv2
import numpy as np
import pandas as pd
import pytest

from featnorm.data import datasets, shards


def _write(path, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((112, 112, 3), value, np.uint8)
    ok, buf = cv2.imencode(path.suffix if path.suffix.lower() != ".jpeg" else ".jpg", image)
    assert ok
    path.write_bytes(buf.tobytes())


def test_imagefolder_lists_images_case_insensitively_in_sorted_order(tmp_path):
    for rel in ["bob/2.PNG", "bob/1.jpg", "alice/b.JPEG", "alice/a.bmp", "alice/c.webp"]:
        _write(tmp_path / rel)
    (tmp_path / "alice" / "notes.txt").write_text("not an image")
    (tmp_path / "empty_class").mkdir()
    manifest, params = datasets.build_manifest("imagefolder", root=str(tmp_path))
    names = [p.split("/")[-2] + "/" + p.split("/")[-1] for p in manifest["path"]]
    assert names == ["alice/a.bmp", "alice/b.JPEG", "alice/c.webp", "bob/1.jpg", "bob/2.PNG"]
    assert manifest["sample_id"].tolist() == [0, 1, 2, 3, 4]
    assert manifest["label"].tolist() == [0, 0, 0, 1, 1]  # labels follow sorted class folders
    assert manifest["class_name"].tolist()[:1] == ["alice"]
    assert manifest.dtypes["sample_id"] == "int64" and manifest.dtypes["label"] == "int64"
    assert params == {"format": "imagefolder", "root": str(tmp_path)}


def test_list_file_resolves_relative_paths_and_ids_ignore_row_order(tmp_path):
    _write(tmp_path / "img" / "x.png")
    _write(tmp_path / "img" / "y.png")
    rows = pd.DataFrame({"path": ["img/y.png", "img/x.png"], "label": [1, 1]})
    rows.to_csv(tmp_path / "list.csv", index=False)
    rows.iloc[::-1].to_parquet(tmp_path / "list.parquet")
    from_csv, _ = datasets.build_manifest("list", list_file=str(tmp_path / "list.csv"))
    from_parquet, _ = datasets.build_manifest("list", list_file=str(tmp_path / "list.parquet"))
    assert from_csv["path"].tolist() == from_parquet["path"].tolist()
    assert from_csv["path"].iloc[0] == str(tmp_path / "img" / "x.png")


@pytest.mark.parametrize(
    ("fmt", "kwargs", "error", "match"),
    [
        ("imagefolder", {"root": "/no/such"}, FileNotFoundError, "dataset.root"),
        ("list", {"list_file": "/no/such.csv"}, FileNotFoundError, "dataset.list"),
        ("tfrecord", {}, ValueError, "dataset.format = 'tfrecord'"),
    ],
)
def test_bad_sources_raise_with_the_key(fmt, kwargs, error, match):
    with pytest.raises(error, match=match):
        datasets.build_manifest(fmt, **kwargs)


def test_list_without_label_column_is_refused(tmp_path):
    pd.DataFrame({"path": ["a.png"]}).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['label'\]"):
        datasets.from_list(tmp_path / "l.csv")


@pytest.mark.parametrize("n_shards", [1, 3, 7, 10])
def test_shards_are_balanced_and_cover_every_image_once(n_shards):
    manifest = pd.DataFrame({"sample_id": np.arange(10), "label": np.repeat([0, 1], 5)})
    parts = shards.split(manifest, n_shards)
    ids = np.concatenate([p["sample_id"].to_numpy() for p in parts])
    assert sorted(ids) == list(range(10))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_more_shards_than_images_is_refused():
    with pytest.raises(ValueError, match="shards = 11 but the dataset has 10 images"):
        shards.split(pd.DataFrame({"sample_id": np.arange(10)}), 11)
