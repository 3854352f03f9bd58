"""BRISQUE no-reference image quality, as the original LIVE release computes it.

BRISQUE (Mittal, Moorthy & Bovik, IEEE TIP 2012) describes an image by 36 statistics of its
mean-subtracted, contrast-normalised (MSCN) coefficients at two scales and maps them to a quality
score with an epsilon-SVR trained on the LIVE database. **Lower is better**; clean photographs
score around 0 to 20, heavily distorted ones 60 to 100 (raw SVR output, not clamped).

Flavour ``live-matlab`` (:data:`FLAVOUR`, recorded in every output's metadata) follows the MATLAB
release (``brisque_feature.m``) with the LIVE model (``allmodel`` / ``allrange``):

* grey: BT.601 luma rounded to uint8 (``cv2.COLOR_BGR2GRAY``, weights 0.299/0.587/0.114). MATLAB's
  ``rgb2gray`` uses 0.2989/0.5870/0.1140 and differs by one grey level on about 2 % of pixels,
  which moves scores by about 0.01 (reference README ablation);
* values on the 0..255 scale; local mean and variance in float64 (see the end);
* local mean and deviation with the 7x7 Gaussian window, sigma 7/6, normalised to sum 1, **zero
  padding** (MATLAB ``filter2(..., 'same')``); MSCN = (I - mu) / (sigma + 1);
* features per scale: symmetric GGD fit of the MSCN map (shape, variance = mean of squares), then
  for the horizontal, vertical and both diagonal neighbour products (``circshift``:
  **wrap-around**, N products each) an AGGD fit (shape, mean, left variance, right variance);
  shapes by moment matching on the grid 0.2:0.001:10 (nearest grid value, first on ties);
* second scale: MATLAB ``imresize(I, 0.5)``: bicubic (a = -0.5) **with antialiasing**, i.e. the
  8-tap kernel [-3, -9, 29, 111, 111, 29, -9, -3] / 256 (:data:`HALF_SCALE_TAPS`),
  symmetric (mirror) border, output size ceil(H/2) x ceil(W/2), not rounded;
* score: features scaled to [-1, 1] with the LIVE range, then
  ``sum_i coef_i * exp(-0.05 * ||x - sv_i||^2) - rho`` over the 774 LIVE support vectors,
  evaluated for a whole batch as one matrix product.

Input policy (:func:`score`, :func:`features`): each image is a NumPy array as ``cv2.imread``
gives it: (H, W) grey or (H, W, 3) BGR uint8. Other inputs are normalised to that uint8 first,
with :func:`featnorm.images.to_uint8` (the same policy as decoding files): (H, W, 4) BGRA drops
alpha (the colour is scored as it is, as every reference implementation does), (H, W, 1) is grey,
uint16 is scaled by 1/257, float32/float64 must lie in [0, 1] and are scaled by 255 and rounded
(a float image with values outside [0, 1] or NaN gives NaN with status ``float_out_of_range``:
[0, 255] floats are a common mistake, and OpenCV's BRISQUE silently scores them as if divided by
255 twice). Any other dtype or shape gives NaN with status ``unsupported_input``.

Outcome policy (a NaN score always comes with a status other than ``ok``):

* ``too_small``: either side below :data:`MIN_SIDE` (32 px). At that size the second scale is
  16 px, of which the 3-px zero-padded band of the 7x7 window covers 6 rows and 6 columns; below
  it the scores are dominated by the border (reference README: 16x16 gives 2.9 vs about 150
  depending on the implementation) and mean nothing.
* ``flat_image``: the grey image is constant. MSCN is 0 everywhere but in the zero-padded border
  band, and the fit describes the padding, not the image. (OpenCV returns a "perfect" 0 here.)
* ``near_flat_image``: fewer than :data:`MIN_ACTIVE_FRACTION` (5 %) of the pixels away from the
  border band have |MSCN| above :data:`FLAT_MSCN` (a pixel equal to its window's mean: inside a
  flat or linear-ramp window), so the statistics describe a few edges and the padding (e.g. two
  flat halves, a flat image with a logo, a smooth gradient). The share is estimated on every
  second row and column. The real images of the reference set have 77 % or more.
* ``degenerate_features``: a fit was not defined (e.g. no negative neighbour product), so a
  feature is NaN or infinite.
* Exactly flat windows inside an otherwise textured image (saturated areas, flat JPEG blocks)
  are left as the reference implementations leave them: the filter sum differs from the pixel
  value by float residue (about 1e-12 grey levels here, 1e-5 in pyiqa's float32), so their MSCN
  is a tiny non-zero number and their neighbour products count on one side of the AGGD fit
  (mostly the positive one: neighbours in one flat area share the residue's sign). Setting them to
  exactly 0 instead would be cleaner, but it moves JPEG q10 scores by up to 2 points away from
  pyiqa (MATLAB's double-precision conv2 leaves the same kind of residue).

Speed and memory: scale 1 is processed one image at a time through reused buffers (a 250x250 image's
arrays then stay in the CPU cache; stacking them made every pass slower), while the parts that
gain from a batch are vectorised across it: the half-scale images of :data:`CHUNK_PIXELS` worth of
same-size images are stacked with zero rows between them and processed as one array (a batched
matmul per lag for their dot products), the shape fits run as one binary search on the grid for
all images, and the SVR as one (N, 36) x (36, 774) kernel evaluation. The neighbour-product
sums are BLAS dot products of sign-split maps (see ``_MAPS``), not masked reductions. An image
larger than :data:`STRIP_PIXELS` (1 MP) is processed in row strips (a 3-row halo for the window,
the wrap-around partner row carried from strip to strip, the half-scale image built from strips
with a 4-row mirrored halo), so the working buffers stay around 50 MB whatever the image size;
besides the caller's uint8 image only the half-scale image (a quarter of the pixels, float32) is
held whole. Strips give the same features as the whole image up to the float32 rounding of the
sums (relative 1e-5; tested).

Remaining differences to the MATLAB release: grey weights (above); ``imresize`` computes its kernel
weights per output pixel while we use the exact closed-form 8 taps (identical up to rounding); the
half-scale image and the MSCN map are stored as float32 (1e-5 grey levels, 6e-8 relative) and the
neighbour-product sums are float32 BLAS dots (relative error ~1e-6), while the local mean and
variance are float64 as in MATLAB (``precision="float32"`` makes them float32 too, as pyiqa
does: ~1.3x faster, scores move by 0.05 on average and up to ~1 point). Against pyiqa (float32)
on the 55 real reference images: median |difference| 0.012, 95th percentile 0.16, max 0.73.

The LIVE model parameters ship in ``featnorm/data/brisque_live.npz`` with the LIVE notice
(``featnorm/data/LIVE_NOTICE.txt``). Copyright (c) 2011 The University of Texas at Austin; cite
Mittal, Moorthy & Bovik, "BRISQUE Software Release" (2011) and "No Reference Image Quality
Assessment in the Spatial Domain" when publishing results.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy.special import gammaln

from featnorm.images import STATUS_OK, read_image, to_uint8

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURE_NAMES",
    "FLAVOUR",
    "MIN_SIDE",
    "SvrModel",
    "features",
    "features_and_status",
    "live_model",
    "load_libsvm_model",
    "output_params",
    "score",
    "score_table",
    "set_threads",
]

FLAVOUR = "live-matlab"

# --- the MATLAB release's constants --------------------------------------------------------------
WINDOW_SIZE = 7  # fspecial('gaussian', 7, 7/6)
WINDOW_SIGMA = 7.0 / 6.0
WINDOW_HALF = WINDOW_SIZE // 2  # rows/columns of zero padding the window reaches beyond the image
MSCN_C = 1.0  # stabilising constant on the 0..255 scale: (I - mu) / (sigma + 1)
SHAPE_GRID = 0.2 + 0.001 * np.arange(9801)  # 0.2:0.001:10, the shape values the fits may return
# imresize(I, 0.5) with antialiasing: the bicubic kernel (a = -0.5) stretched by 2, sampled at the
# half-pixel offsets +-0.5, +-1.5, +-2.5, +-3.5 around the output centre, weights / 2 (sum 1).
_CUBIC_AT = np.array([1.75, 1.25, 0.75, 0.25])  # |offset| / 2 for the taps -3.5 .. -0.5


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic kernel with a = -0.5 (MATLAB's imresize 'bicubic')."""
    ax = np.abs(x)
    near = (1.5 * ax**3 - 2.5 * ax**2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax**3 + 2.5 * ax**2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


_HALF = _cubic(_CUBIC_AT) / 2.0
HALF_SCALE_TAPS = np.concatenate([_HALF, _HALF[::-1]])  # input offsets -3 .. +4 from 2*i
HALF_SCALE_OFFSET = -3  # output pixel i reads input pixels 2*i - 3 .. 2*i + 4
SVR_GAMMA = 0.05  # the LIVE model's RBF gamma (allmodel header)
# Precision of the local mean and variance: float64 as MATLAB; float32 (as pyiqa) is about 1.3x
# faster and moves scores by 0.05 on average, up to ~1 point (variance cancellation, grid flips).
PRECISIONS = ("float64", "float32")

# --- our policy ---------------------------------------------------------------------------------
MIN_SIDE = 32  # px; see the module docstring (second scale 16 px, 3-px padded band on each side)
MIN_ACTIVE_FRACTION = 0.05  # share of interior pixels in non-flat windows below which: near-flat
# |MSCN| at or below this counts as a flat window for the near-flat test only: an exactly flat (or
# linear) window leaves float residue of the filter sum, ~1e-12 in float64 and up to ~1e-5 in
# float32; a pixel within 1e-4 grey level of its window mean is flat for any purpose. (Real images
# of the reference set: the same 77 % minimum share with 1e-9 in float64 and 1e-4 in either.)
FLAT_MSCN = 1e-4
ACTIVE_STEP = 2  # the near-flat share is estimated on every 2nd row and column (a quarter)
CHUNK_PIXELS = 1 << 18  # pixels per batch of same-size images (4 of 250x250: measured best of 1-16)
STRIP_PIXELS = 1 << 20  # images above ~1 MP go through row strips of about this many pixels
# (working buffers: ~50 bytes per strip pixel, i.e. ~50 MB whatever the image size)

_SHIFT_NAMES = ("h", "v", "d1", "d2")
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"s{scale}_{name}"
    for scale in (1, 2)
    for name in (
        "mscn_shape",
        "mscn_var",
        *(f"{d}_{stat}" for d in _SHIFT_NAMES for stat in ("shape", "mean", "lvar", "rvar")),
    )
)
N_FEATURES = len(FEATURE_NAMES)  # 36

