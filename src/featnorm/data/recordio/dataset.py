"""An insightface RecordIO dataset as a whole: validation, layout, class sizes and the manifest."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from featnorm.data.images import Decoded
from featnorm.data.recordio.format import (
    ALIGN,
    FRAME,
    IDENTITY_FLAG,
    IDX_NAME,
    REC_NAME,
    RECORD_MAGIC,
    RecordHeader,
    RecordIOError,
    make_locator,
    parse_locator,
    unpack,
)
from featnorm.data.recordio.reader import RecordFile

logger = logging.getLogger(__name__)


class RecordIO:
    """An insightface RecordIO dataset: ``root/train.rec`` + ``root/train.idx``.

    Opening validates the files: the index parses, every offset lies inside the ``.rec`` and is
    4-byte aligned, the first and last offsets hold the frame magic, and the header and identity
    records are consistent. Problems raise ``RecordIOError`` or ``FileNotFoundError``.

    Attributes
    ----------
    rec_path, idx_path : Path
    image_indices : ndarray of shape (N,), int64
        Record indices of the image records, ascending.
    identity_ranges : ndarray of shape (C, 2), int64, or None
        Half-open image-record range [start, end) of each class, from the identity records;
        None when the file has none (labels then come from the image headers).
    """

    def __init__(
        self, root: str | os.PathLike, *, rec_name: str = REC_NAME, idx_name: str = IDX_NAME
    ):
        root_path = Path(root)
        if not root_path.is_dir():
            raise FileNotFoundError(
                f"RecordIO root {root_path} is not a folder; dataset.root must be the folder "
                f"holding {rec_name} and {idx_name}"
            )
        self.rec_path = root_path / rec_name
        self.idx_path = root_path / idx_name
        self._file = RecordFile(self.rec_path, self.idx_path)
        try:
            self._check_index()
            self.image_indices, self.identity_ranges = self._layout()
        except Exception:
            self._file.close()
            raise
        logger.info(
            "opened %s: %d records, %d image records, %s",
            self.rec_path,
            self._file.keys.size,
            self.image_indices.size,
            f"{len(self.identity_ranges)} identity records"
            if self.identity_ranges is not None
            else "no identity records (labels from image headers)",
        )

    def close(self) -> None:
        """Close the ``.rec`` file (the object is a context manager that does this too)."""
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_index(self) -> None:
        f = self._file
        beyond = np.flatnonzero(f.offsets + FRAME.size > f.size)
        if beyond.size:
            k = beyond[np.argmax(f.offsets[beyond])]
            raise RecordIOError(
                f"{f.idx_path} does not match {f.rec_path}: {beyond.size} of {f.keys.size} "
                f"offsets point past the end of the {f.size}-byte .rec (e.g. record {f.keys[k]} "
                f"at byte {f.offsets[k]}); the .rec is truncated or the .idx belongs to another "
                "file: re-download or rewrite both"
            )
        misaligned = np.flatnonzero(f.offsets % ALIGN)
        if misaligned.size:
            k = misaligned[0]
            raise RecordIOError(
                f"{f.idx_path} does not match {f.rec_path}: record {f.keys[k]} is at byte "
                f"{f.offsets[k]}, not a multiple of {ALIGN} as every record start is"
            )
        order = np.argsort(f.offsets)
        for k in {int(order[0]), int(order[-1])}:  # the first and the last record in the file
            head = f.pread(FRAME.size, int(f.offsets[k]))
            if FRAME.unpack(head)[0] != RECORD_MAGIC:
                raise RecordIOError(
                    f"{f.idx_path} does not match {f.rec_path}: record {f.keys[k]} at byte "
                    f"{f.offsets[k]} does not start with the magic 0x{RECORD_MAGIC:08X}; the file "
                    "is not RecordIO or the .idx belongs to another file"
                )

    def _layout(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(image record indices, identity ranges or None) from record 0."""
        f = self._file
        keys = f.keys
        if keys[0] != 0:
            return keys.copy(), None
        try:
            header, payload = unpack(f.read(0))
        except RecordIOError as exc:
            raise RecordIOError(f"cannot read the dataset's structure: {exc}") from None
        if header.flag == 0 or payload:
            # a generic im2rec file: record 0 is an image (insightface's header has no payload)
            return keys.copy(), None
        if header.flag < IDENTITY_FLAG:
            raise RecordIOError(
                f"{f.rec_path}: header record 0 has flag {header.flag}; insightface's header has "
                f"flag {IDENTITY_FLAG} with label [first identity record, end of identity records]"
            )
        first_identity, end_identity = _range_of(header.labels[:2], f"{f.rec_path}: record 0")
        if first_identity < 1 or end_identity < first_identity:
            raise RecordIOError(
                f"{f.rec_path}: header record 0 gives identity records [{first_identity}, "
                f"{end_identity}); expected 1 <= first <= end"
            )
        images = np.arange(1, first_identity, dtype=np.int64)
        _require_indexed(f, images, "image")
        if end_identity == first_identity:
            return images, None
        identities = np.arange(first_identity, end_identity, dtype=np.int64)
        _require_indexed(f, identities, "identity")
        ranges = np.empty((identities.size, 2), dtype=np.int64)
        for row, key in enumerate(identities):
            rec = self._header_record(int(key))
            if rec.flag < IDENTITY_FLAG:
                raise RecordIOError(
                    f"{f.rec_path}: identity record {key} has flag {rec.flag}; expected "
                    f"{IDENTITY_FLAG} (label [start, end) of the class's image records)"
                )
            ranges[row] = _range_of(rec.labels[:2], f"{f.rec_path}: identity record {key}")
        _check_ranges(ranges, first_identity, f.rec_path)
        return images, ranges

    def _header_record(self, key: int) -> RecordHeader:
        try:
            return self._file.read_header(key)
        except RecordIOError as exc:
            raise RecordIOError(f"cannot read the dataset's structure: {exc}") from None

    def class_sizes(self) -> np.ndarray:
        """Images per class, ndarray of shape (C,), int64.

        With identity records: one entry per identity record, in order (empty classes give 0),
        read without touching any image record. Otherwise: one entry per distinct stored label,
        in ascending label order, from every image header.
        """
        if self.identity_ranges is not None:
            return np.diff(self.identity_ranges, axis=1)[:, 0]
        return np.unique(self._scan_labels(), return_counts=True)[1].astype(np.int64)

    def _scan_labels(self) -> np.ndarray:
        """Class label of every image record from its header, ndarray of shape (N,), int64."""
        labels = np.empty(self.image_indices.size, dtype=np.int64)
        for row, key in enumerate(self.image_indices):
            value = self._header_record(int(key)).class_label
            if not math.isfinite(value) or value != round(value):
                raise RecordIOError(
                    f"{self.rec_path}: image record {key} has class label {value}; class labels "
                    "must be integers"
                )
            labels[row] = int(value)
        return labels

    def manifest(self, *, verify_labels: bool = False) -> pd.DataFrame:
        """One row per image record, in record-index order.

        Parameters
        ----------
        verify_labels : bool
            With identity records, also read every image header (no decoding) and raise
            RecordIOError when its class label differs from its identity's position.

        Returns
        -------
        DataFrame with ``sample_id`` int64 (0..N-1), ``path`` str (record locator),
        ``label`` int64, ``class_name`` str (the label as text), ``record_index`` int64.
        With identity records the label of class k is k (its identity record's position,
        which insightface's writer makes equal to the stored label); otherwise the stored class
        label from each image header (scalar, or the first float).
        """
        if self.identity_ranges is not None:
            sizes = self.class_sizes()
            labels = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
            keys = (
                np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in self.identity_ranges])
                if sizes.size
                else np.zeros(0, np.int64)
            )
            if verify_labels:
                stored = self._scan_labels()
                expected = np.full(self.image_indices.size, -1, dtype=np.int64)
                expected[keys - 1] = labels
                bad = np.flatnonzero(stored != expected)
                if bad.size:
                    k = bad[0]
                    raise RecordIOError(
                        f"{self.rec_path}: image record {self.image_indices[k]} stores class "
                        f"label {stored[k]} but its identity record says {expected[k]} "
                        f"({bad.size} mismatches); the identity records do not match the images"
                    )
            order = np.argsort(keys, kind="stable")
            keys, labels = keys[order], labels[order]
        else:
            keys = self.image_indices
            labels = self._scan_labels()
        rec = os.fspath(self.rec_path)
        frame = pd.DataFrame(
            {
                "sample_id": np.arange(keys.size, dtype=np.int64),
                "path": [make_locator(rec, k) for k in keys],
                "label": labels.astype(np.int64),
                "class_name": [str(v) for v in labels],
                "record_index": keys.astype(np.int64),
            }
        )
        logger.info(
            "manifest of %s: %d images, %d classes",
            self.rec_path,
            len(frame),
            frame["label"].nunique(),
        )
        return frame

    def read_record(self, record_index: int) -> tuple[RecordHeader, bytes]:
        """(header, payload) of one record; RecordIOError (with ``status``) if malformed."""
        return unpack(self._file.read(int(record_index)))

    def read(self, record: int | str) -> Decoded:
        """Decode one image record, by record index or by a locator into this file.

        Returns a ``Decoded`` whose status names any problem (see ``read_locator``).
        """
        if isinstance(record, str):
            rec_path, key = parse_locator(record)
            if os.path.abspath(rec_path) != os.path.abspath(self.rec_path):
                raise ValueError(f"locator {record!r} does not point into {self.rec_path}")
            record = key
        return self._file.decode(int(record))


