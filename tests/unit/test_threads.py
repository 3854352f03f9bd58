"""featnorm.threads: a step's thread limits reach OpenCV and every loaded BLAS."""

import cv2
import numpy as np
import pytest
import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS beside NumPy's)
from threadpoolctl import threadpool_info

from featnorm import threads


def test_set_threads_limits_opencv_and_every_blas():
    threads.set_threads(2)
    assert cv2.getNumThreads() == 2
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas, "NumPy loads a BLAS; threadpoolctl must see it"
    assert all(pool["num_threads"] == 2 for pool in blas), blas
    threads.set_threads(1)
    assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    np.dot(np.ones((64, 64)), np.ones((64, 64)))  # still computes


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_set_threads_refuses_non_positive_integers(bad):
    with pytest.raises(ValueError, match="positive integer"):
        threads.set_threads(bad)
