"""featnorm.quality.brisque: parity with the reference scores, the fast sums against brute force, policy."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.special import gamma as gamma_fn
from scipy.stats import spearmanr

from featnorm import options, tableio, threads
from featnorm.cli.main import main
from featnorm.quality import brisque
from featnorm.quality.brisque import ggd, mscn

# Tolerances of issue 4 against the pyiqa column (MATLAB-style pipeline, float32, LIVE model).
PARITY_MEDIAN = 0.1
PARITY_P95 = 1.0
PARITY_MAX = 3.5  # shape-grid flips between float32 and float64
PARITY_SPEARMAN = 0.995


def _photo_like(h: int = 180, w: int = 220, *, seed: int = 7) -> np.ndarray:
    """A real-looking BGR test image: shapes, a smooth gradient, a black (exactly 0) patch and
    sensor-like noise, passed through a JPEG round trip (flat 8x8 blocks, ringing)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.dstack([(xx * 255 / w), (yy * 255 / h), ((xx + yy) * 127 / (h + w))]).astype(
        np.float64
    )
    img = img.astype(np.uint8)
    cv2.circle(img, (w // 3, h // 2), h // 4, (30, 200, 90), -1)
    cv2.rectangle(img, (w // 2, h // 5), (w - 20, h // 2), (220, 40, 40), -1)
    cv2.putText(img, "featnorm", (10, h - 20), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (250, 250, 250), 2)
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    img = np.clip(img + rng.normal(0.0, 6.0, img.shape), 0, 255).astype(np.uint8)
    img[5:40, w - 45 : w - 5] = 0  # exactly-zero region: MSCN exactly 0 there
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 40])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def _grey(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


# ---------------------------------------------------------------------------------------------
# brute-force reference of the MATLAB formulas (np.roll = circshift, masked means)
# ---------------------------------------------------------------------------------------------


def _matlab_ggd(vec: np.ndarray) -> tuple[float, float]:
    gam = ggd.SHAPE_GRID
    r_gam = gamma_fn(1 / gam) * gamma_fn(3 / gam) / gamma_fn(2 / gam) ** 2
    sigma_sq = np.mean(vec**2)
    rho = sigma_sq / np.mean(np.abs(vec)) ** 2
    return gam[np.argmin(np.abs(rho - r_gam))], sigma_sq


def _matlab_aggd(vec: np.ndarray) -> tuple[float, float, float, float]:
    gam = ggd.SHAPE_GRID
    r_gam = gamma_fn(2 / gam) ** 2 / (gamma_fn(1 / gam) * gamma_fn(3 / gam))
    left = np.sqrt(np.mean(vec[vec < 0] ** 2))
    right = np.sqrt(np.mean(vec[vec > 0] ** 2))
    gh = left / right
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
    rnorm = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
    alpha = gam[np.argmin((r_gam - rnorm) ** 2)]
    const = np.sqrt(gamma_fn(1 / alpha)) / np.sqrt(gamma_fn(3 / alpha))
    mean = (right - left) * (gamma_fn(2 / alpha) / gamma_fn(1 / alpha)) * const
    return alpha, mean, left**2, right**2


def _matlab_scale_features(s: np.ndarray) -> list[float]:
    s = s.astype(np.float64)
    feats = list(_matlab_ggd(s.ravel()))
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):  # brisque_feature.m's circshift offsets
        feats += _matlab_aggd((s * np.roll(s, shift, axis=(0, 1))).ravel())
    return feats


def _matlab_imresize_half(x: np.ndarray) -> np.ndarray:
    """MATLAB imresize(x, 0.5) along both axes, weights built per output pixel as MATLAB does."""

    def weights(n: int) -> np.ndarray:
        scale, width = 0.5, 4.0 / 0.5  # antialiasing: kernel stretched by 1/scale
        m = int(np.ceil(n * scale))
        mat = np.zeros((m, n))
        aux = np.concatenate([np.arange(n), np.arange(n - 1, -1, -1)])  # 'symmetric'
        for i in range(m):
            u = (i + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based
            left = int(np.floor(u - width / 2))
            idx = left + np.arange(int(np.ceil(width)) + 2)
            w = scale * mscn._cubic(scale * (u - idx))
            w /= w.sum()
            for j, wt in zip(idx, w, strict=True):
                mat[i, aux[(j - 1) % (2 * n)]] += wt
        return mat

    return weights(x.shape[0]) @ x @ weights(x.shape[1]).T


# ---------------------------------------------------------------------------------------------
# the computation, without reference data
# ---------------------------------------------------------------------------------------------


def _fast_scale_features(s: np.ndarray) -> np.ndarray:
    """The 18 features of one MSCN map through the fast path (flat dots + edge corrections)."""
    h, w = s.shape
    interior = (slice(3, h - 3), slice(3, w - 3))
    sums, edge, nonzero = mscn._block_sums(mscn._Workspace(), s, s[-1], interior)
    sums = mscn._add_edges(sums[None], edge[None], np.array([nonzero]), h, w)
    return ggd.features_from_sums(sums)[0]


@pytest.mark.parametrize("zeros", [True, False])
def test_fast_sums_match_bruteforce_matlab_formulas(zeros):
    grey = _grey(_photo_like())
    s = mscn._mscn(mscn._Workspace(), grey).copy()
    if zeros:
        assert (s == 0).any(), "the test image must exercise exact zeros (counts path)"
    else:
        s[s == 0] = 1e-3  # the fast path without zeros (bit-trick signs, all pairs counted)
    fast = _fast_scale_features(s)
    slow = np.array(_matlab_scale_features(s))
    shape_cols = [0, 2, 6, 10, 14]
    np.testing.assert_array_equal(fast[shape_cols], slow[shape_cols])
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-9)


def test_float64_features_equal_matlab_transcription_on_odd_sizes():
    """Whole pipeline (stacked half scales, batched edges) against the brute-force formulas."""
    images = [_photo_like(61, 47, seed=1), _photo_like(61, 47, seed=2), _photo_like(90, 33)]
    got = brisque.features(images, precision="float64")
    for img, row in zip(images, got, strict=True):
        grey = _grey(img)
        ws = mscn._Workspace("float64")
        half = mscn._half_scale(ws, grey).copy()
        expected = np.array(
            _matlab_scale_features(mscn._mscn(ws, grey).copy())
            + _matlab_scale_features(mscn._mscn(ws, half).copy())
        )
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-8)


def test_batch_equals_one_by_one():
    images = [_photo_like(seed=k) for k in range(5)] + [_grey(_photo_like(seed=9))]
    together = brisque.features(images)
    alone = np.concatenate([brisque.features([img]) for img in images])
    np.testing.assert_allclose(together, alone, rtol=1e-5)  # float32 dot sums, another order


def test_mscn_matches_direct_definition():
    grey = _grey(_photo_like())
    x = grey.astype(np.float64)
    win = np.outer(mscn._window_1d(), mscn._window_1d())
    pad = np.pad(x, 3)  # filter2(..., 'same'): zero padding
    mu = sum(
        win[i, j] * pad[i : i + x.shape[0], j : j + x.shape[1]] for i in range(7) for j in range(7)
    )
    sq = sum(
        win[i, j] * pad[i : i + x.shape[0], j : j + x.shape[1]] ** 2
        for i in range(7)
        for j in range(7)
    )
    expected = (x - mu) / (np.sqrt(np.abs(sq - mu * mu)) + 1)
    got = mscn._mscn(mscn._Workspace(), grey)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 64), (65, 47), (33, 90)])
