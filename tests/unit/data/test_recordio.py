"""Tests for featnorm.data.recordio: insightface RecordIO read/write without mxnet.

Files are either written by ``write_recordio`` or built byte by byte here with ``struct`` from the
format description (dmlc-core framing, mxnet IRHeader, insightface header/identity records), so
the reader is checked against an independent encoding, not only against its own writer.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.recordio_writer import RecordIOWriter, write_recordio

from featnorm.data import recordio
from featnorm.data.recordio import (
    RECORD_MAGIC,
    RecordHeader,
    RecordIOError,
    is_locator,
    open_recordio,
    pack,
    parse_locator,
    read_locator,
    unpack,
)

MAGIC_LE = struct.pack("<I", RECORD_MAGIC)


def _frame(cflag: int, payload: bytes) -> bytes:
    """One frame as the format describes it: magic, (cflag << 29 | length), payload, zero pad."""
    return (
        struct.pack("<II", RECORD_MAGIC, (cflag << 29) | len(payload))
        + payload
        + b"\0" * (-len(payload) % 4)
    )


def _ir(flag: int, label: float, rid: int, rid2: int, floats=(), payload=b"") -> bytes:
    """mxnet IRHeader (uint32 flag, float32 label, uint64 id, uint64 id2) + floats + payload."""
    return (
        struct.pack("<IfQQ", flag, label, rid, rid2) + np.asarray(floats, "<f4").tobytes() + payload
    )


def _write_raw(root: Path, records: list[tuple[int, bytes]], idx_lines: list[str] | None = None):
    """Write already framed records (key, framed bytes) in the given physical order."""
    root.mkdir(parents=True, exist_ok=True)
    lines, offset = [], 0
    with open(root / "train.rec", "wb") as rec:
        for key, framed in records:
            lines.append(f"{key}\t{offset}\n")
            rec.write(framed)
            offset += len(framed)
    (root / "train.idx").write_text("".join(idx_lines if idx_lines is not None else lines))


def _image(seed: int, shape=(10, 12, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)  # pixel content only; no result depends on the values
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def _idx(root: Path) -> dict[int, int]:
    lines = (root / "train.idx").read_text().splitlines()
    return {int(k): int(v) for k, v in (line.split("\t") for line in lines)}


@pytest.fixture(autouse=True)
def _fresh_open_files():
    recordio.close_open_files()
    yield
    recordio.close_open_files()


@pytest.fixture
def dataset(tmp_path):
    """Three classes of sizes 3, 1, 2 (PNG colour, PNG grey, JPEG), written with identity records."""
    images = {
        0: [_image(1), _image(2), _image(3)],
        1: [_image(4, (9, 7))],
        2: [_image(5), _image(6)],
    }
    encoded = {
        0: [_png(i) for i in images[0]],
        1: [_png(images[1][0])],
        2: [_jpeg(i) for i in images[2]],
    }
    root = tmp_path / "ds"
    write_recordio(root, encoded)
    return root, images, encoded


# --- round trip ---------------------------------------------------------------------------------


def test_png_round_trip_gives_identical_pixels_and_jpeg_decodes_as_opencv(dataset):
    """PNG is lossless: pixels come back exactly; JPEG matches cv2.imdecode of the same bytes."""
    root, images, encoded = dataset
    with open_recordio(root) as ds:
        manifest = ds.manifest()
    expected = [*images[0], *images[1]]
    for path, image in zip(manifest["path"][:4], expected, strict=True):
        decoded = read_locator(path)
        assert decoded.ok
        np.testing.assert_array_equal(decoded.image, image)
    for path, data in zip(manifest["path"][4:], encoded[2], strict=True):
        decoded = read_locator(path)
        assert decoded.ok and decoded.image.shape == (10, 12, 3)
        np.testing.assert_array_equal(
            decoded.image, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        )


def test_manifest_columns_order_and_locators(dataset):
    """Rows follow record order, labels follow the identity records, paths are locators."""
    root, _, _ = dataset
    with open_recordio(root) as ds:
        manifest = ds.manifest(verify_labels=True)
        assert ds.read(manifest["path"][3]).image.shape == (9, 7)
    assert list(manifest.columns) == ["sample_id", "path", "label", "class_name", "record_index"]
    assert manifest["sample_id"].tolist() == [0, 1, 2, 3, 4, 5]
    assert manifest["record_index"].tolist() == [1, 2, 3, 4, 5, 6]
    assert manifest["label"].tolist() == [0, 0, 0, 1, 2, 2]
    assert manifest["class_name"].tolist() == ["0", "0", "0", "1", "2", "2"]
    assert {str(manifest[c].dtype) for c in ("sample_id", "label", "record_index")} == {"int64"}
    assert manifest["path"][0] == f"{root / 'train.rec'}#1"
    assert all(is_locator(p) for p in manifest["path"])


def test_writer_lays_out_records_as_insightface_face2rec2(dataset):
    """Decoded by hand: images 1..N first, then header 0 = [N+1, N+1+C], then identity records."""
    root, _, _ = dataset
    idx = _idx(root)
    data = (root / "train.rec").read_bytes()
    assert list(idx) == [1, 2, 3, 4, 5, 6, 0, 7, 8, 9]  # face2rec2's physical order

    def record(key):
        magic, lrec = struct.unpack_from("<II", data, idx[key])
        assert magic == RECORD_MAGIC and lrec >> 29 == 0
        return data[idx[key] + 8 : idx[key] + 8 + (lrec & (2**29 - 1))]

    flag, _, rid, _ = struct.unpack_from("<IfQQ", record(0))
    assert (flag, rid) == (2, 0)
    assert np.frombuffer(record(0), "<f4", 2, 24).tolist() == [7.0, 10.0]
    ranges = []
    for key in (7, 8, 9):
        flag, _, rid, rid2 = struct.unpack_from("<IfQQ", record(key))
        assert (flag, rid, rid2, len(record(key))) == (2, key, 0, 32)
        ranges.append(np.frombuffer(record(key), "<f4", 2, 24).tolist())
    assert ranges == [[1.0, 4.0], [4.0, 5.0], [5.0, 7.0]]
    flag, label, rid, _ = struct.unpack_from("<IfQQ", record(5))
    assert (flag, label, rid) == (0, 2.0, 5)


def test_class_sizes_come_from_identity_records_without_reading_images(dataset):
    """Overwriting every image record's magic breaks the images but not sizes and manifest."""
    root, _, _ = dataset
    idx = _idx(root)
    data = bytearray((root / "train.rec").read_bytes())
    for key in range(1, 7):
        data[idx[key] : idx[key] + 4] = b"XXXX"
    (root / "train.rec").write_bytes(bytes(data))
    # the first record in the file is an image: make it readable again so the open check passes
    data[0:4] = MAGIC_LE
    (root / "train.rec").write_bytes(bytes(data))
    with open_recordio(root) as ds:
        assert ds.class_sizes().tolist() == [3, 1, 2]
        assert ds.identity_ranges.tolist() == [[1, 4], [4, 5], [5, 7]]
        manifest = ds.manifest()
        assert manifest["label"].tolist() == [0, 0, 0, 1, 2, 2]
        assert ds.read(2).status == "record_bad_magic"
        with pytest.raises(RecordIOError, match="expected magic 0xCED7230A"):
            ds.manifest(verify_labels=True)