# Raw sums per scale, additive over strips: [n, sum s^2, sum |s|, n_active] then per shift
# the dot products T of _MAPS: [sum p^2, sum sign(p) p^2, sum |p|, sum sign(p), n_{p!=0}].
_N_BASE = 4
_N_PAIR = 5
_N_SUMS = _N_BASE + 4 * _N_PAIR


# ---------------------------------------------------------------------------------------------
# the LIVE model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SvrModel:
    """An epsilon-SVR with an RBF kernel plus the feature scaling it was trained with.

    sv : (n_sv, 36) float64, support vectors in scaled feature space.
    coef : (n_sv,) float64, dual coefficients.
    rho : float, ``score = coef @ K - rho``.
    gamma : float, RBF ``exp(-gamma * ||x - sv||^2)``.
    feature_min, feature_max : (36,) float64, the svm-scale range mapped onto [-1, 1].
    """

    sv: np.ndarray
    coef: np.ndarray
    rho: float
    gamma: float
    feature_min: np.ndarray
    feature_max: np.ndarray

    def predict(self, feats: np.ndarray) -> np.ndarray:
        """SVR output for (N, 36) raw features -> (N,) float64; NaN rows stay NaN."""
        x = -1.0 + 2.0 * (feats - self.feature_min) / (self.feature_max - self.feature_min)
        sq = (
            np.einsum("ij,ij->i", x, x)[:, None]
            + np.einsum("ij,ij->i", self.sv, self.sv)[None, :]
            - 2.0 * (x @ self.sv.T)
        )
        kernel = np.exp(-self.gamma * np.maximum(sq, 0.0))
        return kernel @ self.coef - self.rho


