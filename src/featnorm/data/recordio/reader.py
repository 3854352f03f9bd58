"""Random-access reading of one ``.rec``/``.idx`` pair and the per-process cache of open files.

``read_locator`` is the entry point for one image; see ``featnorm.data.recordio`` for the cache rules.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from featnorm.data.images import Decoded, decode_bytes
from featnorm.data.recordio.format import (
    ALIGN,
    CFLAG_FIRST,
    CFLAG_LAST,
    CFLAG_MIDDLE,
    CFLAG_WHOLE,
    FLOAT_BYTES,
    FRAME,
    IR_HEADER,
    LENGTH_BITS,
    LENGTH_MASK,
    MAGIC_BYTES,
    RECORD_MAGIC,
    RecordHeader,
    RecordIOError,
    parse_locator,
    unpack,
)
from featnorm.status import (
    MISSING_FILE,
    RECORD_BAD_CONTINUATION,
    RECORD_BAD_HEADER,
    RECORD_BAD_MAGIC,
    RECORD_NOT_INDEXED,
    RECORD_OUT_OF_RANGE,
    RECORD_TRUNCATED,
    RECORDIO_BAD_INDEX,
    UNREADABLE_FILE,
)

logger = logging.getLogger(__name__)

OPEN_FILES_MAX = 8  # a run reads one dataset; a few slots keep tests with several files cheap


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


class RecordFile:
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
        """Close the ``.rec`` file (idempotent)."""
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
            f"{self.idx_path}: record {key} is not in the index", RECORD_NOT_INDEXED
        )

    def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes at byte ``offset``, without moving a shared file position."""
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
        if pos + FRAME.size > self.size:
            status = RECORD_OUT_OF_RANGE if pos >= self.size else RECORD_TRUNCATED
            raise RecordIOError(
                f"{where} starts at byte {pos} but the file has {self.size} bytes; the .rec is "
                "truncated or the .idx belongs to another file",
                status,
            )
        chunks: list[bytes] = []
        total = 0
        first = True
        while True:
            head = self.pread(FRAME.size, pos)
            if len(head) < FRAME.size:
                raise RecordIOError(
                    f"{where}: the file ends at byte {self.size} inside a frame header at byte "
                    f"{pos}; the record is truncated",
                    RECORD_TRUNCATED,
                )
            magic, lrec = FRAME.unpack(head)
            if magic != RECORD_MAGIC:
                raise RecordIOError(
                    f"{where}: expected magic 0x{RECORD_MAGIC:08X} at byte {pos}, found "
                    f"0x{magic:08X}; the .idx offset is wrong or the file is corrupt",
                    RECORD_BAD_MAGIC,
                )
            cflag, length = lrec >> LENGTH_BITS, lrec & LENGTH_MASK
            allowed = (CFLAG_WHOLE, CFLAG_FIRST) if first else (CFLAG_MIDDLE, CFLAG_LAST)
            if cflag not in allowed:
                raise RecordIOError(
                    f"{where}: part at byte {pos} has continuation flag {cflag}; expected one of "
                    f"{allowed} {'at the start of a record' if first else 'after a first part'}",
                    RECORD_BAD_CONTINUATION,
                )
            padded = length + (-length % ALIGN)
            if pos + FRAME.size + padded > self.size:
                raise RecordIOError(
                    f"{where}: part at byte {pos} announces {length} bytes but the file ends at "
                    f"byte {self.size}; the record is truncated",
                    RECORD_TRUNCATED,
                )
            want = length if limit is None else min(length, max(limit - total, 0))
            if want:
                chunks.append(self.pread(want, pos + FRAME.size))
                total += want
            pos += FRAME.size + padded
            if cflag in (CFLAG_WHOLE, CFLAG_LAST) or (limit is not None and total >= limit):
                break
            chunks.append(MAGIC_BYTES)  # the split removed the magic word; put it back
            total += len(MAGIC_BYTES)
            first = False
        data = b"".join(chunks)
        return data if limit is None else data[:limit]

    def read_header(self, key: int) -> RecordHeader:
        """The IRHeader of record ``key``, reading only the header bytes (no image)."""
        prefix = self.read(key, limit=IR_HEADER.size)
        if len(prefix) >= IR_HEADER.size:
            flag = IR_HEADER.unpack_from(prefix)[0]
            if flag:
                prefix = self.read(key, limit=IR_HEADER.size + flag * FLOAT_BYTES)
        return unpack(prefix)[0]

    def decode(self, key: int) -> Decoded:
        """Record ``key`` decoded as an image; any problem becomes the status."""
        try:
            _, payload = unpack(self.read(key))
        except RecordIOError as exc:
            logger.debug("%s", exc)
            return Decoded(None, exc.status or RECORD_BAD_HEADER)
        except OSError as exc:  # an I/O error of the disk or network file system
            logger.debug("%s: record %d: %s", self.rec_path, key, exc)
            return Decoded(None, UNREADABLE_FILE)
        return decode_bytes(payload)


class _OpenFiles:
    """Per-process LRU of open ``RecordFile`` objects (see the module docstring)."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.files: OrderedDict[tuple, RecordFile] = OrderedDict()
        self.pid = os.getpid()
        self.lock = threading.Lock()

    def get(self, rec_path: str) -> RecordFile:
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
            handle = RecordFile(rec_path)
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
        ``image`` as ``featnorm.data.sources.read_image`` gives it (uint8, H x W grey or H x W x 3 BGR),
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
        return Decoded(None, MISSING_FILE if missing_rec else RECORDIO_BAD_INDEX)
    except RecordIOError as exc:
        logger.debug("%s", exc)
        return Decoded(None, RECORDIO_BAD_INDEX)
    except OSError as exc:  # permissions, I/O errors
        logger.debug("%s: %s", rec_path, exc)
        return Decoded(None, UNREADABLE_FILE)
    return handle.decode(key)
