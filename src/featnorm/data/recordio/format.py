"""RecordIO format: framing constants, mxnet's IRHeader (``pack``/``unpack``) and record locators.

See ``featnorm.data.recordio`` for the format description. Nothing here touches a file.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from featnorm.status import RECORD_BAD_HEADER

REC_NAME = "train.rec"
IDX_NAME = "train.idx"
RECORD_MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", RECORD_MAGIC)
FRAME = struct.Struct("<II")  # magic, lrec
LENGTH_BITS = 29  # lrec: lower 29 bits length, upper 3 bits continuation flag
LENGTH_MASK = (1 << LENGTH_BITS) - 1
MAX_PART_BYTES = LENGTH_MASK  # the largest part the 29-bit length field can describe
CFLAG_WHOLE, CFLAG_FIRST, CFLAG_MIDDLE, CFLAG_LAST = 0, 1, 2, 3
ALIGN = 4  # parts are padded to 4-byte boundaries
IR_HEADER = struct.Struct("<IfQQ")  # flag, label, id, id2: 24 bytes, mxnet's IRHeader
FLOAT_BYTES = 4
# float32 represents every integer up to 2**24 exactly; labels and record ranges stored as float32
# (insightface's header and identity records) must stay below it to survive the round trip.
FLOAT32_EXACT_INT = 2**24
IDENTITY_FLAG = 2  # header and identity records carry a 2-float label [start, end)
_LOCATOR = re.compile(r"(?P<rec>.+\.rec)#(?P<index>\d+)")


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
        head = IR_HEADER.pack(0, float(header.label), header.id, header.id2)
        return head + bytes(payload)
    labels = np.asarray(header.label, dtype="<f4").ravel()
    if labels.size == 0:
        raise ValueError("label is an empty sequence; give a float or at least one float")
    head = IR_HEADER.pack(labels.size, 0.0, header.id, header.id2)
    return head + labels.tobytes() + bytes(payload)


def unpack(record: bytes) -> tuple[RecordHeader, bytes]:
    """Split a record into its ``RecordHeader`` and payload (mxnet ``recordio.unpack``).

    Raises RecordIOError (status ``record_bad_header``) when the record is shorter than its header.
    """
    if len(record) < IR_HEADER.size:
        raise RecordIOError(
            f"record of {len(record)} bytes is shorter than the {IR_HEADER.size}-byte IRHeader",
            RECORD_BAD_HEADER,
        )
    flag, label, rid, rid2 = IR_HEADER.unpack_from(record)
    body = IR_HEADER.size
    if flag == 0:
        return RecordHeader(0, label, rid, rid2), record[body:]
    end = body + flag * FLOAT_BYTES
    if end > len(record):
        raise RecordIOError(
            f"IRHeader flag {flag} announces {flag} float labels ({flag * FLOAT_BYTES} bytes) but "
            f"only {len(record) - body} bytes follow the header",
            RECORD_BAD_HEADER,
        )
    labels = np.frombuffer(record, dtype="<f4", count=flag, offset=body).astype(np.float32)
    return RecordHeader(flag, labels, rid, rid2), record[end:]


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