def test_half_scale_is_matlab_imresize(shape):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    got = mscn._half_scale(mscn._Workspace(), x)
    expected = _matlab_imresize_half(x.astype(np.float64))
    assert got.shape == ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
    np.testing.assert_allclose(got, expected, atol=1e-3)


@pytest.mark.parametrize("crop", [(400, 300), (399, 297)])
def test_strips_equal_whole_image(monkeypatch, crop):
    big = cv2.resize(_photo_like(), (crop[1], crop[0]), interpolation=cv2.INTER_CUBIC)
    whole = brisque.features([big])
    monkeypatch.setattr(mscn, "STRIP_PIXELS", 30 * crop[1] + 1)  # ~30-row strips, short last one
    strips = brisque.features([big])
    np.testing.assert_allclose(strips, whole, rtol=2e-5)  # float32 dot sums, another order


def test_huge_image_memory_is_bounded():
    tile = _grey(_photo_like(250, 250))
    huge = np.tile(tile, (12, 10))  # 3000 x 2500 = 7.5 MP
    tracemalloc.start()
    try:
        feats, status = brisque.features_and_status([huge])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == ["ok"] and np.isfinite(feats).all()
    whole_image_f64_arrays = 6 * huge.size * 8  # what processing it whole would hold
    assert peak < whole_image_f64_arrays / 3, f"peak {peak / 1e6:.0f} MB"