def test_streaming_writer_consumes_generators_and_fills_skipped_labels(tmp_path):
    """(label, bytes) pairs from a generator; a skipped label becomes an empty identity."""
    pairs = ((label, _png(_image(k, (4, 4)))) for k, label in enumerate([0, 0, 2, 3, 3, 3]))
    summary = write_recordio(tmp_path / "ds", pairs)
    assert (summary.n_images, summary.n_identities) == (6, 4)
    with open_recordio(tmp_path / "ds") as ds:
        assert ds.class_sizes().tolist() == [2, 0, 1, 3]
        assert ds.manifest()["label"].tolist() == [0, 0, 2, 3, 3, 3]


@pytest.mark.parametrize("labels", [[1, 0], [0, 1, 0]])
def test_writer_refuses_unsorted_labels_and_leaves_no_files(tmp_path, labels):
    pairs = [(label, _png(_image(0, (4, 4)))) for label in labels]
    with pytest.raises(ValueError, match="contiguous run in ascending label order"):
        write_recordio(tmp_path / "ds", pairs)
    assert list((tmp_path / "ds").iterdir()) == []


def test_writer_refuses_bad_labels_and_empty_input(tmp_path):
    with pytest.raises(ValueError, match=r"outside \[0, 16777216\)"):
        write_recordio(tmp_path / "a", [(-1, b"x")])
    with pytest.raises(TypeError, match="not an integer"):
        write_recordio(tmp_path / "b", [(1.5, b"x")])
    with pytest.raises(ValueError, match="no images"):
        write_recordio(tmp_path / "c", [])


