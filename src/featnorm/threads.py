"""Thread control of every step: OpenCV, the BLAS NumPy and SciPy load (threadpoolctl), torch.

A step sets its threads once, at its start: the ``brisque`` step limits OpenCV and OpenBLAS
(``set_threads``), the ``embed`` step gives torch its share of the CPU (``set_torch_threads``) and
limits each image-decoding worker to one thread (``decoding_worker_init``).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["decoding_worker_init", "set_threads", "set_torch_threads"]

logger = logging.getLogger(__name__)


def set_threads(threads: int) -> None:
    """Limit the threads of the libraries the brisque step calls: OpenCV and the loaded BLAS.

    BRISQUE's BLAS dot products are small (one image); OpenBLAS threads them otherwise, and its
    worker threads spin when the other cores are busy (thousands of times slower on a shared
    machine). threadpoolctl finds every BLAS and OpenMP runtime loaded in the process (OpenBLAS,
    MKL, BLIS; any OS) and limits it for the rest of the process.
    """
    if not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads={threads!r}; expected a positive integer")
    cv2.setNumThreads(int(threads))
    limited = threadpool_limits(limits=int(threads), user_api="blas")
    if not limited.get_original_num_threads():
        logger.debug("no BLAS found to limit; BLAS threads follow the environment")


def set_torch_threads(threads: int) -> None:
    """torch's intra-op CPU threads of this process (a job's share of the CPU, as scheduled)."""
    import torch  # the brisque step never imports torch

    torch.set_num_threads(threads)


def decoding_worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn``: one OpenCV and one torch thread per decoding worker.

    Each worker decodes one image at a time; OpenCV's and torch's own threads would only compete
    with the model for the cores.
    """
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
