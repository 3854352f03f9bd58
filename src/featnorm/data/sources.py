"""Reading the image a manifest ``path`` names: a file, or a record of a RecordIO dataset.

The one place that knows both sources: :mod:`featnorm.data.images` decodes files and bytes and knows no
RecordIO, :mod:`featnorm.data.recordio` reads records and decodes them through :mod:`featnorm.data.images`.
"""

from __future__ import annotations

import os

from featnorm.data import recordio
from featnorm.data.images import Decoded, read_file

__all__ = ["read_image"]


def read_image(path: str | os.PathLike) -> Decoded:
    """Read and decode one image; failures become a status (:mod:`featnorm.status`).

    ``path`` is a file path or a RecordIO record locator (``<file>.rec#<index>``, see
    :mod:`featnorm.data.recordio`), as the manifest's ``path`` column holds them. The image follows
    :mod:`featnorm.data.images`'s policy: (H, W) grey or (H, W, 3) BGR, uint8.
    """
    if recordio.is_locator(os.fspath(path)):
        return recordio.read_locator(os.fspath(path))
    return read_file(path)