def load_libsvm_model(model_path: str | os.PathLike, range_path: str | os.PathLike) -> SvrModel:
    """Read a libsvm epsilon-SVR RBF model file and its svm-scale range file (LIVE format).

    Raises ValueError when the files are not an RBF epsilon-SVR over 36 features scaled to [-1, 1].
    """
    header: dict[str, str] = {}
    rows: list[tuple[float, dict[int, float]]] = []
    lines = Path(model_path).read_text().splitlines()
    for k, line in enumerate(lines):
        if line.strip() == "SV":
            for sv_line in lines[k + 1 :]:
                if not sv_line.strip():
                    continue
                first, *pairs = sv_line.split()
                rows.append((float(first), {int(i): float(v) for i, v in
                                            (p.split(":") for p in pairs)}))
            break
        key, _, value = line.partition(" ")
        header[key] = value.strip()
    if header.get("svm_type") != "epsilon_svr" or header.get("kernel_type") != "rbf":
        raise ValueError(
            f"{model_path}: svm_type={header.get('svm_type')!r}, kernel_type="
            f"{header.get('kernel_type')!r}; expected an epsilon_svr with an rbf kernel"
        )
    sv = np.zeros((len(rows), N_FEATURES))
    for r, (_, values) in enumerate(rows):
        for i, v in values.items():
            sv[r, i - 1] = v
    coef = np.array([c for c, _ in rows])

    range_lines = Path(range_path).read_text().split("\n")
    lower, upper = (float(v) for v in range_lines[1].split())
    if range_lines[0].strip() != "x" or (lower, upper) != (-1.0, 1.0):
        raise ValueError(f"{range_path}: expected an 'x' range file scaling to '-1 1'")
    table = np.array([[float(v) for v in ln.split()] for ln in range_lines[2:] if ln.strip()])
    if table.shape != (N_FEATURES, 3):
        raise ValueError(f"{range_path}: {table.shape[0]} feature ranges; expected {N_FEATURES}")
    order = np.argsort(table[:, 0])
    return SvrModel(
        sv=sv, coef=coef, rho=float(header["rho"]), gamma=float(header["gamma"]),
        feature_min=table[order, 1], feature_max=table[order, 2],
    )


@cache
def live_model() -> SvrModel:
    """The LIVE BRISQUE model shipped with featnorm (``data/brisque_live.npz``), read once."""
    with resources.files("featnorm").joinpath("data/brisque_live.npz").open("rb") as fh:
        z = np.load(fh)
        return SvrModel(
            sv=z["sv"], coef=z["coef"], rho=float(z["rho"]), gamma=float(z["gamma"]),
            feature_min=z["feature_min"], feature_max=z["feature_max"],
        )


# ---------------------------------------------------------------------------------------------
# per-pixel stages
# ---------------------------------------------------------------------------------------------


@cache
def _window_1d(dtype: type = np.float64) -> np.ndarray:
    """(7,) the 1-D Gaussian whose outer product is fspecial's normalised 7x7 window."""
    x = np.arange(WINDOW_SIZE) - WINDOW_HALF
    g = np.exp(-(x**2) / (2.0 * WINDOW_SIGMA**2))
    return (g / g.sum()).astype(dtype)


@cache
def _squares(dtype: type) -> np.ndarray:
    """(256,) table of v^2 for a uint8 v: x^2 of a grey image in one ``cv2.LUT`` pass (exact)."""
    return (np.arange(256, dtype=np.float64) ** 2).astype(dtype)


