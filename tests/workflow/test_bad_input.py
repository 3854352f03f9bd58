"""Bad input and bad configuration through the real `snakemake` (issue 7, items 2 and 4).

One image-folder dataset holds every kind of broken, odd or extreme image; the real workflow
scores it with a small demo model trained once for this module. Every image keeps its row in the
BRISQUE, embedding and merged tables, with the status that :mod:`featnorm.data.images` and
:mod:`featnorm.quality.brisque` document. A missing file goes through ``dataset.format: list``. Bad
configurations are refused before any job, or, where only the job can tell (a checkpoint that
does not fit its architecture, more shards than images), by that job with a message saying what
to change.
"""

from __future__ import annotations

import io as bytes_io
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from support.snakemake_cli import run_snakemake

from featnorm import tableio

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE_TIMEOUT_S = 600
MODEL = "tiny"
SHARDS = 2
HUGE_SIDE_PX = 10_000
# Peak resident memory allowed for a per-shard job that holds the 10,000 x 10,000 image: the
# decoded BGR image is 300 MB; BRISQUE adds its grey copy (100 MB), the float32 half-scale image
# (100 MB) and ~50 MB of strip buffers; the embed job adds torch (~300 MB). Measured: 0.68 GB
# (BRISQUE) and 0.83 GB (embed); twice the decoded image on top of that is the bound.
MAX_RSS_MB = 1_500

pytestmark = pytest.mark.workflow


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


snakemake = run_snakemake  # (workdir, config, *args, check=True)


def featnorm_cli(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "featnorm", *args],
        check=True,
        capture_output=True,
        timeout=SNAKEMAKE_TIMEOUT_S,
    )


