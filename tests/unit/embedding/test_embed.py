"""Per-shard extraction (featnorm.embedding.embed) and the ``embed`` CLI step."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch
from support.recipe import golden_state_dict

from featnorm import tableio
from featnorm.cli.main import main
from featnorm.embedding import embed, models

NORM_RTOL = 1e-5  # BN folding and batching move norms by float32 rounding (~1e-7) only
# golden_ir_18.npz: official norms and pre_norm_vector_add flip-fused norms of images 1..3
# (see tests/unit/embedding/test_models.py for provenance; images 1..3 are rebuilt from their formulas).
GOLDEN_IR18_NORMS = (13.309061050415039, 13.126277923583984, 13.379095077514648)
GOLDEN_IR18_FLIP_FUSED = (25.142330169677734, 25.03850555419922, 25.2624568939209)


def formula_images_bgr() -> list[np.ndarray]:
    """Golden images 1, 2, 3 of shared/reference/adaface (formulas in its README), BGR uint8."""
    noise = np.random.default_rng(1).integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    ramp = np.round(255 * np.arange(112) / 111).astype(np.uint8)
    gradient = np.empty((112, 112, 3), dtype=np.uint8)
    gradient[..., 0], gradient[..., 1], gradient[..., 2] = ramp[None, :], ramp[:, None], 64
    blocks = np.random.default_rng(3).integers(0, 256, size=(14, 14, 3), dtype=np.uint8)
    blocks = blocks.repeat(8, axis=0).repeat(8, axis=1)
    return [np.ascontiguousarray(rgb[:, :, ::-1]) for rgb in (noise, gradient, blocks)]


def _model(family: str, arch: str) -> torch.nn.Module:
    model = models.build(family, arch)
    model.load_state_dict(golden_state_dict(model))
    return model.eval()


@pytest.fixture(scope="module")
def demo_model() -> torch.nn.Module:
    return _model("adaface", "ir_demo")


def _shard(paths) -> pd.DataFrame:
    n = len(paths)
    return pd.DataFrame(
        {
            "sample_id": np.arange(100, 100 + n, dtype=np.int64),
            "path": [str(p) for p in paths],
            "label": np.zeros(n, dtype=np.int64),
            "class_name": ["a"] * n,
        }
    )


@pytest.fixture()
def mixed_files(tmp_path):
    """Good images in several encodings, plus undecodable, empty and missing files.

    Returns (paths, expected status per path, the 8-bit BGR image each good file holds).
    """
    rng = np.random.default_rng(0)
    bgr = [rng.integers(0, 256, size=(112, 112, 3), dtype=np.uint8) for _ in range(3)]
    grey = rng.integers(0, 256, size=(112, 112), dtype=np.uint8)
    files: list[tuple[str, object, str]] = []  # (name, content, status)
    files += [(f"bgr{i}.png", im, "ok") for i, im in enumerate(bgr)]
    files += [("grey.png", grey, "ok")]
    files += [("rgba.png", np.dstack([bgr[0], np.full((112, 112), 7, np.uint8)]), "ok")]
    files += [("deep.png", bgr[1].astype(np.uint16) * 257, "ok")]
    files += [("broken.png", b"this is not an image", "undecodable")]
    files += [("empty.png", b"", "empty_file")]
    files += [("missing.png", None, "missing_file")]
    paths, statuses = [], []
    for name, content, status in files:
        path = tmp_path / name
        if isinstance(content, np.ndarray):
            assert cv2.imwrite(str(path), content)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        paths.append(path)
        statuses.append(status)
    as_bgr = [bgr[0], bgr[1], bgr[2], np.dstack([grey] * 3), bgr[0], bgr[1]]
    return paths, statuses, as_bgr


@pytest.mark.parametrize("workers", [0, 2])
def test_rows_in_equal_rows_out_with_statuses_and_nan(demo_model, mixed_files, workers):
    paths, statuses, as_bgr = mixed_files
    shard = _shard(paths)
    out = embed.embed_table(
        shard, demo_model, family="adaface", device="cpu", batch_size=4, workers=workers
    )
    assert list(out.columns) == ["sample_id", "feature_norm", "status", "resized"]
    assert out["sample_id"].tolist() == shard["sample_id"].tolist()
    assert out["status"].tolist() == statuses
    assert out["feature_norm"].dtype == np.float32
    ok = out["status"] == "ok"
    assert out.loc[~ok, "feature_norm"].isna().all() and out.loc[ok, "feature_norm"].notna().all()
    # grey (replicated), RGBA (alpha dropped) and 16-bit (scaled) give the 8-bit BGR result
    with torch.inference_mode():
        expected = demo_model(models.preprocess(as_bgr))[1][:, 0].numpy()
    np.testing.assert_allclose(out.loc[ok, "feature_norm"], expected, rtol=NORM_RTOL)


def test_other_sizes_are_resized_and_flagged(demo_model, tmp_path):
    image = np.random.default_rng(2).integers(0, 256, size=(150, 130, 3), dtype=np.uint8)
    path = tmp_path / "big.png"
    cv2.imwrite(str(path), image)
    out = embed.embed_table(
        _shard([path]), demo_model, family="adaface", device="cpu", batch_size=2
    )
    assert out["resized"].tolist() == [True] and out["status"].tolist() == ["ok"]
    with torch.inference_mode():
        expected = demo_model(models.preprocess([image]))[1][0, 0].item()
    assert out["feature_norm"][0] == pytest.approx(expected, rel=NORM_RTOL)


@pytest.fixture(scope="module")
def golden_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    paths = []
    for i, image in enumerate(formula_images_bgr(), start=1):
        paths.append(folder / f"{i}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def test_single_view_and_flip_fusion_match_the_official_ir18(golden_files):
    model = _model("adaface", "ir_18")
    plain = embed.embed_table(
        _shard(golden_files), model, family="adaface", device="cpu", batch_size=2
    )
    np.testing.assert_allclose(plain["feature_norm"], GOLDEN_IR18_NORMS, rtol=NORM_RTOL)
    fused = embed.embed_table(
        _shard(golden_files),
        model,
        family="adaface",
        device="cpu",
        batch_size=2,
        flip_fusion="pre_norm_vector_add",
    )
    np.testing.assert_allclose(fused["feature_norm"], GOLDEN_IR18_FLIP_FUSED, rtol=NORM_RTOL)
    ratio = fused["feature_norm"] / plain["feature_norm"]
    assert ((ratio > 1.8) & (ratio <= 2.0)).all()  # "the fused norm is ~2x the plain one"


def test_norm_weighted_avg_fused_norm_is_the_mean_of_both_views(demo_model, golden_files):
    out = embed.embed_table(
        _shard(golden_files),
        demo_model,
        family="adaface",
        device="cpu",
        batch_size=3,
        flip_fusion="norm_weighted_avg",
        save_embeddings=True,
    )
    x = models.preprocess(formula_images_bgr())
    with torch.inference_mode():
        emb, norm = demo_model(x)
        flip_emb, flip_norm = demo_model(torch.flip(x, dims=[3]))
    np.testing.assert_allclose(out["feature_norm"], ((norm + flip_norm) / 2)[:, 0], rtol=NORM_RTOL)
    weighted = emb * norm + flip_emb * flip_norm  # same direction as the norm-weighted average
    expected = (weighted / torch.linalg.vector_norm(weighted, dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(np.stack(out["embedding"]), expected, atol=1e-3)  # float16


def test_saved_embeddings_are_float16_unit_vectors_and_survive_parquet(
    demo_model, mixed_files, tmp_path
):
    paths, statuses, _ = mixed_files
    out = embed.embed_table(
        _shard(paths),
        demo_model,
        family="adaface",
        device="cpu",
        batch_size=4,
        save_embeddings=True,
    )
    ok = (out["status"] == "ok").to_numpy()
    # one Arrow fixed-size list column, built from one float16 matrix
    assert out["embedding"].dtype == pd.ArrowDtype(pa.list_(pa.float16(), 512))
    column = pa.array(out["embedding"].array)
    vectors = column.values.to_numpy().reshape(-1, 512)[ok]
    assert vectors.dtype == np.float16 and vectors.shape == (ok.sum(), 512)
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float64), axis=1), 1.0, atol=2e-3)
    assert out.loc[~ok, "embedding"].isna().all()
    path = tmp_path / "out.parquet"
    tableio.write_table(out, path, params={"step": "embed"}, schema=embed.output_schema(True))
    back = tableio.read_table(path)
    assert back["status"].tolist() == statuses
    np.testing.assert_array_equal(np.stack(back.loc[ok, "embedding"]).astype(np.float16), vectors)


def test_magface_family_uses_its_input_range(tmp_path):
    model = _model("magface", "iresnet18")
    image = formula_images_bgr()[0]
    path = tmp_path / "m.png"
    cv2.imwrite(str(path), image)
    out = embed.embed_table(_shard([path]), model, family="magface", device="cpu", batch_size=1)
    with torch.inference_mode():
        expected = model(models.preprocess([image], family="magface"))[1][0, 0].item()
        wrong_range = model(models.preprocess([image], family="adaface"))[1][0, 0].item()
    assert out["feature_norm"][0] == pytest.approx(expected, rel=NORM_RTOL)
    assert out["feature_norm"][0] != pytest.approx(wrong_range, rel=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"precision": "bf16", "device": "cpu"},
            r"precision 'bf16' is a CUDA option .* use precision fp32",
        ),
        ({"flip_fusion": "average"}, r"flip_fusion 'average' is not known; use one of none, "),
        ({"device": "tpu"}, r"device 'tpu' is not known; use one of auto, cpu, cuda"),
        ({"batch_size": 0}, r"batch_size = 0; it must be at least 1"),
        ({"family": "arcface"}, r"family 'arcface' is not known"),
    ],
)
def test_bad_options_are_value_errors(demo_model, kwargs, match):
    options = {"family": "adaface", "device": "cpu", "batch_size": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        embed.embed_table(_shard(["x.png"]), demo_model, **options)


def test_cuda_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ValueError, match="no CUDA GPU is visible; use auto or cpu"):
        embed.resolve_device("cuda")
    assert embed.resolve_device("auto").type == "cpu"


def test_cli_embed_writes_table_metadata_and_a_plain_log(demo_model, mixed_files, tmp_path):
    paths, statuses, _ = mixed_files
    shard_path, ckpt, output, log = (
        tmp_path / n for n in ("shard-0.parquet", "demo.ckpt", "embed.parquet", "embed.log")
    )
    tableio.write_table(_shard(paths), shard_path, params={"shard": 0, "shards": 1})
    torch.save(
        {
            "epoch": 1,
            "global_step": 9,
            "state_dict": {f"model.{k}": v for k, v in demo_model.state_dict().items()}
            | {"head.kernel": torch.zeros(512, 3)},
        },
        ckpt,
    )
    code = main(
        [
            "embed",
            "--shard",
            str(shard_path),
            "--checkpoint",
            str(ckpt),
            "--family",
            "adaface",
            "--arch",
            "ir_demo",
            "--device",
            "cpu",
            "--batch-size",
            "2",
            "--workers",
            "0",
            "--min-side",
            "32",
            "--flip-fusion",
            "none",
            "--precision",
            "fp32",
            "--save-embeddings",
            "--threads",
            "1",
            "--output",
            str(output),
            "--log",
            str(log),
        ]
    )
    assert code == 0
    table = tableio.read_table(output)
    assert table["status"].tolist() == statuses
    meta = tableio.read_metadata(output)
    assert meta["family"] == "adaface" and meta["arch"] == "ir_demo"
    assert meta["flip_fusion"] == "none" and meta["shard"] == 0
    assert meta["status_counts"] == {"ok": 6, "undecodable": 1, "empty_file": 1, "missing_file": 1}
    assert "resize_policy" in meta
    text = log.read_text()
    assert "\r" not in text and "embedded 9/9 images" in text


def test_empty_shard_gives_an_empty_table_with_the_columns(demo_model):
    out = embed.embed_table(
        _shard([]), demo_model, family="adaface", device="cpu", batch_size=4, save_embeddings=True
    )
    assert len(out) == 0
    assert list(out.columns) == ["sample_id", "feature_norm", "status", "resized", "embedding"]
