"""insightface RecordIO datasets (``train.rec`` + ``train.idx``) in pure Python, without mxnet.

CASIA-WebFace and MS1M are distributed as an indexed RecordIO pair written by mxnet's
``MXIndexedRecordIO``; mxnet no longer imports with current NumPy, so featnorm reads and writes
the format itself. Images are decoded in memory (``featnorm.images.decode_bytes``), never
extracted to disk.

Format (little-endian throughout)
---------------------------------
**Frame** (dmlc-core ``RecordIOWriter``): every part of a record starts with the uint32 magic
``0xCED7230A`` and a uint32 ``lrec`` whose upper 3 bits are the continuation flag ``cflag`` and
lower 29 bits the part's length in bytes; the part's bytes follow, padded with zeros to a
multiple of 4. ``cflag`` 0 is a whole record; a record whose payload holds the magic word at a
4-byte-aligned offset is *split* there (the writer keeps the file re-synchronisable on the magic):
the first part has ``cflag`` 1, middle parts 2, the last 3, and the magic word itself is dropped
from the stream and re-inserted between the parts when reading.

**Index** ``train.idx``: one text line per record, ``"<record index>\\t<byte offset>\\n"``, the
offset of the record's first frame in ``train.rec``. Records are read by index (random access),
never by scanning.

**Record payload** (mxnet ``recordio.pack``): a 24-byte ``IRHeader`` (uint32 ``flag``, float32
``label``, uint64 ``id``, uint64 ``id2``); when ``flag > 0`` the label is not the float32 field but
the ``flag`` float32 values that follow the header. The encoded image (JPEG, PNG, ...) follows.

**insightface layout** (``face2rec2.py``): record 0 is a header with ``flag = 2``, label
``[a, b]`` and no payload: image records are the indices ``1 .. a-1``, identity records
``a .. b-1``. Identity record ``a + k`` has label ``[start, end]``, the half-open range of image
records of class ``k``, so class sizes are known without touching any image. When record 0 has
``flag == 0`` or a payload (a generic ``im2rec`` file, whose record 0 is an image), or there is no
record 0, every indexed record is an image and the labels are read from the image headers; the
class label of an image is its scalar label, or the first float of a multi-float label.

Locators
--------
A manifest row's ``path`` for a RecordIO image is a *record locator*,
``"<path to the .rec>#<record index>"`` (e.g. ``data/casia/train.rec#12345``), relative to the
working directory or absolute like every manifest path. ``read_locator`` opens it.

Open files
----------
``read_locator`` keeps at most ``OPEN_FILES_MAX`` RecordIO files open per process (an LRU keyed by
the file's path, size, inode and modification time, so a rewritten file is reopened), each with its
parsed index (16 bytes per record). Reads use ``os.pread``, so a forked worker or a thread never
moves another's file position; a forked child drops the parent's entries on first use.
``close_open_files()`` empties it. There is no other module state.

Errors
------
File-level problems (missing files, an unparseable index, an index that does not match the
``.rec``, inconsistent header or identity records) raise ``RecordIOError`` (a ``ValueError``) or
``FileNotFoundError`` naming the path and what is wrong. A problem with one image record becomes a
``Decoded`` status (``record_bad_magic``, ``record_truncated``, ...). Every read is bounded by the
file size: a corrupt length never allocates or waits for more than the file holds.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from featnorm.images import Decoded, decode_bytes
from featnorm.io import atomic_path

__all__ = [
    "IDX_NAME",
    "OPEN_FILES_MAX",
    "RECORD_MAGIC",
    "REC_NAME",
    "RecordHeader",
    "RecordIO",
    "RecordIOError",
    "RecordIOSummary",
    "RecordIOWriter",
    "close_open_files",
    "is_locator",
    "make_locator",
    "open_recordio",
    "pack",
    "parse_locator",
    "read_locator",
    "unpack",
    "write_recordio",
]

logger = logging.getLogger(__name__)

REC_NAME = "train.rec"
IDX_NAME = "train.idx"
RECORD_MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", RECORD_MAGIC)
_FRAME = struct.Struct("<II")  # magic, lrec
_LENGTH_BITS = 29  # lrec: lower 29 bits length, upper 3 bits continuation flag
_LENGTH_MASK = (1 << _LENGTH_BITS) - 1
MAX_PART_BYTES = _LENGTH_MASK  # the largest part the 29-bit length field can describe
_CFLAG_WHOLE, _CFLAG_FIRST, _CFLAG_MIDDLE, _CFLAG_LAST = 0, 1, 2, 3
_ALIGN = 4  # parts are padded to 4-byte boundaries
_IR_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2: 24 bytes, mxnet's IRHeader
_FLOAT_BYTES = 4
# float32 represents every integer up to 2**24 exactly; labels and record ranges stored as float32
# (insightface's header and identity records) must stay below it to survive the round trip.
FLOAT32_EXACT_INT = 2**24
IDENTITY_FLAG = 2  # header and identity records carry a 2-float label [start, end)
OPEN_FILES_MAX = 8  # a run reads one dataset; a few slots keep tests with several files cheap
_LOCATOR = re.compile(r"(?P<rec>.+\.rec)#(?P<index>\d+)")
_PROGRESS_EVERY = 10_000  # writer progress line every N image records

STATUS_NOT_INDEXED = "record_not_indexed"
STATUS_OUT_OF_RANGE = "record_out_of_range"
STATUS_BAD_MAGIC = "record_bad_magic"
STATUS_TRUNCATED = "record_truncated"
STATUS_BAD_CONTINUATION = "record_bad_continuation"
STATUS_BAD_HEADER = "record_bad_header"
STATUS_MISSING_FILE = "missing_file"
STATUS_UNREADABLE = "unreadable_file"  # same status as featnorm.images.read_image
STATUS_BAD_INDEX = "recordio_bad_index"


class RecordIOError(ValueError):
    """A malformed RecordIO file or record.

    ``status`` is the per-record status string when the problem is confined to one record
    (``record_bad_magic``, ``record_truncated``, ...), else ``None``.
    """

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RecordHeader:
    """mxnet's ``IRHeader``.

    flag : int, uint32: 0 for a scalar label, else the number of float32 label values.
    label : float when ``flag == 0``, else ndarray of shape (flag,), float32.
    id, id2 : int, uint64: free ids (insightface: ``id`` = the record index, ``id2`` = 0).
    """

    flag: int
    label: float | np.ndarray
    id: int = 0
    id2: int = 0

    @property
    def labels(self) -> np.ndarray:
        """The label as ndarray of shape (max(flag, 1),), float32."""
        return np.atleast_1d(np.asarray(self.label, dtype=np.float32))

    @property
    def class_label(self) -> float:
        """The class: the scalar label, or the first float of a multi-float label (insightface)."""
        return float(self.labels[0])


def pack(header: RecordHeader, payload: bytes = b"") -> bytes:
    """Serialise ``header`` and ``payload`` into a record (mxnet ``recordio.pack``).

    A scalar ``label`` is stored in the header with ``flag = 0``; a sequence of floats is stored
    after the header with ``flag = len(label)`` (the ``flag`` field given is ignored, as mxnet does).
    """
    if np.ndim(header.label) == 0:
        head = _IR_HEADER.pack(0, float(header.label), header.id, header.id2)
        return head + bytes(payload)
    labels = np.asarray(header.label, dtype="<f4").ravel()
    if labels.size == 0:
        raise ValueError("label is an empty sequence; give a float or at least one float")
    head = _IR_HEADER.pack(labels.size, 0.0, header.id, header.id2)
    return head + labels.tobytes() + bytes(payload)


def unpack(record: bytes) -> tuple[RecordHeader, bytes]:
    """Split a record into its ``RecordHeader`` and payload (mxnet ``recordio.unpack``).

    Raises RecordIOError (status ``record_bad_header``) when the record is shorter than its header.
    """
    if len(record) < _IR_HEADER.size:
        raise RecordIOError(
            f"record of {len(record)} bytes is shorter than the {_IR_HEADER.size}-byte IRHeader",
            STATUS_BAD_HEADER,
        )
    flag, label, rid, rid2 = _IR_HEADER.unpack_from(record)
    body = _IR_HEADER.size
    if flag == 0:
        return RecordHeader(0, label, rid, rid2), record[body:]
    end = body + flag * _FLOAT_BYTES
    if end > len(record):
        raise RecordIOError(
            f"IRHeader flag {flag} announces {flag} float labels ({flag * _FLOAT_BYTES} bytes) but "
            f"only {len(record) - body} bytes follow the header",
            STATUS_BAD_HEADER,
        )
    labels = np.frombuffer(record, dtype="<f4", count=flag, offset=body).astype(np.float32)
    return RecordHeader(flag, labels, rid, rid2), record[end:]


def _frame(payload: bytes) -> bytes:
    """Frame one record: split at aligned magic words (dmlc-core's rule), pad parts to 4 bytes."""
    if len(payload) > MAX_PART_BYTES:
        raise ValueError(
            f"record of {len(payload)} bytes exceeds the RecordIO limit of {MAX_PART_BYTES} bytes"
        )
    view = memoryview(payload)
    out: list[bytes] = []
    start = 0
    aligned_end = len(payload) - len(payload) % _ALIGN
    pos = payload.find(_MAGIC_BYTES, 0, aligned_end)
    while pos != -1:
        if pos % _ALIGN == 0:
            cflag = _CFLAG_FIRST if start == 0 else _CFLAG_MIDDLE
            out.append(_FRAME.pack(RECORD_MAGIC, (cflag << _LENGTH_BITS) | (pos - start)))
            out.append(view[start:pos].tobytes())  # aligned: start and pos are multiples of 4
            start = pos + _ALIGN
            pos = payload.find(_MAGIC_BYTES, start, aligned_end)
        else:
            pos = payload.find(_MAGIC_BYTES, pos + 1, aligned_end)
    cflag = _CFLAG_LAST if start else _CFLAG_WHOLE
    length = len(payload) - start
    out.append(_FRAME.pack(RECORD_MAGIC, (cflag << _LENGTH_BITS) | length))
    out.append(view[start:].tobytes())
    out.append(b"\0" * (-length % _ALIGN))
    return b"".join(out)


# ---------------------------------------------------------------------------------------------
# reading


def _read_index(idx_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``.idx`` into (keys, offsets), both ndarray of shape (M,), int64, sorted by key."""
    try:
        table = pd.read_csv(
            idx_path,
            sep="\t",
            header=None,
            names=["key", "offset"],
            dtype="int64",
            engine="c",
            skip_blank_lines=True,
        )
    except pd.errors.EmptyDataError:
        raise RecordIOError(
            f"{idx_path}: the index is empty; it should list every record"
        ) from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise RecordIOError(_first_bad_index_line(idx_path) or f"{idx_path}: {exc}") from None
    if table.empty:
        raise RecordIOError(f"{idx_path}: the index is empty; it should list every record")
    keys = table["key"].to_numpy(np.int64)
    offsets = table["offset"].to_numpy(np.int64)
    order = np.argsort(keys, kind="stable")
    keys, offsets = keys[order], offsets[order]
    if keys[0] < 0 or offsets.min() < 0:
        raise RecordIOError(f"{idx_path}: negative record index or offset; both must be >= 0")
    dup = np.flatnonzero(np.diff(keys) == 0)
    if dup.size:
        raise RecordIOError(
            f"{idx_path}: record index {keys[dup[0]]} is listed {np.sum(keys == keys[dup[0]])} "
            f"times ({dup.size} duplicates in all); each record must appear once"
        )
    return keys, offsets


def _first_bad_index_line(idx_path: Path) -> str | None:
    """The first line of ``idx_path`` that is not ``<int>\\t<int>``, described (slow path)."""
    with open(idx_path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if line.strip() and not (len(fields) == 2 and all(f.strip().isdigit() for f in fields)):
                return (
                    f"{idx_path}: line {number} is {line.rstrip()!r}; every line must be "
                    "'<record index>\\t<byte offset>' with two non-negative integers"
                )
    return None


class _RecordFile:
    """An open ``.rec`` with its parsed ``.idx``: bounded random-access reads by record index."""

    def __init__(self, rec_path: str | os.PathLike, idx_path: str | os.PathLike | None = None):
        self.rec_path = Path(rec_path)
        self.idx_path = (
            Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        )
        if not self.rec_path.is_file():
            raise FileNotFoundError(f"RecordIO data file {self.rec_path} does not exist")
        if not self.idx_path.is_file():
            raise FileNotFoundError(
                f"RecordIO index {self.idx_path} does not exist; it must sit beside "
                f"{self.rec_path.name} (mxnet writes both)"
            )
        self.keys, self.offsets = _read_index(self.idx_path)
        self._dense = bool(self.keys[0] == 0 and self.keys[-1] == self.keys.size - 1)
        self._fd = os.open(self.rec_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._lock = threading.Lock()  # only used where os.pread is missing (Windows)
        self.size = os.fstat(self._fd).st_size

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def offset(self, key: int) -> int:
        """Byte offset of record ``key``; RecordIOError (``record_not_indexed``) if absent."""
        if self._dense:
            if 0 <= key < self.keys.size:
                return int(self.offsets[key])
        else:
            pos = int(np.searchsorted(self.keys, key))
            if pos < self.keys.size and self.keys[pos] == key:
                return int(self.offsets[pos])
        raise RecordIOError(
            f"{self.idx_path}: record {key} is not in the index", STATUS_NOT_INDEXED
        )

    def _pread(self, n: int, offset: int) -> bytes:
        if hasattr(os, "pread"):
            return os.pread(self._fd, n, offset)
        with self._lock:
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, n)

    def read(self, key: int, *, limit: int | None = None) -> bytes:
        """The payload of record ``key``, parts reassembled; at most ``limit`` bytes if given.

        Raises RecordIOError with a per-record ``status`` for a malformed record.
        """
        pos = self.offset(key)
        where = f"{self.rec_path}: record {key}"
        if pos + _FRAME.size > self.size:
            status = STATUS_OUT_OF_RANGE if pos >= self.size else STATUS_TRUNCATED
            raise RecordIOError(
                f"{where} starts at byte {pos} but the file has {self.size} bytes; the .rec is "
                "truncated or the .idx belongs to another file",
                status,
            )
        chunks: list[bytes] = []
        total = 0
        first = True
        while True:
            head = self._pread(_FRAME.size, pos)
            if len(head) < _FRAME.size:
                raise RecordIOError(
                    f"{where}: the file ends at byte {self.size} inside a frame header at byte "
                    f"{pos}; the record is truncated",
                    STATUS_TRUNCATED,
                )
            magic, lrec = _FRAME.unpack(head)
            if magic != RECORD_MAGIC:
                raise RecordIOError(
                    f"{where}: expected magic 0x{RECORD_MAGIC:08X} at byte {pos}, found "
                    f"0x{magic:08X}; the .idx offset is wrong or the file is corrupt",
                    STATUS_BAD_MAGIC,
                )
            cflag, length = lrec >> _LENGTH_BITS, lrec & _LENGTH_MASK
            allowed = (_CFLAG_WHOLE, _CFLAG_FIRST) if first else (_CFLAG_MIDDLE, _CFLAG_LAST)
            if cflag not in allowed:
                raise RecordIOError(
                    f"{where}: part at byte {pos} has continuation flag {cflag}; expected one of "
                    f"{allowed} {'at the start of a record' if first else 'after a first part'}",
                    STATUS_BAD_CONTINUATION,
                )
            padded = length + (-length % _ALIGN)
            if pos + _FRAME.size + padded > self.size:
                raise RecordIOError(
                    f"{where}: part at byte {pos} announces {length} bytes but the file ends at "
                    f"byte {self.size}; the record is truncated",
                    STATUS_TRUNCATED,
                )
            want = length if limit is None else min(length, max(limit - total, 0))
            if want:
                chunks.append(self._pread(want, pos + _FRAME.size))
                total += want
            pos += _FRAME.size + padded
            if cflag in (_CFLAG_WHOLE, _CFLAG_LAST) or (limit is not None and total >= limit):
                break
            chunks.append(_MAGIC_BYTES)  # the split removed the magic word; put it back
            total += len(_MAGIC_BYTES)
            first = False
        data = b"".join(chunks)
        return data if limit is None else data[:limit]

    def read_header(self, key: int) -> RecordHeader:
        """The IRHeader of record ``key``, reading only the header bytes (no image)."""
        prefix = self.read(key, limit=_IR_HEADER.size)
        if len(prefix) >= _IR_HEADER.size:
            flag = _IR_HEADER.unpack_from(prefix)[0]
            if flag:
                prefix = self.read(key, limit=_IR_HEADER.size + flag * _FLOAT_BYTES)
        return unpack(prefix)[0]

    def decode(self, key: int) -> Decoded:
        """Record ``key`` decoded as an image; any problem becomes the status."""
        try:
            _, payload = unpack(self.read(key))
        except RecordIOError as exc:
            logger.debug("%s", exc)
            return Decoded(None, exc.status or STATUS_BAD_HEADER)
        except OSError as exc:  # an I/O error of the disk or network file system
            logger.debug("%s: record %d: %s", self.rec_path, key, exc)
            return Decoded(None, STATUS_UNREADABLE)
        return decode_bytes(payload)


def make_locator(rec_path: str | os.PathLike, record_index: int) -> str:
    """The locator ``"<rec_path>#<record_index>"`` of one record."""
    return f"{os.fspath(rec_path)}#{int(record_index)}"


def is_locator(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a record locator (``<...>.rec#<digits>``); syntax only, no file access."""
    return _LOCATOR.fullmatch(os.fspath(path)) is not None


def parse_locator(locator: str) -> tuple[str, int]:
    """Split a locator into (``.rec`` path, record index); ValueError if it is not one."""
    match = _LOCATOR.fullmatch(os.fspath(locator))
    if match is None:
        raise ValueError(
            f"{locator!r} is not a record locator; expected '<path to .rec>#<record index>', "
            "e.g. 'data/casia/train.rec#12345'"
        )
    return match["rec"], int(match["index"])


class _OpenFiles:
    """Per-process LRU of open ``_RecordFile`` objects (see the module docstring)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.files: OrderedDict[tuple, _RecordFile] = OrderedDict()
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def get(self, rec_path: str) -> _RecordFile:
        stat = os.stat(rec_path)
        key = (os.path.abspath(rec_path), stat.st_size, stat.st_ino, stat.st_mtime_ns)
        with self.lock:
            if self.pid != os.getpid():  # forked: the parent's descriptors are not ours to manage
                self.files = OrderedDict()
                self.pid = os.getpid()
            handle = self.files.get(key)
            if handle is not None:
                self.files.move_to_end(key)
                return handle
            handle = _RecordFile(rec_path)
            self.files[key] = handle
            while len(self.files) > self.maxsize:
                self.files.popitem(last=False)[1].close()
            return handle

    def clear(self) -> None:
        with self.lock:
            for handle in self.files.values():
                handle.close()
            self.files.clear()


_open_files = _OpenFiles(OPEN_FILES_MAX)


def close_open_files() -> None:
    """Close every file ``read_locator`` holds open in this process."""
    _open_files.clear()


def read_locator(locator: str) -> Decoded:
    """Read and decode the image a record locator points to; failures become the status.

    Parameters
    ----------
    locator : str
        ``"<path to .rec>#<record index>"``; the ``.idx`` is the same path with suffix ``.idx``.

    Returns
    -------
    Decoded
        ``image`` as ``featnorm.images.read_image`` gives it (uint8, H x W grey or H x W x 3 BGR),
        or None with a status: ``missing_file`` (no ``.rec``), ``unreadable_file`` (an OS error
        such as a permission or I/O error), ``recordio_bad_index`` (no or a
        malformed ``.idx``), ``record_not_indexed``, ``record_out_of_range``, ``record_bad_magic``,
        ``record_truncated``, ``record_bad_continuation``, ``record_bad_header``, or a decode status
        (``empty_file``, ``undecodable``, ``unsupported_channels``).

    Raises ValueError only when ``locator`` is not a locator at all (see ``is_locator``).
    """
    rec_path, key = parse_locator(locator)
    try:
        handle = _open_files.get(rec_path)
    except FileNotFoundError as exc:
        logger.debug("%s", exc)
        missing_rec = not os.path.isfile(rec_path)
        return Decoded(None, STATUS_MISSING_FILE if missing_rec else STATUS_BAD_INDEX)
    except RecordIOError as exc:
        logger.debug("%s", exc)
        return Decoded(None, STATUS_BAD_INDEX)
    except OSError as exc:  # permissions, I/O errors
        logger.debug("%s: %s", rec_path, exc)
        return Decoded(None, STATUS_UNREADABLE)
    return handle.decode(key)


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
        self._file = _RecordFile(self.rec_path, self.idx_path)
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
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_index(self) -> None:
        f = self._file
        beyond = np.flatnonzero(f.offsets + _FRAME.size > f.size)
        if beyond.size:
            k = beyond[np.argmax(f.offsets[beyond])]
            raise RecordIOError(
                f"{f.idx_path} does not match {f.rec_path}: {beyond.size} of {f.keys.size} "
                f"offsets point past the end of the {f.size}-byte .rec (e.g. record {f.keys[k]} "
                f"at byte {f.offsets[k]}); the .rec is truncated or the .idx belongs to another "
                "file: re-download or rewrite both"
            )
        misaligned = np.flatnonzero(f.offsets % _ALIGN)
        if misaligned.size:
            k = misaligned[0]
            raise RecordIOError(
                f"{f.idx_path} does not match {f.rec_path}: record {f.keys[k]} is at byte "
                f"{f.offsets[k]}, not a multiple of {_ALIGN} as every record start is"
            )
        order = np.argsort(f.offsets)
        for k in {int(order[0]), int(order[-1])}:  # the first and the last record in the file
            head = f._pread(_FRAME.size, int(f.offsets[k]))
            if _FRAME.unpack(head)[0] != RECORD_MAGIC:
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


def _require_indexed(f: _RecordFile, keys: np.ndarray, kind: str) -> None:
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


# ---------------------------------------------------------------------------------------------
# writing


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
    root = Path(root)
    extras = [float(v) for v in label_extras]
    rec_path, idx_path = root / REC_NAME, root / IDX_NAME
    first_key = 1 if identity_records else 0
    starts: list[int] = []  # image record where class k starts (identity mode)
    n_images = 0
    with RecordIOWriter(rec_path, idx_path) as writer:
        for label, data in _iter_labelled(records):
            label = _check_label(label)
            key = first_key + n_images
            if identity_records:
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
            stored: float | list[float] = [float(label), *extras] if extras else float(label)
            writer.write(key, pack(RecordHeader(0, stored, key, 0), data))
            n_images += 1
            if n_images % _PROGRESS_EVERY == 0:
                logger.info("wrote %d image records to %s", n_images, rec_path)
        if n_images == 0:
            raise ValueError("no images were given; a RecordIO dataset needs at least one")
        n_identities = len(starts)
        if identity_records:
            end = first_key + n_images
            first_identity = end
            writer.write(
                0,
                pack(RecordHeader(IDENTITY_FLAG, [first_identity, first_identity + n_identities])),
            )
            bounds = [*starts, end]
            for k in range(n_identities):
                key = first_identity + k
                writer.write(key, pack(RecordHeader(IDENTITY_FLAG, bounds[k : k + 2], key, 0)))
    logger.info("wrote %s: %d images, %d identity records", rec_path, n_images, n_identities)
    return RecordIOSummary(rec_path, idx_path, n_images, n_identities)
