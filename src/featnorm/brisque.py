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
* values on the 0..255 scale; local mean and variance in float32 by default, float64 on request
  (see the end);
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

Speed and memory (measured with ``benchmarks/brisque.py``: about 3.3x the images per CPU-second of
OpenCV-contrib's ``QualityBRISQUE`` on 250x250 JPEGs with the float32 default, about 2.8x with
float64; single thread): the work is memory traffic over a few 250x250 arrays, so each stage is
one OpenCV or BLAS pass over reused buffers, and scale 1 is processed one image at a time
(its MSCN, then its sums right away, while its arrays are in the CPU cache: measured 2.5x faster
for the sums than stacking several images). The local mean and E[I^2] are two separable filter
calls (with the negated kernel, so that ``cv2.accumulateSquare`` and ``cv2.accumulate`` form
mu^2 - E[I^2] and I - mu in place); the neighbour-product sums are BLAS dot products of four
maps of the MSCN image with its shifted selves, corrected along the edges (see ``_MAPS`` and
:func:`_edge_corrections`), not masked reductions. The half-scale images of :data:`CHUNK_PIXELS`
worth of same-size images are stacked with zero rows between them (exactly each one's zero
padding) and their MSCN is one call; the edge corrections, the shape fits (one binary search on
the grid for all images) and the SVR (one (N, 36) x (36, 774) kernel evaluation) are vectorised
across the batch. An image larger than :data:`STRIP_PIXELS` (1 MP) is processed in row strips (a
3-row halo for the window, the wrap-around partner row carried from strip to strip, the
half-scale image built from strips with a 4-row mirrored halo), so the working buffers stay
around 50 MB whatever the image size; besides the caller's uint8 image only the half-scale image
(a quarter of the pixels, float32) is held whole. Strips give the same features as the whole
image up to the float32 rounding of the sums (relative 1e-5; tested).

Precision (:data:`DEFAULT_PRECISION`): the variance E[I^2] - mu^2 cancels digits (values up to
65025 for a variance that can be below 1 grey level^2). In float32, as pyiqa computes, it is off
by ~0.01 grey level^2, which moves scores by 0.05 on average and up to ~1 point against float64,
as MATLAB computes; float64 filters cost about twice as much and leave BRISQUE at ~2.8x OpenCV,
short of the 3x target. Both pass the parity bounds against pyiqa (float32 default: median
|difference| 0.015, 95th percentile 0.29, max 0.43, Spearman 0.9993; float64: 0.011, 0.14, 0.78,
0.9993, on the 55 real reference images), so the default is float32 and
``precision="float64"`` is the MATLAB-faithful option (recorded in the output metadata).

Remaining differences to the MATLAB release: grey weights (above); ``imresize`` computes its kernel
weights per output pixel while we use the exact closed-form 8 taps (identical up to rounding); the
half-scale image and the MSCN map are stored as float32 (1e-5 grey levels, 6e-8 relative) and the
neighbour-product sums are float32 BLAS dots (relative error ~1e-6); the local mean and variance
are float32 by default (above). With float64, the features equal a brute-force transcription of
the MATLAB formulas (circshift, masked means, argmin on the grid) to 3e-7 on the 55 reference
images.

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
    "DEFAULT_PRECISION",
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
# Precision of the local mean and variance: float64 as MATLAB; float32 (as pyiqa) is about 1.25x
# faster overall and moves scores by 0.05 on average, up to ~1 point (variance cancellation, grid
# flips). float32 is the default: it reaches the 3x-OpenCV throughput target, float64 does not
# (module docstring).
PRECISIONS = ("float64", "float32")
DEFAULT_PRECISION = "float32"

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
    about as much as the arithmetic (measured: 2.3 vs 1.6 ms per 250x250 image).
    """

    def __init__(self, precision: str = "float64") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r}; expected one of {PRECISIONS}")
        self.dtype = np.dtype(precision)
        self.depth = cv2.CV_64F if self.dtype == np.float64 else cv2.CV_32F
        self._bufs: dict[tuple[str, type], np.ndarray] = {}
        self._views: dict[tuple[str, tuple[int, ...], type], np.ndarray] = {}

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
    Two filters and nine one-pass NumPy/OpenCV steps on reused buffers, no temporaries.
    """
    shape = x.shape
    inner = (shape[0] - top - bottom, shape[1])
    dt, depth = ws.dtype, ws.depth
    g = _window_1d(dt)
    # filtering with -g gives -mu and -E[I^2] exactly (negation is exact), so that OpenCV's
    # in-place accumulate / accumulateSquare form mu^2 - E[I^2] and I - mu in one pass each
    neg_mu = ws.get("mu", shape, dt)
    neg_ex2 = ws.get("ex2", shape, dt)
    cv2.sepFilter2D(x, depth, -g, g, dst=neg_mu, borderType=cv2.BORDER_CONSTANT)
    if x.dtype == np.uint8:
        cv2.LUT(x, _squares(dt), dst=neg_ex2)
    else:
        cv2.multiply(x, x, dst=neg_ex2, dtype=depth)
    cv2.sepFilter2D(neg_ex2, depth, -g, g, dst=neg_ex2, borderType=cv2.BORDER_CONSTANT)
    if top or bottom:
        rows = slice(top, shape[0] - bottom)
        x, neg_mu, neg_ex2 = x[rows], neg_mu[rows], neg_ex2[rows]
    cv2.accumulateSquare(neg_mu, neg_ex2)  # mu^2 - E[I^2]: minus the local variance
    cv2.accumulate(x, neg_mu)  # I - mu, in ws.dtype (flat windows: float residue, sign kept)
    sigma = ws.get("sigma", inner, np.float32)
    np.copyto(sigma, neg_ex2, casting="same_kind")
    np.abs(sigma, out=sigma)  # MATLAB: sqrt(abs(E[I^2] - mu^2))
    cv2.sqrt(sigma, dst=sigma)
    np.add(sigma, np.float32(MSCN_C), out=sigma)
    num = ws.get("num", inner, np.float32) if out is None else out
    np.copyto(num, neg_mu, casting="same_kind")
    cv2.divide(num, sigma, dst=num)
    return num


