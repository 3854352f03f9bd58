"""Thread control of every step: OpenCV, OpenBLAS (through ctypes) and torch.

A step sets its threads once, at its start: the ``brisque`` step limits OpenCV and OpenBLAS
(``set_threads``), the ``embed`` step gives torch its share of the CPU (``set_torch_threads``) and
limits each image-decoding worker to one thread (``decoding_worker_init``).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

__all__ = ["decoding_worker_init", "set_threads", "set_torch_threads"]

logger = logging.getLogger(__name__)


def _openblas_setters() -> list:
    """``*_set_num_threads`` of every OpenBLAS loaded in this process (NumPy's, SciPy's), Linux."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            libs = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return []
    setters = []
    for lib in libs:
        try:
            handle = ctypes.CDLL(lib)
        except OSError:
            continue
        for name in (
            "scipy_openblas_set_num_threads64_",
            "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_",
            "openblas_set_num_threads",
        ):
            if hasattr(handle, name):
                setters.append(getattr(handle, name))
                break
    return setters


def set_threads(threads: int) -> None:
    """Limit the threads of the libraries the brisque step calls: OpenCV and NumPy's OpenBLAS.

    BRISQUE's BLAS dot products are small (one image); OpenBLAS threads them otherwise, and its
    worker threads spin when the other cores are busy (thousands of times slower on a shared
    machine). Without a loaded OpenBLAS (another BLAS, another OS) only OpenCV is limited and a
    debug message says so; set OPENBLAS_NUM_THREADS / OMP_NUM_THREADS for the process instead.
    """
    if not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads={threads!r}; expected a positive integer")
    cv2.setNumThreads(int(threads))
    setters = _openblas_setters()
    for setter in setters:
        setter(int(threads))
    if not setters:
        logger.debug("no OpenBLAS found to limit; BLAS threads follow the environment")


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
