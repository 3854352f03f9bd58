"""Streaming, atomic writer of insightface RecordIO datasets, for tests and benchmarks only.

featnorm itself only reads RecordIO (``featnorm.data.recordio``); tests and benchmarks write small and
large synthetic datasets with ``write_recordio``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from featnorm.data.recordio.format import (
    ALIGN,
    CFLAG_FIRST,
    CFLAG_LAST,
    CFLAG_MIDDLE,
    CFLAG_WHOLE,
    FLOAT32_EXACT_INT,
    FRAME,
    IDENTITY_FLAG,
    IDX_NAME,
    LENGTH_BITS,
    MAGIC_BYTES,
    MAX_PART_BYTES,
    REC_NAME,
    RECORD_MAGIC,
    RecordHeader,
    pack,
)
from featnorm.tableio import atomic_path

__all__ = ["RecordIOSummary", "RecordIOWriter", "write_recordio"]

logger = logging.getLogger(__name__)

_PROGRESS_EVERY = 10_000  # progress line every N image records


def _frame(payload: bytes) -> bytes:
    """Frame one record: split at aligned magic words (dmlc-core's rule), pad parts to 4 bytes."""
    if len(payload) > MAX_PART_BYTES:
        raise ValueError(
            f"record of {len(payload)} bytes exceeds the RecordIO limit of {MAX_PART_BYTES} bytes"
        )
    view = memoryview(payload)
    out: list[bytes] = []
    start = 0
    aligned_end = len(payload) - len(payload) % ALIGN
    pos = payload.find(MAGIC_BYTES, 0, aligned_end)
    while pos != -1:
        if pos % ALIGN == 0:
            cflag = CFLAG_FIRST if start == 0 else CFLAG_MIDDLE
            out.append(FRAME.pack(RECORD_MAGIC, (cflag << LENGTH_BITS) | (pos - start)))
            out.append(view[start:pos].tobytes())  # aligned: start and pos are multiples of 4
            start = pos + ALIGN
            pos = payload.find(MAGIC_BYTES, start, aligned_end)
        else:
            pos = payload.find(MAGIC_BYTES, pos + 1, aligned_end)
    cflag = CFLAG_LAST if start else CFLAG_WHOLE
    length = len(payload) - start
    out.append(FRAME.pack(RECORD_MAGIC, (cflag << LENGTH_BITS) | length))
    out.append(view[start:].tobytes())
    out.append(b"\0" * (-length % ALIGN))
    return b"".join(out)


@dataclass(frozen=True)
class RecordIOSummary:
    """What ``write_recordio`` wrote."""

    rec_path: Path
    idx_path: Path
    n_images: int
    n_identities: int


class RecordIOWriter:
    """Streaming, atomic writer of an indexed RecordIO pair.

    Records go straight to temporary files beside the targets; ``close()`` renames both into place
    (an exception inside ``with`` removes them, leaving no partial dataset). Memory holds one
    record at a time.
    """

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike):
        self._stack = ExitStack()
        self.rec_path, self.idx_path = Path(rec_path), Path(idx_path)
        try:
            self._rec_tmp = self._stack.enter_context(atomic_path(self.rec_path))
            self._idx_tmp = self._stack.enter_context(atomic_path(self.idx_path))
            # the ExitStack closes both files (before the renames), so no `with` block here
            self._rec = self._stack.enter_context(open(self._rec_tmp, "wb"))  # noqa: SIM115
            idx = open(self._idx_tmp, "w", encoding="ascii", newline="\n")  # noqa: SIM115
            self._idx = self._stack.enter_context(idx)
        except BaseException as exc:  # remove the temporary files; never rename them into place
            self._stack.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def write(self, key: int, record: bytes) -> int:
        """Append one record (e.g. ``pack(header, jpeg_bytes)``) under index ``key``; its offset.

        Keys must be unique (not checked here, to keep memory flat; the reader rejects an index
        that lists a key twice).
        """
        key = int(key)
        if key < 0:
            raise ValueError(f"record index {key} is negative; record indices are >= 0")
        offset = self._rec.tell()
        self._rec.write(_frame(record))
        self._idx.write(f"{key}\t{offset}\n")
        return offset

    def close(self) -> None:
        """Finish: flush and rename both files into place."""
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stack.__exit__(exc_type, exc, tb)


def _iter_labelled(
    records: Mapping[int, Iterable[bytes]] | Iterable[tuple[int, bytes]],
) -> Iterator[tuple[int, bytes]]:
    if isinstance(records, Mapping):
        for label in sorted(records):
            for data in records[label]:
                yield label, data
    else:
        yield from records