# --- neighbour-product sums ----------------------------------------------------------------------
# The sums over neighbour products p = s * s' are dot products of maps of s with their shifted
# selves, T(X) = sum_x X(x) X(partner(x)):
#   sum p^2 = T(s^2),  sum sign(p) p^2 = T(s |s|),  sum |p| = T(|s|),
#   n_{p>0} - n_{p<0} = T(sign s),  n_{p != 0} = T([s != 0]),
# and the one-sided sums are half sums and differences (sum_{p>0} p^2 = (T(s^2) + T(s|s|)) / 2,
# ...). T is one BLAS dot over the flattened map at the shift's flat offset ("lag"), corrected
# on the first row (partner: the row above, cyclically the last row) and on the first and last
# columns (wrap-around instead of the neighbouring row); see :func:`_edge_corrections`.
# An image's maps are made and dotted right after its MSCN, while its arrays are in the CPU cache
# (a 250x250 float32 map is 250 kB): measured 2.5x faster than stacking several images' maps.
_MAPS = ("sq", "sabs", "abs", "sign", "nz")
_N_LAGS = 4  # partners (i, j-1), (i-1, j), (i-1, j-1), (i-1, j+1): lags 1, W, W+1, W-1
_SIGN_BIT = np.uint32(0x80000000)
_ONE_BITS = np.uint32(0x3F800000)  # float32 1.0