def test_shipped_model_is_consistent():
    model = brisque.live_model()
    assert model.sv.shape == (774, 36) and model.coef.shape == (774,)
    # gamma 0.05 and rho as in the LIVE allmodel header
    assert model.gamma == 0.05 and model.rho == pytest.approx(-153.591)
    assert (model.feature_max > model.feature_min).all()
    notice = Path(brisque.__file__).parent / "LIVE_NOTICE.txt"
    assert "Copyright (c) 2011 The University of Texas at Austin" in notice.read_text()


def test_svr_is_the_kernel_sum():
    model = brisque.live_model()
    feats = brisque.features([_photo_like()])
    x = -1 + 2 * (feats[0] - model.feature_min) / (model.feature_max - model.feature_min)
    expected = (
        sum(
            c * np.exp(-model.gamma * np.sum((x - sv) ** 2))
            for c, sv in zip(model.coef, model.sv, strict=True)
        )
        - model.rho
    )
    assert model.predict(feats)[0] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(model.predict(np.full((1, 36), np.nan))[0])


def test_float32_precision_is_close():
    img = _photo_like()
    assert brisque.DEFAULT_PRECISION == "float32"  # the 3x-OpenCV throughput target; see module
    s64, s32 = brisque.score([img], precision="float64"), brisque.score([img])
    assert abs(s64[0] - s32[0]) < 1.5
    logo = np.full((250, 250), 128, np.uint8)
    cv2.putText(logo, "A", (100, 150), cv2.FONT_HERSHEY_SIMPLEX, 1, 200, 2)
    assert brisque.features_and_status([logo], precision="float32")[1] == ["near_flat_image"]
    with pytest.raises(ValueError, match="precision"):
        brisque.score([img], precision="float16")


# ---------------------------------------------------------------------------------------------
# edge-case policy
# ---------------------------------------------------------------------------------------------


def test_too_small_threshold():
    img = _photo_like()
    small = cv2.resize(img, (brisque.MIN_SIDE - 1, 60), interpolation=cv2.INTER_AREA)
    ok = cv2.resize(img, (brisque.MIN_SIDE, brisque.MIN_SIDE), interpolation=cv2.INTER_AREA)
    feats, status = brisque.features_and_status([small, ok, np.zeros((1, 1), np.uint8)])
    assert status == ["too_small", "ok", "too_small"]
    assert np.isnan(feats[0]).all() and np.isfinite(feats[1]).all()


def test_flat_and_near_flat_are_nan_never_perfect():
    flat = np.full((250, 250, 3), 128, np.uint8)
    halves = np.zeros((250, 250), np.uint8)
    halves[:, 125:] = 255
    logo = np.full((250, 250), 128, np.uint8)
    cv2.putText(logo, "A", (100, 150), cv2.FONT_HERSHEY_SIMPLEX, 1, 200, 2)
    ramp = np.tile(np.arange(250, dtype=np.uint8), (250, 1))
    scores = brisque.score([flat, halves, logo, ramp])
    _, status = brisque.features_and_status([flat, halves, logo, ramp])
    assert np.isnan(scores).all()
    assert status == ["flat_image", "near_flat_image", "near_flat_image", "near_flat_image"]


