"""Decoding image files into the uint8 arrays every stage works on, with a per-image status.

One policy for every stage, so BRISQUE and the embedding see the same pixels:

* decode with OpenCV from the file's bytes (``cv2.imdecode``), so non-ASCII paths and in-memory
  records (RecordIO) go through the same code; this module knows files and bytes only, and
  :func:`featnorm.data.sources.read_image` picks the file or the RecordIO record a manifest path names;
* result: ``ndarray`` of shape (H, W) uint8 for one-channel images, (H, W, 3) uint8 **BGR** for
  colour, exactly what ``cv2.imread`` gives;
* alpha is dropped (RGBA/BGRA -> BGR, as ``cv2.IMREAD_COLOR`` does);
* 16-bit images are scaled to 8 bits (round(x / 257)), float images are clipped to [0, 1] and
  scaled by 255;
* EXIF orientation is **ignored** (``IMREAD_UNCHANGED`` semantics): face datasets are aligned
  crops stored the way they were aligned, and rotating them would break that alignment;
* a PNG whose chunk lengths run past the end of the data (truncated or corrupt) is
  ``undecodable`` without calling OpenCV: its PNG reader allocates a chunk's declared length
  first, so one flipped bit in a 7 kB file's IDAT length made it allocate 2.7 GB (fuzz test);
* a JPEG or PNG whose header declares more than ``MAX_DECODE_PIXELS`` (2^27, about 134
  megapixels: a 10,000 x 10,000 image still decodes) is ``too_large`` without decoding, so a
  corrupt or hostile header cannot make one job allocate gigabytes;
* any failure is a status string (:mod:`featnorm.status`), never an exception: ``missing_file``,
  ``empty_file``, ``unreadable_file``, ``undecodable``, ``too_large``, ``unsupported_channels``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from featnorm.status import (
    EMPTY_FILE,
    MISSING_FILE,
    OK,
    TOO_LARGE,
    UNDECODABLE,
    UNREADABLE_FILE,
    UNSUPPORTED_CHANNELS,
)

__all__ = ["MAX_DECODE_PIXELS", "Decoded", "decode_bytes", "read_file", "to_uint8"]

_UINT16_TO_UINT8 = 257.0  # 65535 / 255: maps the 16-bit range exactly onto the 8-bit one
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHUNK_OVERHEAD = 12  # 4-byte length, 4-byte type, 4-byte CRC around each chunk's data
MAX_DECODE_PIXELS = 2**27  # ~134 MP: at most ~400 MB decoded (BGR uint8) per image
_JPEG_SOI = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size
_JPEG_SOF = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xDA)})  # markers without a length field


@dataclass(frozen=True)
class Decoded:
    """A decoded image, or why there is none.

    image : ndarray of shape (H, W) or (H, W, 3), uint8 (BGR), or None when status != "ok".
    status : "ok" or the reason the image could not be decoded.
    """

    image: np.ndarray | None
    status: str

    @property
    def ok(self) -> bool:
        """True when the image was decoded (``status`` is ``ok``)."""
        return self.status == OK


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Bring a decoded array to uint8 with 1 or 3 (BGR) channels, following the module policy.

    Raises ValueError for channel counts other than 1, 3 or 4.
    """
    if image.dtype == np.uint16:
        image = np.rint(image.astype(np.float32) / _UINT16_TO_UINT8).astype(np.uint8)
    elif image.dtype in (np.float32, np.float64):
        image = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"unsupported pixel type {image.dtype}; expected uint8, uint16 or float")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = image[:, :, 0]
        elif channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        elif channels != 3:
            raise ValueError(f"unsupported channel count {channels}; expected 1, 3 or 4")
    elif image.ndim != 2:
        raise ValueError(f"unsupported array shape {image.shape}; expected (H, W) or (H, W, C)")
    return np.ascontiguousarray(image)


def _png_chunks_fit(buf: np.ndarray) -> bool:
    """False for a PNG whose chunks do not fit in ``buf`` (a declared length past the end, or no
    IEND); True for a complete PNG and for data that is not a PNG."""
    if buf[: len(_PNG_SIGNATURE)].tobytes() != _PNG_SIGNATURE:
        return True
    data = memoryview(np.ascontiguousarray(buf).reshape(-1))  # no copy of the image data
    pos = len(_PNG_SIGNATURE)
    while pos + _PNG_CHUNK_OVERHEAD <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk_type = bytes(data[pos + 4 : pos + 8])
        pos += _PNG_CHUNK_OVERHEAD + length
        if pos > len(data):
            return False
        if chunk_type == b"IEND":
            return True
    return False


def _declared_pixels(buf: np.ndarray) -> int | None:
    """Width x height that a PNG (IHDR) or JPEG (SOF) header declares; None if not found."""
    data = memoryview(np.ascontiguousarray(buf).reshape(-1))
    if bytes(data[:8]) == _PNG_SIGNATURE and len(data) >= 24 and bytes(data[12:16]) == b"IHDR":
        return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    if bytes(data[:2]) != _JPEG_SOI:
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None  # not at a marker: leave the verdict to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_NO_LENGTH:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF and pos + 9 <= len(data):
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            return height * width
        pos += 2 + length
    return None


def decode_bytes(data: bytes | np.ndarray) -> Decoded:
    """Decode an encoded image (JPEG, PNG, BMP, WebP, ...) held in memory.

    Returns a :class:`Decoded`: the uint8 (H, W) grey or (H, W, 3) BGR image, or None with the
    reason (empty, undecodable, too large, unsupported channels) as its status.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes | bytearray) else data
    if buf.size == 0:
        return Decoded(None, EMPTY_FILE)
    if not _png_chunks_fit(buf):
        return Decoded(None, UNDECODABLE)
    declared = _declared_pixels(buf)
    if declared is not None and declared > MAX_DECODE_PIXELS:
        return Decoded(None, TOO_LARGE)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        return Decoded(None, UNDECODABLE)
    try:
        return Decoded(to_uint8(image), OK)
    except ValueError:
        return Decoded(None, UNSUPPORTED_CHANNELS)


def read_file(path: str | os.PathLike) -> Decoded:
    """Read and decode one image file; failures become a status (see the module policy).

    A file only: a manifest ``path`` that may be a RecordIO record locator is read with
    :func:`featnorm.data.sources.read_image`.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        return Decoded(None, MISSING_FILE)
    except OSError:
        return Decoded(None, UNREADABLE_FILE)
    return decode_bytes(data)