def _check_label(label: int) -> int:
    if isinstance(label, bool) or not isinstance(label, int | np.integer):
        raise TypeError(f"label {label!r} is not an integer; class labels must be ints >= 0")
    if not 0 <= label < FLOAT32_EXACT_INT:
        raise ValueError(
            f"label {label} is outside [0, {FLOAT32_EXACT_INT}); labels are stored as float32"
        )
    return int(label)


def _start_classes(starts: list[int], label: int, key: int) -> None:
    """Record in ``starts`` that class ``label`` (and any skipped one before it) starts at image
    record ``key``; ValueError when labels go backwards or ``key`` is beyond float32."""
    if label < len(starts) - 1:
        raise ValueError(
            f"label {label} arrives after label {len(starts) - 1}; with identity records "
            "each class must be one contiguous run in ascending label order: sort the "
            "images by label"
        )
    while len(starts) <= label:  # new class (and empty ones for skipped labels)
        starts.append(key)
    if key >= FLOAT32_EXACT_INT:
        raise ValueError(
            f"record index {key} exceeds {FLOAT32_EXACT_INT}: identity ranges are "
            "float32 and cannot address it"
        )


def _write_identities(writer: RecordIOWriter, starts: list[int], *, end: int) -> None:
    """Header record 0 and one identity record per class after the image records (which end
    before record ``end``), as insightface's files have them."""
    n_identities = len(starts)
    first_identity = end
    writer.write(
        0,
        pack(RecordHeader(IDENTITY_FLAG, [first_identity, first_identity + n_identities])),
    )
    bounds = [*starts, end]
    for k in range(n_identities):
        key = first_identity + k
        writer.write(key, pack(RecordHeader(IDENTITY_FLAG, bounds[k : k + 2], key, 0)))


def write_recordio(
    root: str | os.PathLike,
    records: Mapping[int, Iterable[bytes]] | Iterable[tuple[int, bytes]],
    *,
    label_extras: Sequence[float] = (),
    identity_records: bool = True,
) -> RecordIOSummary:
    """Write encoded images as an insightface RecordIO dataset in ``root``, streaming.

    Parameters
    ----------
    root : path
        Output folder; ``train.rec`` and ``train.idx`` are written atomically into it.
    records : mapping label -> iterable of bytes, or iterable of (label, bytes)
        Encoded images (JPEG/PNG/... bytes, e.g. from ``cv2.imencode``), consumed lazily: pass
        generators to write datasets larger than memory. A mapping is written in ascending label
        order. With identity records, labels must arrive in non-decreasing order and lie in
        [0, 2**24); a skipped label becomes an empty identity, so class k is always the k-th
        identity record (as in insightface's files).
    label_extras : sequence of float
        Empty: each image stores its label as a scalar (``flag = 0``, as in the distributed
        CASIA/MS1M files). Otherwise the label is stored as the floats ``[label, *label_extras]``
        (``flag = 1 + len(label_extras)``); ``(1.0,)`` gives face2rec2's ``[label, aligned]``.
    identity_records : bool
        True: insightface layout, as ``face2rec2.py`` writes it: images are records 1..N, written
        first; then header record 0 (flag 2, label ``[N + 1, N + 1 + C]``, id 0); then identity
        records N+1 .. N+C (flag 2, label ``[start, end]``, id = record index), with empty
        payloads. False: a generic im2rec file, images are records 0..N-1 and no header exists.

    Returns
    -------
    RecordIOSummary

    Notes
    -----
    insightface writes no separate split record: a *split* record in this format is one whose
    payload contains the magic word at a 4-byte-aligned offset; like dmlc-core's writer, this
    writer splits it there into continuation parts (flags 1, 2..., 3) and the reader rejoins them.
    """
    extras = [float(v) for v in label_extras]
    rec_path, idx_path = Path(root) / REC_NAME, Path(root) / IDX_NAME
    first_key = 1 if identity_records else 0
    starts, n_images = [], 0  # starts[k]: image record where class k starts (identity mode)
    with RecordIOWriter(rec_path, idx_path) as writer:
        for label, data in _iter_labelled(records):
            label = _check_label(label)
            key = first_key + n_images
            if identity_records:
                _start_classes(starts, label, key)
            stored: float | list[float] = [float(label), *extras] if extras else float(label)
            writer.write(key, pack(RecordHeader(0, stored, key, 0), data))
            n_images += 1
            if n_images % _PROGRESS_EVERY == 0:
                logger.info("wrote %d image records to %s", n_images, rec_path)
        if n_images == 0:
            raise ValueError("no images were given; a RecordIO dataset needs at least one")
        if identity_records:
            _write_identities(writer, starts, end=first_key + n_images)
    logger.info("wrote %s: %d images, %d identity records", rec_path, n_images, len(starts))
    return RecordIOSummary(rec_path, idx_path, n_images, len(starts))
