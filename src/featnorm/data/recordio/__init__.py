"""insightface RecordIO datasets (``train.rec`` + ``train.idx``) in pure Python, without mxnet.

CASIA-WebFace and MS1M are distributed as an indexed RecordIO pair written by mxnet's
``MXIndexedRecordIO``; mxnet no longer imports with current NumPy, so featnorm reads the format
itself (tests and benchmarks write it with ``tests/support/recordio_writer.py``). ``format`` holds
the byte layout and locators, ``reader`` one file's random access and the open-file cache,
``dataset`` the validation of a whole dataset and its manifest. Images are decoded in memory (``featnorm.data.images.decode_bytes``), never
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

from featnorm.data.recordio.dataset import RecordIO, open_recordio
from featnorm.data.recordio.format import (
    IDX_NAME,
    REC_NAME,
    RECORD_MAGIC,
    RecordHeader,
    RecordIOError,
    is_locator,
    make_locator,
    pack,
    parse_locator,
    unpack,
)
from featnorm.data.recordio.reader import OPEN_FILES_MAX, close_open_files, read_locator

__all__ = [
    "IDX_NAME",
    "OPEN_FILES_MAX",
    "RECORD_MAGIC",
    "REC_NAME",
    "RecordHeader",
    "RecordIO",
    "RecordIOError",
    "close_open_files",
    "is_locator",
    "make_locator",
    "open_recordio",
    "pack",
    "parse_locator",
    "read_locator",
    "unpack",
]