def test_input_types_normalise_to_the_same_grey():
    bgr = _photo_like()
    grey = _grey(bgr)
    bgra = cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = np.linspace(0, 255, bgr.shape[1], dtype=np.uint8)[None, :]  # alpha ignored
    variants = [
        bgr,
        bgra,
        bgr.astype(np.uint16) * 257,  # 16-bit
        bgr.astype(np.float32) / 255.0,  # float in [0, 1]
        bgr.astype(np.float64) / 255.0,
    ]
    scores = brisque.score(variants)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores, scores[0], atol=1e-9)
    grey_scores = brisque.score([grey, grey[..., None], np.dstack([grey] * 3)])
    np.testing.assert_allclose(grey_scores, grey_scores[0], atol=1e-9)
    views = brisque.score([bgr[:, ::-1], np.ascontiguousarray(bgr[:, ::-1]), grey[10:, 5:]])
    assert views[0] == pytest.approx(views[1], abs=1e-9) and np.isfinite(views[2])


def test_unsupported_input_is_a_status():
    img = _photo_like()
    feats, status = brisque.features_and_status(
        [
            img.astype(np.int32),
            np.zeros((50, 50, 5), np.uint8),
            "not an array",
            img.astype(np.float32),  # floats on the 0..255 scale: refused, not clipped to white
            np.full((50, 50), np.nan, np.float32),
        ]
    )
    assert status == ["unsupported_input"] * 3 + ["float_out_of_range"] * 2
    assert np.isnan(feats).all()


def test_set_threads_rejects_nonsense():
    with pytest.raises(ValueError, match="threads"):
        threads.set_threads(0)


# ---------------------------------------------------------------------------------------------
# per-shard table and CLI
# ---------------------------------------------------------------------------------------------


def _shard(tmp_path: Path) -> pd.DataFrame:
    img = _photo_like()
    files = {
        "good.jpg": img,
        "grey.png": _grey(img),
        "tiny.png": img[:16, :16],
        "flat.png": np.full((64, 64), 90, np.uint8),
    }
    for name, arr in files.items():
        cv2.imwrite(str(tmp_path / name), arr)
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg at all")
    names = [*files, "empty.jpg", "junk.jpg", "missing.jpg"]
    return pd.DataFrame(
        {
            "sample_id": np.arange(10, 10 + len(names), dtype=np.int64),
            "path": [str(tmp_path / n) for n in names],
            "label": np.zeros(len(names), np.int64),
            "class_name": ["c"] * len(names),
        }
    )


EXPECTED_STATUS = [
    "ok",
    "ok",
    "too_small",
    "flat_image",
    "empty_file",
    "undecodable",
    "missing_file",
]


def test_score_table_rows_and_statuses(tmp_path):
    shard = _shard(tmp_path)
    out = brisque.score_table(shard, threads=1, save_features=True, batch_size=3)
    assert len(out) == len(shard)
    assert out["sample_id"].tolist() == shard["sample_id"].tolist()
    assert out["status"].tolist() == EXPECTED_STATUS
    assert out["brisque"].dtype == np.float64 and out["sample_id"].dtype == np.int64
    ok = out["status"] == "ok"
    assert out.loc[ok, "brisque"].notna().all() and out.loc[~ok, "brisque"].isna().all()
    feature_cols = [f"brisque_{n}" for n in brisque.FEATURE_NAMES]
    assert len(feature_cols) == 36 and set(feature_cols) <= set(out.columns)
    direct = brisque.score([cv2.imread(shard["path"][0], cv2.IMREAD_UNCHANGED)])
    assert out["brisque"][0] == pytest.approx(direct[0], abs=1e-9)
    with pytest.raises(ValueError, match="path"):
        brisque.score_table(shard.drop(columns="path"), threads=1, save_features=False)


def test_cli_step_writes_table_with_flavour(tmp_path):
    shard_path = tmp_path / "shard-0.parquet"
    tableio.write_table(_shard(tmp_path), shard_path, params={"shard": 0})
    out_path = tmp_path / "brisque" / "shard-0.parquet"
    rc = main(
        [
            "brisque",
            "--shard",
            str(shard_path),
            "--threads",
            "1",
            "--precision",
            "float64",
            "--output",
            str(out_path),
            "--log",
            str(tmp_path / "log.txt"),
        ]
    )
    assert rc == 0
    table = tableio.read_table(out_path)
    assert list(table.columns) == ["sample_id", "brisque", "status"]
    assert table["status"].tolist() == EXPECTED_STATUS
    meta = tableio.read_metadata(out_path)
    assert meta["brisque_flavour"] == brisque.FLAVOUR == "live-matlab"
    assert meta["rows"] == len(table) and meta["shard"] == 0
    assert meta["brisque_precision"] == "float64"