def _block_sums(ws: _Workspace, s: np.ndarray, above: np.ndarray,
                interior: tuple[slice, slice] | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Flat-dot statistics of one (h, W) float32 MSCN block (an image, or a strip of one).

    ``above``: the MSCN row before the block's first row, cyclically (an image: its last row).
    ``interior``: rows, columns of the block farther than the window's reach from the image
    border, for the near-flat count (None: not counted, NaN).

    Returns ``sums`` (_N_SUMS,) float64 whose pair entries still lack the edge corrections,
    ``edge`` (2h + 2W,) float32 [first column, last column, first row, ``above``] for
    :func:`_edge_corrections`, and ``nonzero`` (no exact 0 in ``s``: T([s != 0]) is then the
    pixel count, not computed).
    """
    h, w = s.shape
    n = h * w
    f = s.reshape(-1)
    absolute = ws.get("abs", (n,), np.float32)
    buf = ws.get("map", (n,), np.float32)
    np.abs(f, out=absolute)
    out = np.empty(_N_SUMS)
    out[0] = n
    out[1] = np.dot(f, f)
    if interior:  # counted on every ACTIVE_STEP-th row and column, scaled to all of them
        rows, cols = (slice(sl.start, sl.stop, ACTIVE_STEP) for sl in interior)
        sample = absolute.reshape(h, w)[rows, cols]
        out[3] = np.count_nonzero(sample > FLAT_MSCN) * _interior_size(interior) / max(sample.size, 1)
    else:
        out[3] = np.nan
    nonzero = cv2.countNonZero(s) == n
    lags = (1, w, w + 1, w - 1)
    pairs = out[_N_BASE:].reshape(_N_LAGS, _N_PAIR)  # a view: filled in place
    for k, name in enumerate(_MAPS):
        if name == "abs":
            m = absolute
        elif name == "sq":
            m = cv2.multiply(f, f, dst=buf)
        elif name == "sabs":
            m = cv2.multiply(f, absolute, dst=buf)
        elif name == "sign" and nonzero:  # 1.0 with the sign bit of s (no zeros to keep)
            bits = buf.view(np.uint32)
            np.bitwise_and(f.view(np.uint32), _SIGN_BIT, out=bits)
            m = np.bitwise_or(bits, _ONE_BITS, out=bits).view(np.float32)
        elif name == "sign":
            m = np.sign(f, out=buf)
        elif nonzero:  # "nz": every pair counts
            pairs[:, k] = n
            continue
        else:
            m = np.not_equal(f, 0.0, out=buf)
        if name == "sign":  # sum |s| = sum s sign(s)
            out[2] = np.dot(m, f)
        pairs[:, k] = [np.dot(m[d:], m[: n - d]) for d in lags]
    edge = np.concatenate([s[:, 0], s[:, -1], s[0], above])
    return out, edge, nonzero


def _edge_corrections(edges: np.ndarray, h: int, w: int) -> np.ndarray:
    """What the flat dots of :func:`_block_sums` miss or add at the block edges -> (B, 4, 5).

    ``edges`` (B, 2h + 2W): first column F, last column L, first row T and the row above A of
    each block. The flat dot at lag 1 pairs (i, 0) with (i-1, W-1) instead of its wrap-around
    partner (i, W-1); at lag W+1, (i, 0) with (i-2, W-1) instead of (i-1, W-1); at lag W-1,
    (i, W-1) with (i, 0) instead of (i-1, 0); and no lag reaches the row above. So, with
    <X, Y>_k = sum_i X[i + k] Y[i]:

    * lag 1:   + <F, L>_0 - <F, L>_1
    * lag W:   + <T, A>_0
    * lag W+1: + <F, L>_1 - <F, L>_2 + sum_j T[j] A[j-1 mod W]
    * lag W-1: + <L, F>_1 - <F, L>_0 + sum_j T[j] A[j+1 mod W]

    for each of the 5 maps, in float64 (the maps of the edge values, as in the flat dots).
    """
    e = edges.astype(np.float64)
    absolute = np.abs(e)
    maps = np.stack([e * e, e * absolute, absolute, np.sign(e), (e != 0.0).astype(np.float64)])
    first, last = maps[..., :h], maps[..., h : 2 * h]  # (5, B, h)
    top, above = maps[..., 2 * h : 2 * h + w], maps[..., 2 * h + w :]  # (5, B, W)

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.einsum("mbi,mbi->bm", x, y)

    fl0, fl1, fl2 = dot(first, last), dot(first[..., 1:], last[..., :-1]), dot(first[..., 2:], last[..., :-2])
    lf1 = dot(last[..., 1:], first[..., :-1])
    ta0 = dot(top, above)
    ta_left = dot(top[..., 1:], above[..., :-1]) + dot(top[..., :1], above[..., -1:])  # A[j-1 mod W]
    ta_right = dot(top[..., :-1], above[..., 1:]) + dot(top[..., -1:], above[..., :1])  # A[j+1 mod W]
    return np.stack([fl0 - fl1, ta0, fl1 - fl2 + ta_left, lf1 - fl0 + ta_right], axis=1)


def _add_edges(sums: np.ndarray, edges: np.ndarray, nonzero: np.ndarray, h: int,
               w: int) -> np.ndarray:
    """Complete (B, _N_SUMS) flat-dot sums of (h, w) blocks with their edge corrections."""
    corr = _edge_corrections(edges, h, w)
    corr[nonzero, :, _MAPS.index("nz")] = 0.0  # counted exactly already (every pair)
    sums[:, _N_BASE:] += corr.reshape(len(sums), -1)
    return sums


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


_GAP = WINDOW_HALF  # zero rows between stacked half-scale images: each one's zero padding


def _chunk_sums(ws: _Workspace, greys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scale-1 and scale-2 sums (two (B, _N_SUMS) arrays) of same-size (H, W) uint8 images.

    Scale 1 goes image by image (MSCN, then its sums while its arrays are in the CPU cache).
    The half-scale images are stacked with :data:`_GAP` zero rows around each (exactly the
    window's zero padding of each) and their MSCN is one call for the stack; their sums are
    then taken image by image on the stack's rows. Edge corrections: one vectorised call per
    scale.
    """
    b = len(greys)
    h, w = greys[0].shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    step = h2 + _GAP
    r = WINDOW_HALF
    interior = (slice(r, h - r), slice(r, w - r))
    sums = [np.empty((b, _N_SUMS)), np.empty((b, _N_SUMS))]
    edges = [np.empty((b, 2 * h + 2 * w), np.float32), np.empty((b, 2 * h2 + 2 * w2), np.float32)]
    nonzero = [np.empty(b, bool), np.empty(b, bool)]
    halves = ws.get("halves", (_GAP + b * step, w2), np.float32)
    halves[:_GAP] = 0.0
    halves[_GAP:].reshape(b, step, w2)[:, h2:] = 0.0
    for k, grey in enumerate(greys):
        s = _mscn(ws, grey)
        sums[0][k], edges[0][k], nonzero[0][k] = _block_sums(ws, s, s[-1], interior)
        _half_scale(ws, grey, out=halves[_GAP + k * step : _GAP + k * step + h2])
    s2 = _mscn(ws, halves)
    for k in range(b):
        s = s2[_GAP + k * step : _GAP + k * step + h2]
        sums[1][k], edges[1][k], nonzero[1][k] = _block_sums(ws, s, s[-1], None)
    return (_add_edges(sums[0], edges[0], nonzero[0], h, w),
            _add_edges(sums[1], edges[1], nonzero[1], h2, w2))


def _strip_sums(ws: _Workspace, image: np.ndarray, strip_rows: int, *,
                count_active: bool) -> np.ndarray:
    """Sums of one large (H, W) image, computed in row strips -> (_N_SUMS,)."""
    h, w = image.shape
    r = WINDOW_HALF

    def rows(a: int, b: int) -> np.ndarray:
        """MSCN rows a..b-1, with the window's zero padding outside the image."""
        lo, hi = max(a - r, 0), min(b + r, h)
        return _mscn(ws, image[lo:hi], a - lo, hi - b)

    total = np.zeros(_N_SUMS)
    above = rows(h - 1, h)[0].copy()  # circshift partner of row 0
    for a in range(0, h, strip_rows):
        b = min(a + strip_rows, h)
        s = rows(a, b)
        interior = (slice(max(r - a, 0), max(min(h - r, b) - a, 0)), slice(r, w - r))
        sums, edge, nonzero = _block_sums(ws, s, above, interior if count_active else None)
        total += _add_edges(sums[None], edge[None], np.array([nonzero]), b - a, w)[0]
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
    images: Sequence[np.ndarray], *, precision: str = DEFAULT_PRECISION
) -> tuple[np.ndarray, list[str]]:
    """The 36 BRISQUE features of each image, and why a row is NaN.

    Parameters
    ----------
    images : sequence of ndarray
        Decoded images, (H, W) grey or (H, W, 3) BGR uint8 as ``cv2.imread`` gives them (other
        dtypes and channel counts: see the module's input policy).
    precision : {"float32", "float64"}
        Arithmetic of the local mean and variance (:data:`PRECISIONS`, default
        :data:`DEFAULT_PRECISION`); float64 is the MATLAB release's, float32 (pyiqa's) differs
        by ~0.05 points (max ~1) and is ~1.25x faster.

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


def features(images: Sequence[np.ndarray], *, precision: str = DEFAULT_PRECISION) -> np.ndarray:
    """The (N, 36) float64 BRISQUE features (see :func:`features_and_status`); NaN rows: no score."""
    return features_and_status(images, precision=precision)[0]


def score(
    images: Sequence[np.ndarray], *, model: SvrModel | None = None,
    precision: str = DEFAULT_PRECISION,
) -> np.ndarray:
    """BRISQUE score of each image with the LIVE model (flavour :data:`FLAVOUR`).

    Parameters
    ----------
    images : sequence of ndarray
        (H, W) grey or (H, W, 3) BGR uint8 arrays as ``cv2.imread`` gives them.
    model : SvrModel, optional
        Another SVR and range (:func:`load_libsvm_model`); default: the shipped LIVE model.
    precision : {"float32", "float64"}
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


def output_params(*, save_features: bool, precision: str = DEFAULT_PRECISION) -> dict:
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
    precision: str = DEFAULT_PRECISION,
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
    precision : {"float32", "float64"}
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