def encode(ext: str, image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok, ext
    return buf.tobytes()


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """``jpeg`` with an EXIF APP1 segment (big-endian TIFF, one IFD entry: Orientation) after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + app1 + jpeg[2:]


def cmyk_jpeg(bgr: np.ndarray) -> bytes | None:
    """A CMYK (Adobe) JPEG of ``bgr`` written by Pillow; None when Pillow is not installed.

    OpenCV cannot write CMYK JPEGs, so this one case needs Pillow (a test extra).
    """
    try:
        from PIL import Image
    except ImportError:
        return None
    buf = bytes_io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).convert("CMYK").save(
        buf, "JPEG", quality=95
    )
    return buf.getvalue()


def textured(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Blurred noise: a natural-looking texture that BRISQUE can score."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, shape, dtype=np.uint8), (7, 7), 0)


def huge_jpeg() -> bytes:
    """A 10,000 x 10,000 colour JPEG (a 500 px texture tiled; ~19 MB, 300 MB decoded)."""
    tile = textured((500, 500, 3), seed=7)
    reps = HUGE_SIDE_PX // 500
    return encode(".jpg", np.tile(tile, (reps, reps, 1)), cv2.IMWRITE_JPEG_QUALITY, 80)


# ---------------------------------------------------------------------------------------------
# the bad-input dataset: case -> (class folder, file name, expected brisque / embed status)
# ---------------------------------------------------------------------------------------------

# The documented outcome of every case. `ok` for BRISQUE means a finite score; `ok` for the
# embedding a finite norm (images other than 112x112 are resized, see RESIZE_POLICY).
EXPECTED: dict[str, tuple[str, str, str, str]] = {
    # case: (class folder, file name, BRISQUE status, embedding status)
    "face": ("broken", "face.jpg", "ok", "ok"),
    "corrupt_header_jpeg": ("broken", "corrupt_header.jpg", "undecodable", "undecodable"),
    "corrupt_scan_jpeg": ("broken", "corrupt_scan.jpg", "ok", "ok"),
    "truncated_jpeg": ("broken", "truncated.jpg", "undecodable", "undecodable"),
    "zero_byte": ("broken", "zero_byte.jpg", "empty_file", "empty_file"),
    "text_as_png": ("broken", "not_an_image.png", "undecodable", "undecodable"),
    "size_1x1": ("sizes", "one_pixel.png", "too_small", "too_small"),
    "size_16x16": ("sizes", "sixteen.png", "too_small", "too_small"),
    "flat": ("sizes", "flat.png", "flat_image", "ok"),
    "huge_10000x10000": ("sizes", "huge.jpg", "ok", "ok"),
    "grey": ("formats", "grey.png", "ok", "ok"),
    "rgba": ("formats", "rgba.png", "ok", "ok"),
    "rgba_twin": ("formats", "rgba_twin.png", "ok", "ok"),
    "png_16bit": ("formats", "sixteen_bit.png", "ok", "ok"),
    "png_16bit_twin": ("formats", "sixteen_bit_twin.png", "ok", "ok"),
    "cmyk_jpeg": ("formats", "cmyk.jpg", "ok", "ok"),
    "exif_rotated": ("formats", "exif_rotated.jpg", "ok", "ok"),
    "exif_twin": ("formats", "exif_twin.jpg", "ok", "ok"),
    "non_ascii_jpeg": ("Zoë", "фото 1.jpg", "ok", "ok"),
    "non_ascii_png": ("Zoë", "顔.png", "ok", "ok"),
}
EMPTY_CLASS = "zz_empty"


def case_bytes(face: np.ndarray) -> dict[str, bytes | None]:
    """Encoded bytes of every case (None: cannot be made here, i.e. CMYK without Pillow)."""
    jpeg = encode(".jpg", face, cv2.IMWRITE_JPEG_QUALITY, 90)
    corrupt_header = bytearray(jpeg)
    corrupt_header[2:40] = bytes(38)  # SOI survives; APP0 and the tables' markers are zeroed
    corrupt_scan = bytearray(jpeg)
    mid = len(jpeg) // 2  # inside the entropy-coded scan: libjpeg resynchronises and decodes
    corrupt_scan[mid : mid + 50] = b"\xff" * 50
    alpha = np.linspace(0, 255, face.shape[1], dtype=np.uint8)[None, :].repeat(face.shape[0], 0)
    rgba = np.dstack([face, alpha])  # BGRA; the colour channels are the face
    wide = cv2.resize(face, (120, 80), interpolation=cv2.INTER_AREA)  # not square: rotation shows
    wide_jpeg = encode(".jpg", wide, cv2.IMWRITE_JPEG_QUALITY, 90)
    return {
        "face": jpeg,
        "corrupt_header_jpeg": bytes(corrupt_header),
        "corrupt_scan_jpeg": bytes(corrupt_scan),
        "truncated_jpeg": jpeg[: len(jpeg) // 2],
        "zero_byte": b"",
        "text_as_png": b"this is a text file that pretends to be a PNG image\n" * 20,
        "size_1x1": encode(".png", face[:1, :1]),
        "size_16x16": encode(".png", cv2.resize(face, (16, 16), interpolation=cv2.INTER_AREA)),
        "flat": encode(".png", np.full((112, 112, 3), 128, np.uint8)),
        "huge_10000x10000": huge_jpeg(),
        "grey": encode(".png", cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)),
        "rgba": encode(".png", rgba),
        "rgba_twin": encode(".png", face),
        "png_16bit": encode(".png", face.astype(np.uint16) * 257),  # round(x*257/257) = x
        "png_16bit_twin": encode(".png", face),
        "cmyk_jpeg": cmyk_jpeg(face),
        "exif_rotated": with_exif_orientation(wide_jpeg, 6),  # 6: "rotate 90 CW to display"
        "exif_twin": wide_jpeg,
        "non_ascii_jpeg": jpeg,
        "non_ascii_png": encode(".png", face),
    }


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> tuple[Path, Path]:
    """(checkpoint, folder of demo images): a demo model trained once for this module."""
    folder = tmp_path_factory.mktemp("demo_model")
    demo = json.dumps({"identities": 4, "min_images": 3, "max_images": 6, "seed": 3})
    manifest = folder / "manifest.parquet"
    featnorm_cli(
        "manifest",
        "--format",
        "demo",
        "--demo",
        demo,
        "--demo-dir",
        str(folder / "images"),
        "--output",
        str(manifest),
    )
    checkpoint = folder / "checkpoint.ckpt"
    featnorm_cli(
        "train-demo",
        "--manifest",
        str(manifest),
        "--arch",
        "ir_demo",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--lr",
        "0.1",
        "--seed",
        "0",
        "--threads",
        "2",
        "--precision",
        "fp32",
        "--output",
        str(checkpoint),
    )
    return checkpoint, folder / "images"


def write_config(
    path: Path,
    dataset: dict,
    checkpoint: Path | str,
    *,
    shards: int = SHARDS,
    arch: str = "ir_demo",
    **extra,
) -> Path:
    config = {
        "dataset": dataset,
        "shards": shards,
        "models": {MODEL: {"arch": arch, "checkpoint": str(checkpoint)}},
        "embed": {"batch_size": 8, "workers": 0},
        **extra,
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory, demo_model) -> tuple[Path, dict[str, bytes]]:
    """The image folder with every case, and the bytes written per case."""
    _, demo_images = demo_model
    face = cv2.imread(str(sorted(demo_images.glob("*/*.jpg"))[0]), cv2.IMREAD_COLOR)
    root = tmp_path_factory.mktemp("bad_input") / "images"
    written = {}
    for case, data in case_bytes(face).items():
        if data is None:
            continue
        folder, name = EXPECTED[case][:2]
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_bytes(data)
        written[case] = data
    (root / EMPTY_CLASS).mkdir()
    return root, written


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory, demo_model, bad_folder) -> Path:
    """A working directory where the workflow merged the bad-input folder (samples.parquet)."""
    checkpoint, _ = demo_model
    root, _ = bad_folder
    workdir = tmp_path_factory.mktemp("bad_run")
    config = write_config(
        workdir / "config.yaml", {"format": "imagefolder", "root": str(root)}, checkpoint
    )
    snakemake(workdir, config, "--cores", "2", f"results/{MODEL}/samples.parquet")
    return workdir


def per_image(workdir: Path) -> pd.DataFrame:
    """Manifest joined with the BRISQUE and embedding shards, one row per manifest row."""
    results = workdir / "results"
    manifest = tableio.read_table(results / "manifest.parquet")
    brisque = pd.concat(
        [tableio.read_table(p) for p in sorted((results / "brisque").glob("*.parquet"))]
    )
    embed = pd.concat(
        [tableio.read_table(p) for p in sorted((results / "embed" / MODEL).glob("*.parquet"))]
    )
    for name, table in (("brisque", brisque), ("embed", embed)):
        assert sorted(table["sample_id"]) == manifest["sample_id"].tolist(), name
    table = manifest.merge(brisque.rename(columns={"status": "brisque_status"}), on="sample_id")
    table = table.merge(embed.rename(columns={"status": "embed_status"}), on="sample_id")
    table["file"] = [Path(p).name for p in table["path"]]
    return table.set_index("file")


# ---------------------------------------------------------------------------------------------
# bad images through the workflow
# ---------------------------------------------------------------------------------------------


def test_rows_in_equal_rows_out(bad_run: Path, bad_folder):
    """Every image file of the folder has one row in every per-image table; none is dropped."""
    root, written = bad_folder
    files = sorted(p.name for p in root.glob("*/*"))
    table = per_image(bad_run)
    assert sorted(table.index) == files and len(files) == len(written)
    samples = tableio.read_table(bad_run / "results" / MODEL / "samples.parquet")
    assert sorted(samples["sample_id"]) == sorted(table["sample_id"])


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_case_gets_its_documented_status(bad_run: Path, bad_folder, case: str):
    """BRISQUE and embedding statuses per case (README table); NaN exactly where not ok."""
    _, written = bad_folder
    if case not in written:
        pytest.skip(f"{case}: Pillow is not installed (pip install pillow) to write a CMYK JPEG")
    _, name, brisque_status, embed_status = EXPECTED[case]
    row = per_image(bad_run).loc[name]
    assert (row["brisque_status"], row["embed_status"]) == (brisque_status, embed_status)
    assert np.isfinite(row["brisque"]) == (brisque_status == "ok")
    assert np.isfinite(row["feature_norm"]) == (embed_status == "ok")
    if embed_status == "ok":
        assert row["feature_norm"] > 0

    samples = tableio.read_table(bad_run / "results" / MODEL / "samples.parquet").set_index(
        "sample_id"
    )
    merged = samples.loc[row["sample_id"]]
    reasons = [f"brisque:{brisque_status}"] * (brisque_status != "ok") + [
        f"embed:{embed_status}"
    ] * (embed_status != "ok")
    assert merged["status"] == ("; ".join(reasons) or "ok")


@pytest.mark.parametrize(
    ("case", "twin"),
    [("rgba", "rgba_twin"), ("png_16bit", "png_16bit_twin"), ("exif_rotated", "exif_twin")],
)
def test_format_variants_score_like_their_plain_twin(bad_run: Path, case: str, twin: str):
    """Alpha dropped (not composited), 16 bit scaled by 1/257, EXIF orientation ignored: each
    variant gives the same BRISQUE score and feature norm as the plain 8-bit BGR file."""
    table = per_image(bad_run)
    a, b = table.loc[EXPECTED[case][1]], table.loc[EXPECTED[twin][1]]
    assert a["brisque"] == pytest.approx(b["brisque"], rel=1e-9)
    assert a["feature_norm"] == pytest.approx(b["feature_norm"], rel=1e-5)


def test_exif_orientation_is_ignored_as_documented(bad_folder):
    """The EXIF file is one OpenCV would rotate (IMREAD_COLOR), but featnorm decodes the stored
    pixels: 80 x 120, identical to the file without EXIF."""
    from featnorm.data.images import decode_bytes

    _, written = bad_folder
    rotated, plain = written["exif_rotated"], written["exif_twin"]
    applied = cv2.imdecode(np.frombuffer(rotated, np.uint8), cv2.IMREAD_COLOR)
    assert applied.shape[:2] == (120, 80), "the test file's EXIF orientation must be effective"
    ours, twin = decode_bytes(rotated), decode_bytes(plain)
    assert ours.image.shape == (80, 120, 3)
    np.testing.assert_array_equal(ours.image, twin.image)


def test_cmyk_jpeg_decodes_to_the_right_colours(bad_folder):
    """A CMYK JPEG decodes to BGR close to the colours it was written from (not inverted)."""
    from featnorm.data.images import decode_bytes

    _, written = bad_folder
    if "cmyk_jpeg" not in written:
        pytest.skip("Pillow is not installed (pip install pillow) to write a CMYK JPEG")
    decoded = decode_bytes(written["cmyk_jpeg"]).image
    plain = decode_bytes(written["rgba_twin"]).image  # the same face as a lossless PNG
    assert decoded.shape == plain.shape
    assert np.abs(decoded.astype(int) - plain.astype(int)).mean() < 4  # JPEG q95 error only


def test_huge_images_are_resized_for_the_model_and_tiny_ones_refused(bad_run: Path):
    """Above embed.min_side (32 px) an image of another size is resized to 112x112; below it
    nothing is fed to the model (too_small), so nothing is resized."""
    table = per_image(bad_run)
    assert bool(table.loc["huge.jpg", "resized"])
    for name in ("one_pixel.png", "sixteen.png", "flat.png"):
        assert not bool(table.loc[name, "resized"]), name


def test_huge_image_memory_stays_bounded(bad_run: Path):
    """Per-shard jobs that read the 10,000 x 10,000 image stay under MAX_RSS_MB (benchmark tsv)."""
    bench = bad_run / "results" / "benchmarks"
    tsvs = sorted(bench.glob("score_brisque/*.tsv")) + sorted(
        bench.glob(f"embed_shard/{MODEL}/*.tsv")
    )
    assert len(tsvs) == 2 * SHARDS
    peaks = {
        p.relative_to(bench).as_posix(): float(pd.read_csv(p, sep="\t")["max_rss"].iloc[0])
        for p in tsvs
    }
    assert max(peaks.values()) > 300, f"no job held the 300 MB decoded image: {peaks}"
    assert max(peaks.values()) < MAX_RSS_MB, peaks


def test_empty_class_folder_has_no_rows_and_is_logged(bad_run: Path, bad_folder):
    """An empty class folder has no image to score: no rows; its label index stays reserved
    (labels are the sorted folder indices) and the manifest log names it."""
    root, _ = bad_folder
    manifest = tableio.read_table(bad_run / "results" / "manifest.parquet")
    folders = sorted(p.name for p in root.iterdir())
    assert EMPTY_CLASS not in set(manifest["class_name"])
    expected = {name: folders.index(name) for name in set(manifest["class_name"])}
    assert dict(zip(manifest["class_name"], manifest["label"], strict=True)) == expected
    log = (bad_run / "results" / "logs" / "make_manifest.log").read_text(encoding="utf-8")
    assert EMPTY_CLASS in log


def test_non_ascii_paths_survive_the_tables(bad_run: Path):
    manifest = tableio.read_table(bad_run / "results" / "manifest.parquet")
    names = {Path(p).name for p in manifest["path"]}
    assert {"фото 1.jpg", "顔.png"} <= names
    assert "Zoë" in set(manifest["class_name"])


def test_missing_file_in_a_list_gets_a_status(tmp_path: Path, demo_model):
    """dataset.format: list with a path that does not exist: status missing_file, row kept."""
    checkpoint, demo_images = demo_model
    present = sorted(demo_images.glob("*/*.jpg"))[:2]
    listing = pd.DataFrame(
        {
            "path": [str(p) for p in present] + ["gone/nowhere.jpg"],
            "label": [0, 0, 1],
        }
    )
    listing.to_csv(tmp_path / "list.csv", index=False)
    config = write_config(
        tmp_path / "config.yaml",
        {"format": "list", "list": str(tmp_path / "list.csv")},
        checkpoint,
        shards=1,
    )
    snakemake(tmp_path, config, "--cores", "2", f"results/{MODEL}/samples.parquet")
    table = per_image(tmp_path)
    row = table.loc["nowhere.jpg"]
    assert (row["brisque_status"], row["embed_status"]) == ("missing_file", "missing_file")
    assert np.isnan(row["brisque"]) and np.isnan(row["feature_norm"])
    assert (table.drop(index="nowhere.jpg")["embed_status"] == "ok").all()
    samples = tableio.read_table(tmp_path / "results" / MODEL / "samples.parquet")
    assert len(samples) == 3
    assert "brisque:missing_file; embed:missing_file" in set(samples["status"])


# ---------------------------------------------------------------------------------------------
# bad configuration (test_workflow.py covers unknown keys, a missing imagefolder root, an unknown
# adaface arch and too many shards for the demo)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "model", "message"),
    [
        ({"format": "recordio", "root": "{tmp}"}, {}, r"dataset\.root = .* has no train\.rec"),
        (
            {"format": "imagefolder", "root": "{tmp}/config.yaml"},
            {},
            r"dataset\.root = .*config\.yaml.* is not a folder",
        ),
        (
            {"format": "list", "list": "{tmp}/no_list.csv"},
            {},
            r"dataset\.list = .*no_list\.csv.* does not exist",
        ),
        (
            {},
            {"family": "magface", "arch": "ir_50"},
            r"models\.tiny\.arch = 'ir_50' is not known for family magface; use one of iresnet",
        ),
        (
            {},
            {"checkpoint": "{tmp}/missing.ckpt"},
            r"models\.tiny\.checkpoint = .*missing\.ckpt.* does not exist",
        ),
        (
            {},
            {"family": "magface", "arch": "iresnet18", "checkpoint": "train"},
            r"checkpoint = train works for family adaface only",
        ),
    ],
)
def test_bad_config_is_refused_before_any_job(
    tmp_path: Path, demo_model, bad_folder, dataset: dict, model: dict, message: str
):
    checkpoint, _ = demo_model
    root, _ = bad_folder

    def fill(d: dict) -> dict:
        return {
            k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in d.items()
        }

    config = write_config(
        tmp_path / "config.yaml",
        fill(dataset) or {"format": "imagefolder", "root": str(root)},
        checkpoint,
    )
    settings = yaml.safe_load(config.read_text())
    settings["models"][MODEL].update(fill(model))
    config.write_text(yaml.safe_dump(settings, allow_unicode=True))
    result = snakemake(tmp_path, config, "--cores", "1", check=False)
    assert result.returncode != 0
    assert re.search(message, result.stdout + result.stderr), result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_checkpoint_of_another_arch_fails_fast_in_the_embed_job(
    tmp_path: Path, demo_model, bad_folder
):
    """An ir_demo checkpoint configured as ir_18 cannot be detected without reading the file:
    the embed job refuses it before embedding anything, names both archs, and leaves no table."""
    checkpoint, _ = demo_model
    root, _ = bad_folder
    config = write_config(
        tmp_path / "config.yaml",
        {"format": "imagefolder", "root": str(root)},
        checkpoint,
        arch="ir_18",
    )
    target = f"results/embed/{MODEL}/shard-0.parquet"
    result = snakemake(tmp_path, config, "--cores", "1", target, check=False)
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "embed_shard" / MODEL / "shard-0.log").read_text()
    assert "CheckpointError" in log or "does not fit" in log, log
    assert "ir_18" in log and "ir_demo" in log, log
    # refused before the first image (the logger names hold "embedding" since the layout move)
    assert not re.search(r"embedding \d+ images", log), log
    assert not (tmp_path / target).exists()
    bench = tmp_path / "results" / "benchmarks" / "embed_shard" / MODEL / "shard-0.tsv"
    assert not bench.exists() or float(pd.read_csv(bench, sep="\t")["s"].iloc[0]) < 60


def test_more_shards_than_images_is_refused_by_the_shard_step(
    tmp_path: Path, demo_model, bad_folder
):
    """An image folder is only counted when listed: the shard job refuses and says the limit."""
    checkpoint, _ = demo_model
    root, written = bad_folder
    config = write_config(
        tmp_path / "config.yaml",
        {"format": "imagefolder", "root": str(root)},
        checkpoint,
        shards=500,
    )
    result = snakemake(
        tmp_path, config, "--cores", "1", "results/shards/shard-0.parquet", check=False
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "logs" / "make_shards.log").read_text()
    assert f"shards = 500 but the dataset has {len(written)} images" in log, log
    assert f"1 <= shards <= {len(written)}" in log
    assert not list((tmp_path / "results" / "shards").glob("*.parquet"))


@pytest.mark.parametrize(
    "mode",
    [
        0o644,
        0o755,  # an executable file passes os.access(W_OK | X_OK): the check must see it is no folder
    ],
)
def test_results_path_taken_by_a_file_is_refused(tmp_path: Path, demo_model, bad_folder, mode):
    """``results`` exists as a regular file (root ignores chmod, so a file is what blocks it)."""
    checkpoint, _ = demo_model
    root, _ = bad_folder
    config = write_config(
        tmp_path / "config.yaml", {"format": "imagefolder", "root": str(root)}, checkpoint
    )
    (tmp_path / "results").write_text("not a folder")
    (tmp_path / "results").chmod(mode)
    result = snakemake(tmp_path, config, "--dry-run", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(r"output folder 'results' is not (writable|a folder)", text), text
    assert "--directory" in text


def test_directory_inside_a_file_is_refused(tmp_path: Path, demo_model, bad_folder):
    """``--directory`` below a regular file: Snakemake cannot enter it and says which path."""
    checkpoint, _ = demo_model
    root, _ = bad_folder
    config = write_config(
        tmp_path / "config.yaml", {"format": "imagefolder", "root": str(root)}, checkpoint
    )
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = snakemake(blocker / "work", config, "--dry-run", check=False)
    assert result.returncode != 0
    assert f"Not a directory: '{blocker / 'work'}'" in result.stdout + result.stderr


def test_read_only_output_folder_is_refused(tmp_path: Path, demo_model, bad_folder):
    """A working directory on a read-only mount (a read-only bind mount; needs mount rights,
    skipped otherwise): refused at parse time, the message names the fix."""
    checkpoint, _ = demo_model
    root, _ = bad_folder
    config = write_config(
        tmp_path / "config.yaml", {"format": "imagefolder", "root": str(root)}, checkpoint
    )
    workdir = tmp_path / "read_only"
    workdir.mkdir()
    mount = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(workdir), str(workdir)], capture_output=True, text=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {mount.stderr.strip()}")
    try:
        result = snakemake(workdir, config, "--dry-run", check=False)
    finally:
        subprocess.run(["umount", str(workdir)], check=True)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "output folder 'results' is not writable" in text and "--directory" in text, text
    assert not (workdir / "results").exists()