class _Workspace:
    """Buffers reused from one batch to the next (same shapes in a data set), and the precision.

    Fresh arrays of this size come from mmap, and touching their pages for the first time cost
    about as much as the arithmetic (measured: 2.3 vs 1.6 ms per 250x250 image). Strided views
    of the buffers (:func:`_blocks`) are cached with them.
    """

    def __init__(self, precision: str = "float64") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
        self.dtype = np.dtype(precision)
        self.depth = cv2.CV_64F if self.dtype == np.float64 else cv2.CV_32F
        self._bufs: dict[tuple[str, type], np.ndarray] = {}
        self._views: dict[tuple, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A C-contiguous array of ``shape``: a view of the largest buffer ``name`` had so far
        (strips of varying height share one buffer)."""
        key = (name, shape, dtype)
        view = self._views.get(key)
        if view is not None:
            return view
        size = math.prod(shape)
        buf = self._bufs.get((name, dtype))
        if buf is None or buf.size < size:
            buf = self._bufs[(name, dtype)] = np.empty(size, dtype)
            self._views = {k: v for k, v in self._views.items() if k[0] != name}
        view = self._views[key] = buf[:size].reshape(shape)
        return view

    def blocks(self, name: str, buf: np.ndarray, layout: _Tall, lag: int) -> np.ndarray:
        """Cached :func:`_blocks` view of the workspace buffer ``name`` (``buf``)."""
        key = (name, buf.shape, layout, lag)
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = _blocks(buf, layout, lag)
        return view


def _mscn(ws: _Workspace, x: np.ndarray, top: int = 0, bottom: int = 0, *,
          out: np.ndarray | None = None) -> np.ndarray:
    """MSCN coefficients of rows ``top .. R-bottom-1`` of an (R, W) grey block -> float32.

    ``x``: uint8 (a grey image) or float32 (a half-scale image). Rows outside the block count as
    zeros (MATLAB ``filter2(..., 'same')``), so ``top`` and ``bottom`` are halo rows (real
    neighbours, or zeros past the image border) of a strip, and zero rows between stacked
    images are exactly the zero padding of each. The local mean mu and E[I^2] use ``ws.dtype``:
    float64 by default, as MATLAB (the variance E[I^2] - mu^2 cancels digits: in float32 it is
    off by ~0.01 grey level^2, which is what moves pyiqa's float32 scores). I - mu is formed in
    that precision too (in flat windows it is float residue whose sign the pair fits see), and
    only sqrt(|variance|) + 1 and the quotient are float32 (relative error 6e-8). Result:
    ``out`` (float32, R - top - bottom rows) or a workspace buffer, valid until the next call.
    Ten OpenCV passes, no temporaries.
    """
    shape = x.shape
    inner = (shape[0] - top - bottom, shape[1])
    dt, depth = ws.dtype, ws.depth
    g = _window_1d(dt)
    mu = ws.get("mu", shape, dt)
    ex2 = ws.get("ex2", shape, dt)
    cv2.sepFilter2D(x, depth, g, g, dst=mu, borderType=cv2.BORDER_CONSTANT)
    if x.dtype == np.uint8:
        cv2.LUT(x, _squares(dt), dst=ex2)
    else:
        cv2.multiply(x, x, dst=ex2, dtype=depth)
    cv2.sepFilter2D(ex2, depth, g, g, dst=ex2, borderType=cv2.BORDER_CONSTANT)  # in place
    if top or bottom:
        rows = slice(top, shape[0] - bottom)
        x, mu, ex2 = x[rows], mu[rows], ex2[rows]
    var = ws.get("var", inner, dt)
    cv2.multiply(mu, mu, dst=var)
    cv2.absdiff(ex2, var, dst=var)  # |E[I^2] - mu^2| (MATLAB: sqrt(abs(...)))
    sigma = var if dt == np.float32 else ws.get("sigma", inner, np.float32)
    if sigma is not var:
        np.copyto(sigma, var, casting="same_kind")
    cv2.sqrt(sigma, dst=sigma)
    np.add(sigma, np.float32(MSCN_C), out=sigma)
    num = ws.get("num", inner, np.float32) if out is None else out
    cv2.subtract(x, mu, dst=num, dtype=cv2.CV_32F)  # computed in ws.dtype, then rounded
    cv2.divide(num, sigma, dst=num)
    return num


# --- stacked layout -----------------------------------------------------------------------------
# Same-size images (or one strip) are stacked in one "tall" (rows, W) array: GAP zero rows, then
# each image followed by GAP zero rows. The zero rows are the window's zero padding of each image
# (exactly: filter2 pads with zeros), so one filter call serves the whole stack, and they let a
# flat dot product at a lag of up to W + 1 elements start at each image without reaching the
# previous one.
_GAP = WINDOW_HALF  # >= 2 rows, as the diagonal lag W + 1 needs


@dataclass(frozen=True)
class _Tall:
    """Layout of ``count`` (h, w) images stacked with :data:`_GAP` zero rows around each."""

    count: int
    h: int
    w: int

    @property
    def step(self) -> int:
        return self.h + _GAP

    @property
    def rows(self) -> int:
        return _GAP + self.count * self.step

    def image(self, k: int) -> slice:
        """Rows of image k."""
        return slice(_GAP + k * self.step, _GAP + k * self.step + self.h)

    def zero_gaps(self, a: np.ndarray) -> None:
        """Set the gap rows of a (rows, w) array to 0."""
        a[:_GAP] = 0.0
        a[_GAP:].reshape(self.count, self.step, self.w)[:, self.h :] = 0.0


def _blocks(a: np.ndarray, layout: _Tall, lag: int = 0) -> np.ndarray:
    """(count, h*w) view of the images of a tall (rows, w) array, each read from ``lag``
    elements before its first pixel (the rows above are zero gap rows)."""
    flat = a.reshape(-1)
    start = _GAP * layout.w - lag
    return np.lib.stride_tricks.as_strided(
        flat[start:], shape=(layout.count, layout.h * layout.w),
        strides=(layout.step * layout.w * flat.strides[0], flat.strides[0]), writeable=False,
    )


# The sums over neighbour products p = s * s' are dot products of maps of s with their shifted
# selves, T(X) = sum_x X(x) X(partner(x)):
#   sum p^2 = T(s^2),  sum sign(p) p^2 = T(s |s|),  sum |p| = T(|s|),
#   n_{p>0} - n_{p<0} = T(sign s),  n_{p != 0} = T([s != 0]),
# and the one-sided sums are half sums and differences (sum_{p>0} p^2 = (T(s^2) + T(s|s|)) / 2,
# ...). T is one BLAS dot per image over its flattened map at the shift's flat offset (one
# batched matmul for all images of a stack), corrected on the first row (partner: the last row,
# cyclically) and on the first and last columns (wrap-around instead of the neighbouring row).
_MAPS = ("sq", "sabs", "abs", "sign", "nz")
_LAGS = ("1", "w", "w+1", "w-1")  # partners (i, j-1), (i-1, j), (i-1, j-1), (i-1, j+1)
_SIGN_BIT = np.uint32(0x80000000)
_ONE_BITS = np.uint32(0x3F800000)  # float32 1.0


def _lag(name: str, w: int) -> int:
    return {"1": 1, "w": w, "w+1": w + 1, "w-1": w - 1}[name]


@cache
def _edge_pairs(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index pairs into the edge vector [first column, last column, first row, row above] and
    their signed contributions (P, 4) to the 4 shift sums of :func:`_tall_sums`.

    The flat dot at lag 1 pairs (i, 0) with (i-1, W-1) instead of (i, W-1); at lag W+1, (i, 0)
    with (i-2, W-1) instead of (i-1, W-1); at lag W-1, (i, W-1) with (i, 0) instead of
    (i-1, 0); and none of them reaches the row above. Each correction is a sum of products of
    edge values, listed here once per shape.
    """
    first, last, top, above = 0, h, 2 * h, 2 * h + w
    rows, cols = np.arange(h), np.arange(w)
    terms = [  # (index i, index j, shift, sign)
        (first + rows, last + rows, 0, +1.0),  # (i, 0) with (i, W-1): wrap-around
        (first + rows[1:], last + rows[:-1], 0, -1.0),  # row-boundary pair counted by the lag
        (top + cols, above + cols, 1, +1.0),  # first row with the row above
        (first + rows[1:], last + rows[:-1], 2, +1.0),  # (i, 0) with (i-1, W-1): wrap-around
        (first + rows[2:], last + rows[:-2], 2, -1.0),
        (top + cols, above + (cols - 1) % w, 2, +1.0),
        (last + rows[1:], first + rows[:-1], 3, +1.0),  # (i, W-1) with (i-1, 0): wrap-around
        (first + rows, last + rows, 3, -1.0),
        (top + cols, above + (cols + 1) % w, 3, +1.0),
    ]
    i = np.concatenate([t[0] for t in terms])
    j = np.concatenate([t[1] for t in terms])
    coef = np.zeros((i.size, 4))
    start = 0
    for ti, _, shift, sign in terms:
        coef[start : start + ti.size, shift] = sign
        start += ti.size
    return i, j, coef


def _edge_maps(edge: np.ndarray) -> np.ndarray:
    """The :data:`_MAPS` of float64 edge values (B, E) -> (5, B, E)."""
    absolute = np.abs(edge)
    return np.stack([edge * edge, edge * absolute, absolute, np.sign(edge),
                     (edge != 0.0).astype(np.float64)])


def _tall_sums(ws: _Workspace, name: str, s: np.ndarray, layout: _Tall,
               above: np.ndarray | None, interior: tuple[slice, slice] | None) -> np.ndarray:
    """Additive statistics (count, _N_SUMS) of a tall float32 MSCN stack with zero gap rows.

    ``name``: the workspace buffer ``s`` lives in (its strided views are cached under it).
    ``above`` (count, w): the MSCN row before each image's first row, cyclically (None: the
    image's own last row; a strip passes the previous strip's last row). ``interior``: rows,
    columns of an image farther than the window's reach from the image border, for the
    near-flat count (None: not counted).
    """
    b, h, w = layout.count, layout.h, layout.w
    n = h * w
    out = np.empty((b, _N_SUMS))
    absolute = ws.get("abs", s.shape, np.float32)
    np.abs(s, out=absolute)
    s0, a0 = ws.blocks(name, s, layout, 0), ws.blocks("abs", absolute, layout, 0)
    out[:, 0] = n
    out[:, 1] = np.matmul(s0[:, None, :], s0[:, :, None])[:, 0, 0]
    if interior:  # counted on every ACTIVE_STEP-th row and column, scaled to all of them
        cube = np.lib.stride_tricks.as_strided(
            a0, shape=(b, h, w), strides=(a0.strides[0], w * a0.strides[1], a0.strides[1]))
        rows, cols = (slice(sl.start, sl.stop, ACTIVE_STEP) for sl in interior)
        sample = cube[:, rows, cols]
        share = _interior_size(interior) / max(sample[0].size, 1)
        out[:, 3] = np.count_nonzero(sample > FLAT_MSCN, axis=(1, 2)) * share
    else:
        out[:, 3] = np.nan

    # edge values: first column, last column, first row, row above (float64 corrections)
    cube = np.lib.stride_tricks.as_strided(
        s0, shape=(b, h, w), strides=(s0.strides[0], w * s0.strides[1], s0.strides[1]))
    above = cube[:, -1] if above is None else above
    edge = np.concatenate([cube[:, :, 0], cube[:, :, -1], cube[:, 0], above], axis=1)
    edge_maps = _edge_maps(edge.astype(np.float64))
    i, j, coef = _edge_pairs(h, w)
    dots = ((edge_maps[:, :, i] * edge_maps[:, :, j]) @ coef).transpose(1, 2, 0)  # (b, 4, 5)

    # flat dots, one map at a time through one buffer (zero gaps give zero products)
    nonzero = cv2.countNonZero(s) == b * n  # no exact zero in any image (gaps are zero)
    buf = ws.get("map", s.shape, np.float32)
    for k, name in enumerate(_MAPS):
        if name == "abs":
            f = absolute
        elif name == "sq":
            f = cv2.multiply(s, s, dst=buf)
        elif name == "sabs":
            f = cv2.multiply(absolute, s, dst=buf)
        elif name == "sign" and nonzero:  # 1.0 with the sign bit of s; gaps set back to 0
            bits = buf.view(np.uint32)
            np.bitwise_and(s.view(np.uint32), _SIGN_BIT, out=bits)
            np.bitwise_or(bits, _ONE_BITS, out=bits)
            layout.zero_gaps(buf)
            f = buf
        elif name == "sign":
            f = np.sign(s, out=buf)
        elif nonzero:  # "nz": every pair counts
            dots[:, :, k] = n  # (replaces the edge corrections)
            continue
        else:
            f = np.not_equal(s, 0.0, out=buf)
        key = "abs" if f is absolute else "map"
        f0 = ws.blocks(key, f, layout, 0)[:, None, :]
        if name == "sign":  # sum |s| = sum s sign(s) (an exact zero adds 0 either way)
            out[:, 2] = np.matmul(f0, s0[:, :, None])[:, 0, 0]
        for li, lag in enumerate(_LAGS):
            dots[:, li, k] += np.matmul(f0, ws.blocks(key, f, layout, _lag(lag, w))[:, :, None])[
                :, 0, 0]
    out[:, _N_BASE:] = dots.reshape(b, -1)
    return out


def _interior_size(interior: tuple[slice, slice]) -> int:
    return max(interior[0].stop - interior[0].start, 0) * max(interior[1].stop - interior[1].start, 0)


def _half_scale(ws: _Workspace, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """MATLAB ``imresize(x, 0.5)`` (antialiased bicubic) of an (H, W) uint8 image -> float32.

    The 8-tap filter runs at full resolution with a mirror border (OpenCV's BORDER_REFLECT is
    MATLAB's 'symmetric'), then every second row and column is kept: ceil(H/2) x ceil(W/2),
    written into ``out`` if given (else a strided workspace view is returned).
    float32 output (MATLAB: double): 1e-5 grey levels of rounding, far below a grey level.
    """
    k = _half_taps()
    anchor = -HALF_SCALE_OFFSET
    full = ws.get("half", x.shape, np.float32)
    cv2.sepFilter2D(x, cv2.CV_32F, k, k, dst=full, anchor=(anchor, anchor),
                    borderType=cv2.BORDER_REFLECT)
    if out is None:
        return full[::2, ::2]
    np.copyto(out, full[::2, ::2])
    return out


@cache
def _half_taps() -> np.ndarray:
    return HALF_SCALE_TAPS.astype(np.float32)


def _chunk_sums(ws: _Workspace, greys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scale-1 and scale-2 sums (two (B, _N_SUMS) arrays) of same-size (H, W) uint8 images.

    Scale 1: each image's MSCN is computed on its own (its float64 arrays then stay in the CPU
    cache) straight into a tall stack; scale 2: the half-scale images are stacked with zero gap
    rows (the window's zero padding) and their MSCN is one call. The sums of each stack are
    batched across its images (:func:`_tall_sums`).
    """
    b = len(greys)
    h, w = greys[0].shape
    one, two = _Tall(b, h, w), _Tall(b, (h + 1) // 2, (w + 1) // 2)
    s1 = ws.get("s1", (one.rows, w), np.float32)
    halves = ws.get("halves", (two.rows, two.w), np.float32)
    one.zero_gaps(s1)
    two.zero_gaps(halves)
    for k, grey in enumerate(greys):
        _mscn(ws, grey, out=s1[one.image(k)])
        _half_scale(ws, grey, out=halves[two.image(k)])
    r = WINDOW_HALF
    sums1 = _tall_sums(ws, "s1", s1, one, None, (slice(r, h - r), slice(r, w - r)))
    s2 = _mscn(ws, halves)  # the "num" buffer
    two.zero_gaps(s2)
    return sums1, _tall_sums(ws, "num", s2, two, None, None)


def _strip_sums(ws: _Workspace, image: np.ndarray, strip_rows: int, *,
                count_active: bool) -> np.ndarray:
    """Sums of one large (H, W) image, computed in row strips -> (_N_SUMS,)."""
    h, w = image.shape
    r = WINDOW_HALF

    def rows(a: int, b: int, out: np.ndarray | None = None) -> np.ndarray:
        """MSCN rows a..b-1, with the window's zero padding outside the image."""
        lo, hi = max(a - r, 0), min(b + r, h)
        return _mscn(ws, image[lo:hi], a - lo, hi - b, out=out)

    total = np.zeros(_N_SUMS)
    above = rows(h - 1, h)[0].copy()  # circshift partner of row 0
    for a in range(0, h, strip_rows):
        b = min(a + strip_rows, h)
        layout = _Tall(1, b - a, w)
        tall = ws.get("strip", (layout.rows, w), np.float32)
        layout.zero_gaps(tall)
        s = rows(a, b, out=tall[layout.image(0)])
        interior = (slice(max(r - a, 0), max(min(h - r, b) - a, 0)), slice(r, w - r))
        total += _tall_sums(ws, "strip", tall, layout, above[None],
                            interior if count_active else None)[0]
        above = s[-1].copy()
    return total


def _half_scale_strips(image: np.ndarray, strip_rows: int) -> np.ndarray:
    """imresize(image, 0.5) of a large (H, W) image, a bounded number of rows at a time."""
    h = image.shape[0]
    m = (h + 1) // 2
    out = np.empty((m, (image.shape[1] + 1) // 2), np.float32)
    mirror = np.concatenate([np.arange(h), np.arange(h - 1, -1, -1)])  # symmetric extension
    step = max(strip_rows // 2, 1)
    k = HALF_SCALE_TAPS.astype(np.float32)
    for a in range(0, m, step):
        b = min(a + step, m)
        src = np.arange(2 * a + HALF_SCALE_OFFSET, 2 * b + HALF_SCALE_OFFSET + 6)
        block = image[mirror[src % (2 * h)]]
        # rows: the block already holds the mirrored halo; columns: mirror border
        cols = cv2.sepFilter2D(block, cv2.CV_32F, k, np.ones(1, np.float32),
                               anchor=(-HALF_SCALE_OFFSET, 0), borderType=cv2.BORDER_REFLECT)
        acc = np.zeros((b - a, out.shape[1]), np.float32)
        for t, wgt in enumerate(k):
            acc += cols[t : t + 2 * (b - a) - 1 : 2, ::2] * wgt
        out[a:b] = acc
    return out


# ---------------------------------------------------------------------------------------------
# from sums to features
# ---------------------------------------------------------------------------------------------


@cache
def _shape_tables() -> tuple[np.ndarray, np.ndarray]:
    """GGD ratio table (decreasing in shape) and AGGD ratio table (increasing), on SHAPE_GRID."""
    g = SHAPE_GRID
    lg1, lg2, lg3 = gammaln(1.0 / g), gammaln(2.0 / g), gammaln(3.0 / g)
    ggd = np.exp(lg1 + lg3 - 2.0 * lg2)  # Gamma(1/a) Gamma(3/a) / Gamma(2/a)^2
    return ggd, 1.0 / ggd  # AGGD: Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))


def _nearest_shape(target: np.ndarray, table: np.ndarray) -> np.ndarray:
    """SHAPE_GRID value whose table entry is nearest to each target (first one on ties).

    ``table`` is monotonic; this is MATLAB's ``min(abs(target - table))`` without the scan.
    Non-finite targets give NaN.
    """
    increasing = table[-1] > table[0]
    tab = table if increasing else table[::-1]
    safe = np.where(np.isfinite(target), target, tab[0])
    hi = np.clip(np.searchsorted(tab, safe), 1, len(tab) - 1)
    lo = hi - 1
    d_lo, d_hi = np.abs(safe - tab[lo]), np.abs(safe - tab[hi])
    if increasing:
        idx = np.where(d_lo <= d_hi, lo, hi)
    else:  # reversed order: the original (first) index of the pair is the larger one here
        idx = len(tab) - 1 - np.where(d_hi <= d_lo, hi, lo)
    return np.where(np.isfinite(target), SHAPE_GRID[idx], np.nan)


def _features_from_sums(sums: np.ndarray) -> np.ndarray:
    """(B, _N_SUMS) sums of one scale -> (B, 18) features."""
    ggd_table, aggd_table = _shape_tables()
    with np.errstate(divide="ignore", invalid="ignore"):
        n = sums[:, 0]
        mean_sq = sums[:, 1] / n
        rho = mean_sq / (sums[:, 2] / n) ** 2
        out = [_nearest_shape(rho, ggd_table), mean_sq]
        for k in range(4):
            t = dict(zip(_MAPS, sums[:, _N_BASE + k * _N_PAIR :][:, :_N_PAIR].T, strict=True))
            lvar = (t["sq"] - t["sabs"]) / (t["nz"] - t["sign"])  # halves cancel
            rvar = (t["sq"] + t["sabs"]) / (t["nz"] + t["sign"])
            lstd, rstd = np.sqrt(lvar), np.sqrt(rvar)
            rhat = (t["abs"] / n) ** 2 / (t["sq"] / n)
            gh = lstd / rstd
            rnorm = rhat * (gh**3 + 1.0) * (gh + 1.0) / (gh**2 + 1.0) ** 2
            alpha = _nearest_shape(rnorm, aggd_table)
            lg1, lg2, lg3 = gammaln(1.0 / alpha), gammaln(2.0 / alpha), gammaln(3.0 / alpha)
            mean = (rstd - lstd) * np.exp(lg2 - lg1) * np.exp(0.5 * (lg1 - lg3))
            out += [alpha, mean, lvar, rvar]
    return np.stack(out, axis=1)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def _grey(image: object) -> tuple[np.ndarray | None, str]:
    """Input policy of the module docstring: any accepted array -> (H, W) uint8 grey, status."""
    if not isinstance(image, np.ndarray):
        return None, "unsupported_input"
    if image.dtype.kind == "f" and image.size and not (
        np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
    ):
        return None, "float_out_of_range"  # ambiguous scale ([0, 255]?): never guess
    try:
        img = image if image.dtype == np.uint8 and image.ndim in (2, 3) else to_uint8(image)
        if img.ndim == 3 and img.shape[2] != 3:
            img = to_uint8(img)
    except ValueError:
        return None, "unsupported_input"
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    img = np.ascontiguousarray(img)  # views (crops, flips) become plain arrays for OpenCV
    if min(img.shape) < MIN_SIDE:
        return None, "too_small"
    lo, hi = cv2.minMaxLoc(img)[:2]
    if lo == hi:
        return None, "flat_image"
    return img, STATUS_OK


def _interior_pixels(h: int, w: int) -> int:
    return max(h - 2 * WINDOW_HALF, 0) * max(w - 2 * WINDOW_HALF, 0)


def features_and_status(
    images: Sequence[np.ndarray], *, precision: str = "float64"
) -> tuple[np.ndarray, list[str]]:
    """The 36 BRISQUE features of each image, and why a row is NaN.

    Parameters
    ----------
    images : sequence of ndarray
        Decoded images, (H, W) grey or (H, W, 3) BGR uint8 as ``cv2.imread`` gives them (other
        dtypes and channel counts: see the module's input policy).
    precision : {"float64", "float32"}
        Arithmetic of the local mean and variance (:data:`PRECISIONS`); float64 is the MATLAB
        release's, float32 trades ~0.05 points (max ~1) for ~1.3x speed.

    Returns
    -------
    feats : ndarray, shape (N, 36), float64
        Columns in :data:`FEATURE_NAMES` order (scale 1 then 2; MSCN shape and variance, then for
        h, v, d1, d2: shape, mean, left variance, right variance). A row is all NaN when its
        status is not ``ok``.
    status : list of str
        ``ok``, ``too_small``, ``flat_image``, ``near_flat_image``, ``degenerate_features``,
        ``float_out_of_range`` or ``unsupported_input`` (module docstring).

    Raises
    ------
    ValueError
        For a ``precision`` other than float64 / float32.
    """
    n = len(images)
    feats = np.full((n, N_FEATURES), np.nan)
    status: list[str] = []
    groups: dict[tuple[int, int], list[int]] = {}
    greys: list[np.ndarray | None] = []
    for k, image in enumerate(images):
        grey, st = _grey(image)
        greys.append(grey)
        status.append(st)
        if grey is not None:
            groups.setdefault(grey.shape, []).append(k)

    sums1 = np.full((n, _N_SUMS), np.nan)
    sums2 = np.full((n, _N_SUMS), np.nan)
    ws = _Workspace(precision)
    for (h, w), members in groups.items():
        whole: list[int] = []
        for k in members:
            if h * w > STRIP_PIXELS:
                strip_rows = max(STRIP_PIXELS // w, 2 * len(HALF_SCALE_TAPS))
                sums1[k] = _strip_sums(ws, greys[k], strip_rows, count_active=True)
                half = _half_scale_strips(greys[k], strip_rows)
                sums2[k] = _strip_sums(ws, half, strip_rows, count_active=False)
                ws = _Workspace(precision)  # strip buffers are large; do not keep them for the next image
            else:
                whole.append(k)
        per_chunk = max(CHUNK_PIXELS // (h * w), 1)
        for a in range(0, len(whole), per_chunk):
            idx = whole[a : a + per_chunk]
            sums1[idx], sums2[idx] = _chunk_sums(ws, [greys[k] for k in idx])

    ok = np.array([s == STATUS_OK for s in status], dtype=bool)
    if ok.any():
        f = np.concatenate([_features_from_sums(sums1[ok]), _features_from_sums(sums2[ok])], axis=1)
        feats[ok] = f
        for k, row, active in zip(np.flatnonzero(ok), f, sums1[ok, 3], strict=True):
            h, w = greys[k].shape
            if active < MIN_ACTIVE_FRACTION * _interior_pixels(h, w):
                status[k] = "near_flat_image"
            elif not np.isfinite(row).all():
                status[k] = "degenerate_features"
            if status[k] != STATUS_OK:
                feats[k] = np.nan
    return feats, status


def features(images: Sequence[np.ndarray], *, precision: str = "float64") -> np.ndarray:
    """The (N, 36) float64 BRISQUE features (see :func:`features_and_status`); NaN rows: no score."""
    return features_and_status(images, precision=precision)[0]


def score(
    images: Sequence[np.ndarray], *, model: SvrModel | None = None, precision: str = "float64"
) -> np.ndarray:
    """BRISQUE score of each image with the LIVE model (flavour :data:`FLAVOUR`).

    Parameters
    ----------
    images : sequence of ndarray
        (H, W) grey or (H, W, 3) BGR uint8 arrays as ``cv2.imread`` gives them.
    model : SvrModel, optional
        Another SVR and range (:func:`load_libsvm_model`); default: the shipped LIVE model.
    precision : {"float64", "float32"}
        See :func:`features_and_status`.

    Returns
    -------
    ndarray, shape (N,), float64
        Raw SVR output, lower is better (not clamped; clean images can go below 0). NaN where
        the score is not computable; :func:`features_and_status` says why.
    """
    return (model or live_model()).predict(features(images, precision=precision))


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
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            if hasattr(handle, name):
                setters.append(getattr(handle, name))
                break
    return setters


def set_threads(threads: int) -> None:
    """Limit the threads of the libraries this stage calls: OpenCV and NumPy's OpenBLAS.

    The BLAS dot products here are small (one image); OpenBLAS threads them otherwise, and its
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


def output_params(*, save_features: bool, precision: str = "float64") -> dict:
    """Metadata of a BRISQUE table: flavour, model, policy constants (``featnorm.io`` params)."""
    return {
        "brisque_flavour": FLAVOUR,
        "brisque_model": "LIVE allmodel + allrange (BRISQUE release, UT Austin 2011)",
        "brisque_precision": precision,
        "brisque_min_side": MIN_SIDE,
        "brisque_min_active_fraction": MIN_ACTIVE_FRACTION,
        "brisque_save_features": save_features,
        "brisque_direction": "lower is better",
    }


def score_table(
    shard: pd.DataFrame, *, threads: int, save_features: bool, batch_size: int = 256,
    precision: str = "float64",
) -> pd.DataFrame:
    """Score every image of a shard table (one row per manifest row, in the same order).

    Parameters
    ----------
    shard : DataFrame
        Manifest rows with at least ``sample_id`` (int64) and ``path`` (str, opened with
        :func:`featnorm.images.read_image`).
    threads : int
        Threads for OpenCV and OpenBLAS (:func:`set_threads`); per-image work is sequential, so
        use 1 and run one process per core (the workflow runs one job per shard).
    save_features : bool
        Also return the 36 features as float64 columns named ``brisque_<feature>``.
    batch_size : int
        Images decoded and scored per call (bounds memory: a batch holds its decoded images).
    precision : {"float64", "float32"}
        See :func:`features_and_status`.

    Returns
    -------
    DataFrame
        ``sample_id`` int64, ``brisque`` float64 (NaN when not computable), ``status`` str
        (``ok``, a decode status of :func:`featnorm.images.read_image`, or a reason of this
        module), optionally the feature columns. Rows in = rows out.
    """
    missing = {"sample_id", "path"} - set(shard.columns)
    if missing:
        raise ValueError(f"shard table lacks columns {sorted(missing)}; it has {list(shard.columns)}")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive integer")
    set_threads(threads)
    model = live_model()
    n = len(shard)
    scores = np.full(n, np.nan)
    feats = np.full((n, N_FEATURES), np.nan)
    status = np.empty(n, dtype=object)
    paths = shard["path"].astype(str).tolist()
    for a in range(0, n, batch_size):
        decoded = [read_image(p) for p in paths[a : a + batch_size]]
        good = [k for k, d in enumerate(decoded) if d.ok]
        for k, d in enumerate(decoded):
            status[a + k] = d.status
        if good:
            f, st = features_and_status([decoded[k].image for k in good], precision=precision)
            rows = a + np.asarray(good)
            feats[rows] = f
            scores[rows] = model.predict(f)
            status[rows] = st
        logger.info("brisque: %d / %d images", min(a + batch_size, n), n)
    out = pd.DataFrame({
        "sample_id": shard["sample_id"].to_numpy(dtype=np.int64),
        "brisque": scores,
        "status": status.astype(str),
    })
    if save_features:
        for j, name in enumerate(FEATURE_NAMES):
            out[f"brisque_{name}"] = feats[:, j]
    counts = out["status"].value_counts().to_dict()
    logger.info("brisque: statuses %s", counts)
    return out