# --- labels -------------------------------------------------------------------------------------


def test_multi_float_labels_round_trip(tmp_path):
    """face2rec2 stores [label, aligned]: flag 2 and two floats after the header."""
    write_recordio(
        tmp_path / "ds", {0: [_png(_image(0))], 1: [_png(_image(1))]}, label_extras=(1.0,)
    )
    with open_recordio(tmp_path / "ds") as ds:
        header, payload = ds.read_record(2)
        assert header.flag == 2 and header.labels.tolist() == [1.0, 1.0]
        assert header.class_label == 1.0 and header.id == 2
        np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(payload, np.uint8), -1), _image(1))
        assert ds.manifest(verify_labels=True)["label"].tolist() == [0, 1]


def test_pack_unpack_scalar_and_vector_labels():
    header, payload = unpack(pack(RecordHeader(0, [3.0, 0.5, -2.0], 7, 9), b"abc"))
    assert (header.flag, header.labels.tolist(), header.id, header.id2, payload) == (
        3,
        [3.0, 0.5, -2.0],
        7,
        9,
        b"abc",
    )
    header, payload = unpack(pack(RecordHeader(5, 4.0, 1, 2), b""))
    assert (header.flag, header.label, payload) == (0, 4.0, b"")  # scalar: flag 0, as mxnet does
    with pytest.raises(RecordIOError, match="announces 3 float labels"):
        unpack(_ir(3, 0.0, 0, 0, floats=(1.0,)))


def test_flag0_header_falls_back_to_labels_from_image_headers(tmp_path):
    """Without a header record (generic im2rec), every record is an image; labels from headers."""
    pairs = [(5, _png(_image(0))), (2, _png(_image(1))), (5, _png(_image(2))), (0, _png(_image(3)))]
    write_recordio(tmp_path / "ds", pairs, identity_records=False, label_extras=(1.0,))
    with open_recordio(tmp_path / "ds") as ds:
        assert ds.identity_ranges is None
        manifest = ds.manifest()
        assert manifest["record_index"].tolist() == [0, 1, 2, 3]
        assert manifest["label"].tolist() == [5, 2, 5, 0]
        assert ds.class_sizes().tolist() == [1, 1, 2]  # labels 0, 2, 5
        np.testing.assert_array_equal(read_locator(manifest["path"][3]).image, _image(3))


# --- framing ------------------------------------------------------------------------------------