# ---------------------------------------------------------------------------------------------
# against ../shared/reference/brisque
# ---------------------------------------------------------------------------------------------


def _reference_images(ref: Path) -> tuple[pd.DataFrame, list[np.ndarray]]:
    scores = pd.read_csv(ref / "scores.csv")
    real = scores[~scores["file"].str.startswith("edge__")].reset_index(drop=True)
    # the reference protocol: cv2.imread(IMREAD_COLOR), the same array for every implementation
    images = [cv2.imread(str(ref / "images" / f), cv2.IMREAD_COLOR) for f in real["file"]]
    return real, images


def test_shipped_model_equals_live_files(shared_reference):
    ref = shared_reference / "brisque"
    parsed = brisque.load_libsvm_model(ref / "allmodel", ref / "allrange")
    shipped = brisque.live_model()
    for field in ("sv", "coef", "feature_min", "feature_max"):
        np.testing.assert_array_equal(getattr(shipped, field), getattr(parsed, field))
    assert (shipped.rho, shipped.gamma) == (parsed.rho, parsed.gamma)


@pytest.mark.parametrize("precision", options.BRISQUE_PRECISIONS)
def test_parity_with_pyiqa_scores(shared_reference, precision):
    real, images = _reference_images(shared_reference / "brisque")
    ours = brisque.score(images, precision=precision)
    diff = np.abs(ours - real["pyiqa"].to_numpy())
    assert len(real) == 55 and np.isfinite(ours).all()
    assert np.median(diff) <= PARITY_MEDIAN
    assert np.percentile(diff, 95) <= PARITY_P95
    assert diff.max() <= PARITY_MAX
    assert spearmanr(ours, real["pyiqa"]).statistic >= PARITY_SPEARMAN


def test_features_match_pyiqa(shared_reference):
    ref = shared_reference / "brisque"
    real, images = _reference_images(ref)
    theirs = pd.read_csv(ref / "features_pyiqa.csv").set_index("file").loc[real["file"]]
    assert list(theirs.columns) == list(brisque.FEATURE_NAMES)
    ours = brisque.features(images, precision="float64")
    diff = np.abs(ours - theirs.to_numpy())
    scale = np.abs(theirs.to_numpy())
    jpeg = real["file"].str.endswith(".jpg").to_numpy()
    # PNG: pyiqa's float32 vs our float64 variance, shape-grid flips of 0.001 (measured: <= 0.2 of
    # this bound). JPEG: exactly flat 8x8 blocks make float residue whose sign differs between
    # float32 and float64 arithmetic and moves pair features by a few 1e-3 (measured: <= 0.7).
    assert (diff[~jpeg] <= 1e-3 + 2e-2 * scale[~jpeg]).all()
    assert (diff[jpeg] <= 5e-3 + 6e-2 * scale[jpeg]).all()
    assert np.median(diff / np.maximum(scale, 1e-3)) <= 1e-4


def test_edge_images_of_the_reference(shared_reference):
    ref = shared_reference / "brisque"
    scores = pd.read_csv(ref / "scores.csv").set_index("file")
    names = [
        "edge__tiny_16x16.png",
        "edge__flat_grey_250.png",
        "edge__large_1000x800.png",
        "edge__rgba_alpha_vignette.png",
    ]
    images = [cv2.imread(str(ref / "images" / n), cv2.IMREAD_UNCHANGED) for n in names]
    assert images[3].shape[2] == 4  # RGBA read as BGRA: our input policy drops alpha
    feats, status = brisque.features_and_status(images)
    values = brisque.live_model().predict(feats)
    assert status == ["too_small", "flat_image", "ok", "ok"]
    assert np.isnan(values[:2]).all()
    for name, value in zip(names[2:], values[2:], strict=True):
        assert value == pytest.approx(scores.loc[name, "pyiqa"], abs=PARITY_P95)