def open_recordio(root: str | os.PathLike) -> RecordIO:
    """Open the RecordIO dataset in folder ``root`` (``train.rec`` + ``train.idx``)."""
    return RecordIO(root)


def _range_of(values: np.ndarray, where: str) -> tuple[int, int]:
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
        raise RecordIOError(
            f"{where} has label {values.tolist()}; expected two integer record indices [start, end)"
        )
    return int(values[0]), int(values[1])


def _require_indexed(f: RecordFile, keys: np.ndarray, kind: str) -> None:
    present = np.isin(keys, f.keys)
    if not present.all():
        raise RecordIOError(
            f"{f.idx_path} does not match the header record: {np.count_nonzero(~present)} {kind} "
            f"records are missing from the index (e.g. record {keys[~present][0]})"
        )


def _check_ranges(ranges: np.ndarray, n_end: int, rec_path: Path) -> None:
    starts, ends = ranges[:, 0], ranges[:, 1]
    bad = np.flatnonzero((starts < 1) | (ends < starts) | (ends > n_end))
    if bad.size:
        raise RecordIOError(
            f"{rec_path}: identity {bad[0]} covers image records [{starts[bad[0]]}, {ends[bad[0]]}); "
            f"ranges must lie within the image records [1, {n_end})"
        )
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], ends[order]
    overlap = np.flatnonzero(s[1:] < e[:-1])
    if overlap.size:
        raise RecordIOError(
            f"{rec_path}: identities {order[overlap[0]]} and {order[overlap[0] + 1]} overlap; each "
            "image record must belong to one identity"
        )
    covered = int(np.sum(e - s))
    if covered != n_end - 1:
        raise RecordIOError(
            f"{rec_path}: identity records cover {covered} of the {n_end - 1} image records; every "
            "image must belong to an identity"
        )