def test_reader_reassembles_a_hand_built_multi_part_record(tmp_path):
    """cflag 1, 2, 3 parts are joined with the magic word between them (dmlc-core's rule)."""
    png = _png(_image(7))
    body = _ir(0, 4.0, 1, 0, payload=png)
    # split `body` at two aligned places, as if the magic word stood there
    cut1, cut2 = 24, 24 + 4 * (len(png) // 8)
    parts = [body[:cut1], body[cut1:cut2], body[cut2:]]
    framed = _frame(1, parts[0]) + _frame(2, parts[1]) + _frame(3, parts[2])
    header0 = _frame(0, _ir(0, 0.0, 0, 0, payload=_png(_image(8))))  # flag 0: record 0 is an image
    _write_raw(tmp_path / "ds", [(0, header0), (1, framed)])
    with open_recordio(tmp_path / "ds") as ds:
        header, payload = ds.read_record(1)
        assert header.class_label == 4.0
        assert payload == (parts[0] + MAGIC_LE + parts[1] + MAGIC_LE + parts[2])[24:]
        assert ds.read(1).status == "undecodable"  # the inserted magic words corrupt the PNG
        assert ds.manifest()["label"].tolist() == [0, 4]


def test_writer_splits_at_aligned_magic_only_and_reads_back(tmp_path):
    """Magic at aligned offsets 16 (id2) and 28 splits into cflag 1, 2, 3; unaligned does not."""
    png = _png(_image(9))
    payload = (
        MAGIC_LE + b"\x01" + MAGIC_LE + b"\x02\x03\x04" + png
    )  # magic at 28 (aligned), 33 (not)
    record = pack(RecordHeader(0, 1.0, 1, RECORD_MAGIC), payload)
    with RecordIOWriter(tmp_path / "train.rec", tmp_path / "train.idx") as writer:
        writer.write(0, record)
    raw = (tmp_path / "train.rec").read_bytes()
    flags, pos = [], 0
    while pos < len(raw):
        magic, lrec = struct.unpack_from("<II", raw, pos)
        assert magic == RECORD_MAGIC
        flags.append(lrec >> 29)
        pos += 8 + (lrec & (2**29 - 1)) + (-(lrec & (2**29 - 1)) % 4)
    assert flags == [1, 2, 3]
    assert pos == len(raw)
    with open_recordio(tmp_path) as ds:
        header, body = ds.read_record(0)
        assert (header.id2, body) == (RECORD_MAGIC, payload)
        assert ds._file.read_header(0).id2 == RECORD_MAGIC  # header read across the split


# --- malformed files ----------------------------------------------------------------------------


def _flat(tmp_path, n=3) -> Path:
    """Header-less dataset of n PNG records: the last record in the file is an image."""
    root = tmp_path / "flat"
    write_recordio(root, [(k, _png(_image(k))) for k in range(n)], identity_records=False)
    return root


def test_truncated_rec_is_a_file_error_at_open_and_a_status_per_record(tmp_path):
    root = _flat(tmp_path)
    rec = root / "train.rec"
    last = _idx(root)[2]
    rec.write_bytes(rec.read_bytes()[: last + 20])  # cut inside the last record
    with open_recordio(root) as ds:  # offsets all inside: the open succeeds
        assert ds.read(2).status == "record_truncated"
        assert ds.read(1).ok
    rec.write_bytes(rec.read_bytes()[: last - 8])  # now record 2 starts past the end
    with pytest.raises(RecordIOError, match=r"1 of 3 offsets point past the end.*record 2"):
        open_recordio(root)
    assert read_locator(f"{rec}#2").status == "record_out_of_range"
    assert read_locator(f"{rec}#1").status == "record_truncated"


def test_index_pointing_past_the_end(tmp_path):
    root = _flat(tmp_path)
    lines = (root / "train.idx").read_text().splitlines(keepends=True)
    lines[1] = "1\t100000000\n"
    (root / "train.idx").write_text("".join(lines))
    with pytest.raises(RecordIOError, match=r"train.idx does not match .*train.rec.*record 1"):
        open_recordio(root)
    assert read_locator(f"{root / 'train.rec'}#1").status == "record_out_of_range"
    assert read_locator(f"{root / 'train.rec'}#0").ok
    assert read_locator(f"{root / 'train.rec'}#7").status == "record_not_indexed"


def test_bad_magic_in_first_record_is_refused_at_open_and_per_record_later(tmp_path):
    root = _flat(tmp_path)
    data = bytearray((root / "train.rec").read_bytes())
    second = _idx(root)[1]
    data[second : second + 4] = b"\0\0\0\0"
    (root / "train.rec").write_bytes(bytes(data))
    with open_recordio(root) as ds:
        assert ds.read(1).status == "record_bad_magic"
        assert ds.read(0).ok
    data[0:4] = b"JFIF"
    (root / "train.rec").write_bytes(bytes(data))
    with pytest.raises(RecordIOError, match="does not start with the magic 0xCED7230A"):
        open_recordio(root)


def test_misaligned_index_is_an_idx_rec_mismatch(tmp_path):
    root = _flat(tmp_path)
    (root / "train.idx").write_text("0\t0\n1\t6\n2\t8\n")
    with pytest.raises(RecordIOError, match="not a multiple of 4"):
        open_recordio(root)


def test_huge_length_word_is_truncation_not_an_allocation(tmp_path):
    """A corrupt length of 2**29 - 1 bytes is checked against the file size before reading."""
    root = _flat(tmp_path)
    data = bytearray((root / "train.rec").read_bytes())
    second = _idx(root)[1]
    data[second + 4 : second + 8] = struct.pack("<I", 2**29 - 1)
    (root / "train.rec").write_bytes(bytes(data))
    with open_recordio(root) as ds:
        assert ds.read(1).status == "record_truncated"
    data[4:8] = struct.pack("<I", 2**29 - 1)  # record 0 tells whether there is a header
    (root / "train.rec").write_bytes(bytes(data))
    with pytest.raises(RecordIOError, match="structure: .* record 0: part at byte 0 announces"):
        open_recordio(root)


def test_continuation_flags_out_of_order(tmp_path):
    png = _png(_image(0))
    records = [
        (0, _frame(0, _ir(0, 0.0, 0, 0, payload=png))),
        (1, _frame(2, _ir(0, 1.0, 1, 0, payload=png))),  # starts with a middle part
        (2, _frame(1, _ir(0, 2.0, 2, 0, payload=png))),  # first part followed by a whole record
        (3, _frame(0, _ir(0, 3.0, 3, 0, payload=png))),
        (4, _frame(5, _ir(0, 4.0, 4, 0, payload=png))),  # flag 5 does not exist
        (5, _frame(1, b"abcd")),  # first part at the very end of the file
    ]
    _write_raw(tmp_path / "ds", records)
    with open_recordio(tmp_path / "ds") as ds:
        assert [ds.read(k).status for k in range(6)] == [
            "ok",
            "record_bad_continuation",
            "record_bad_continuation",
            "ok",
            "record_bad_continuation",
            "record_truncated",
        ]
        with pytest.raises(RecordIOError, match="expected one of"):
            ds.manifest()  # labels come from headers here, so a broken record is a file error


def test_short_or_undecodable_payloads_get_a_status(tmp_path):
    records = [
        (0, _frame(0, _ir(0, 0.0, 0, 0, payload=_png(_image(0))))),
        (1, _frame(0, b"tiny")),
        (2, _frame(0, _ir(0, 0.0, 2, 0, payload=b"not an image"))),
        (3, _frame(0, _ir(0, 0.0, 3, 0))),
    ]
    _write_raw(tmp_path / "ds", records)
    rec = tmp_path / "ds" / "train.rec"
    statuses = [read_locator(f"{rec}#{k}").status for k in range(4)]
    assert statuses == ["ok", "record_bad_header", "undecodable", "empty_file"]


def test_index_file_problems(tmp_path):
    root = _flat(tmp_path)
    (root / "train.idx").write_text("0\t0\n1\t324\nthree\t648\n")
    with pytest.raises(RecordIOError, match=r"line 3 is 'three\\t648'"):
        open_recordio(root)
    assert read_locator(f"{root / 'train.rec'}#0").status == "recordio_bad_index"
    (root / "train.idx").write_text("0\t0\n0\t0\n")
    with pytest.raises(RecordIOError, match="record index 0 is listed 2 times"):
        open_recordio(root)
    (root / "train.idx").write_text("")
    with pytest.raises(RecordIOError, match="index is empty"):
        open_recordio(root)
    (root / "train.idx").unlink()
    with pytest.raises(FileNotFoundError, match="train.idx does not exist"):
        open_recordio(root)
    assert read_locator(f"{root / 'train.rec'}#0").status == "recordio_bad_index"
    assert read_locator(f"{tmp_path / 'nowhere.rec'}#0").status == "missing_file"
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        open_recordio(tmp_path / "nowhere")


def test_inconsistent_identity_records_are_refused(tmp_path):
    png = _png(_image(0))
    image = [(k, _frame(0, _ir(0, 0.0, k, 0, payload=png))) for k in (1, 2, 3)]

    def build(header_floats, identity_floats):
        records = [*image, (0, _frame(0, _ir(2, 0.0, 0, 0, floats=header_floats)))]
        for k, floats in enumerate(identity_floats):
            records.append((4 + k, _frame(0, _ir(2, 0.0, 4 + k, 0, floats=floats))))
        _write_raw(tmp_path / "ds", records)

    build((4, 6), [(1, 3), (3, 4)])
    with open_recordio(tmp_path / "ds") as ds:
        assert ds.class_sizes().tolist() == [2, 1]
    build((4, 6), [(1, 3), (2, 4)])
    with pytest.raises(RecordIOError, match="overlap"):
        open_recordio(tmp_path / "ds")
    build((4, 6), [(1, 2), (3, 4)])
    with pytest.raises(RecordIOError, match="cover 2 of the 3 image records"):
        open_recordio(tmp_path / "ds")
    build((4, 7), [(1, 2), (2, 4)])
    with pytest.raises(RecordIOError, match="1 identity records are missing from the index"):
        open_recordio(tmp_path / "ds")
    build((4, 6), [(1, 2.5), (3, 4)])
    with pytest.raises(RecordIOError, match="expected two integer record indices"):
        open_recordio(tmp_path / "ds")


# --- locators -----------------------------------------------------------------------------------


def test_locator_syntax():
    assert is_locator("data/casia/train.rec#12345")
    assert is_locator(Path("/a b/ü#x/train.rec#0"))
    assert not is_locator("data/casia/train.rec")
    assert not is_locator("img/0001.jpg")
    assert not is_locator("data/train.rec#-1")
    assert parse_locator("x/y#z/train.rec#42") == ("x/y#z/train.rec", 42)
    with pytest.raises(ValueError, match="not a record locator"):
        parse_locator("img/0001.jpg")


def test_read_locator_reopens_a_rewritten_file(tmp_path):
    """The open-file cache is keyed on size/inode/mtime: a rewrite is seen, not stale data."""
    root = tmp_path / "ds"
    write_recordio(root, {0: [_png(_image(0))]})
    np.testing.assert_array_equal(read_locator(f"{root / 'train.rec'}#1").image, _image(0))
    write_recordio(root, {0: [_png(_image(1, (5, 6, 3)))]})
    np.testing.assert_array_equal(
        read_locator(f"{root / 'train.rec'}#1").image, _image(1, (5, 6, 3))
    )


def test_open_file_cache_is_bounded(tmp_path):
    for k in range(recordio.OPEN_FILES_MAX + 3):
        root = tmp_path / f"ds{k}"
        write_recordio(root, {0: [_png(_image(k, (4, 4)))]})
        assert read_locator(f"{root / 'train.rec'}#1").ok
    assert len(recordio.reader._open_files.files) == recordio.OPEN_FILES_MAX


def test_sparse_record_indices_without_header(tmp_path):
    """Indices need not be 0..M-1: without record 0 every indexed record is an image."""
    png = [_png(_image(k, (4, 5, 3))) for k in range(3)]
    records = [
        (k, _frame(0, _ir(0, float(lab), k, 0, payload=p)))
        for k, lab, p in zip((35, 10, 20), (1, 0, 1), png, strict=True)
    ]
    _write_raw(tmp_path / "ds", records)
    with open_recordio(tmp_path / "ds") as ds:
        manifest = ds.manifest()
        assert manifest["record_index"].tolist() == [10, 20, 35]
        assert manifest["label"].tolist() == [0, 1, 1]
        np.testing.assert_array_equal(ds.read(35).image, _image(0, (4, 5, 3)))
        assert ds.read(11).status == "record_not_indexed"
