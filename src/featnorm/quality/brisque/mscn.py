"""BRISQUE's 36 features: the MSCN coefficients at two scales, their sums and the fitted shapes.

Constants, per-pixel stages (MSCN, neighbour products, the half-scale image) and the input policy
of ``featnorm.quality.brisque``'s docstring; ``features_and_status`` is the entry point. The fits that
turn the per-scale sums into features are in :mod:`featnorm.quality.brisque.ggd`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

import cv2
import numpy as np

from featnorm.data.images import to_uint8
from featnorm.options import BRISQUE_PRECISIONS
from featnorm.quality.brisque.ggd import N_BASE, N_PAIR, N_SUMS, SUM_MAPS, features_from_sums
from featnorm.status import (
    DEGENERATE_FEATURES,
    FLAT_IMAGE,
    FLOAT_OUT_OF_RANGE,
    NEAR_FLAT_IMAGE,
    OK,
    TOO_SMALL,
    UNSUPPORTED_INPUT,
)

FLAVOUR = "live-matlab"

# --- the MATLAB release's constants --------------------------------------------------------------
WINDOW_SIZE = 7  # fspecial('gaussian', 7, 7/6)
WINDOW_SIGMA = 7.0 / 6.0
WINDOW_HALF = WINDOW_SIZE // 2  # rows/columns of zero padding the window reaches beyond the image
MSCN_C = 1.0  # stabilising constant on the 0..255 scale: (I - mu) / (sigma + 1)
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
# Precision of the local mean and variance: float64 as MATLAB; float32 (as pyiqa) is about 1.25x
# faster overall and moves scores by 0.05 on average, up to ~1 point (variance cancellation, grid
# flips). float32 is the default: it reaches the 3x-OpenCV throughput target, float64 does not
# (module docstring).
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

# The raw sums per scale, their layout and their fit: featnorm.quality.brisque.ggd.


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
        if precision not in BRISQUE_PRECISIONS:
            raise ValueError(f"precision={precision!r}; expected one of {BRISQUE_PRECISIONS}")
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


def _mscn(
    ws: _Workspace, x: np.ndarray, top: int = 0, bottom: int = 0, *, out: np.ndarray | None = None
) -> np.ndarray:
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
_N_LAGS = 4  # partners (i, j-1), (i-1, j), (i-1, j-1), (i-1, j+1): lags 1, W, W+1, W-1
_SIGN_BIT = np.uint32(0x80000000)
_ONE_BITS = np.uint32(0x3F800000)  # float32 1.0


def _block_sums(
    ws: _Workspace, s: np.ndarray, above: np.ndarray, interior: tuple[slice, slice] | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Flat-dot statistics of one (h, W) float32 MSCN block (an image, or a strip of one).

    ``above``: the MSCN row before the block's first row, cyclically (an image: its last row).
    ``interior``: rows, columns of the block farther than the window's reach from the image
    border, for the near-flat count (None: not counted, NaN).

    Returns ``sums`` (N_SUMS,) float64 whose pair entries still lack the edge corrections,
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
    out = np.empty(N_SUMS)
    out[0] = n
    out[1] = np.dot(f, f)
    if interior:  # counted on every ACTIVE_STEP-th row and column, scaled to all of them
        rows, cols = (slice(sl.start, sl.stop, ACTIVE_STEP) for sl in interior)
        sample = absolute.reshape(h, w)[rows, cols]
        out[3] = (
            np.count_nonzero(sample > FLAT_MSCN) * _interior_size(interior) / max(sample.size, 1)
        )
    else:
        out[3] = np.nan
    nonzero = cv2.countNonZero(s) == n
    lags = (1, w, w + 1, w - 1)
    pairs = out[N_BASE:].reshape(_N_LAGS, N_PAIR)  # a view: filled in place
    for k, name in enumerate(SUM_MAPS):
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

    fl0, fl1, fl2 = (
        dot(first, last),
        dot(first[..., 1:], last[..., :-1]),
        dot(first[..., 2:], last[..., :-2]),
    )
    lf1 = dot(last[..., 1:], first[..., :-1])
    ta0 = dot(top, above)
    ta_left = dot(top[..., 1:], above[..., :-1]) + dot(
        top[..., :1], above[..., -1:]
    )  # A[j-1 mod W]
    ta_right = dot(top[..., :-1], above[..., 1:]) + dot(
        top[..., -1:], above[..., :1]
    )  # A[j+1 mod W]
    return np.stack([fl0 - fl1, ta0, fl1 - fl2 + ta_left, lf1 - fl0 + ta_right], axis=1)


def _add_edges(
    sums: np.ndarray, edges: np.ndarray, nonzero: np.ndarray, h: int, w: int
) -> np.ndarray:
    """Complete (B, N_SUMS) flat-dot sums of (h, w) blocks with their edge corrections."""
    corr = _edge_corrections(edges, h, w)
    corr[nonzero, :, SUM_MAPS.index("nz")] = 0.0  # counted exactly already (every pair)
    sums[:, N_BASE:] += corr.reshape(len(sums), -1)
    return sums


def _interior_size(interior: tuple[slice, slice]) -> int:
    return max(interior[0].stop - interior[0].start, 0) * max(
        interior[1].stop - interior[1].start, 0
    )


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
    cv2.sepFilter2D(
        x, cv2.CV_32F, k, k, dst=full, anchor=(anchor, anchor), borderType=cv2.BORDER_REFLECT
    )
    if out is None:
        return full[::2, ::2]
    np.copyto(out, full[::2, ::2])
    return out


@cache
def _half_taps() -> np.ndarray:
    return HALF_SCALE_TAPS.astype(np.float32)


_GAP = WINDOW_HALF  # zero rows between stacked half-scale images: each one's zero padding


def _chunk_sums(ws: _Workspace, greys: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Scale-1 and scale-2 sums (two (B, N_SUMS) arrays) of same-size (H, W) uint8 images.

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
    sums = [np.empty((b, N_SUMS)), np.empty((b, N_SUMS))]
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
    return (
        _add_edges(sums[0], edges[0], nonzero[0], h, w),
        _add_edges(sums[1], edges[1], nonzero[1], h2, w2),
    )


def _strip_sums(
    ws: _Workspace, image: np.ndarray, strip_rows: int, *, count_active: bool
) -> np.ndarray:
    """Sums of one large (H, W) image, computed in row strips -> (N_SUMS,)."""
    h, w = image.shape
    r = WINDOW_HALF

    def rows(a: int, b: int) -> np.ndarray:
        """MSCN rows a..b-1, with the window's zero padding outside the image."""
        lo, hi = max(a - r, 0), min(b + r, h)
        return _mscn(ws, image[lo:hi], a - lo, hi - b)

    total = np.zeros(N_SUMS)
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
        cols = cv2.sepFilter2D(
            block,
            cv2.CV_32F,
            k,
            np.ones(1, np.float32),
            anchor=(-HALF_SCALE_OFFSET, 0),
            borderType=cv2.BORDER_REFLECT,
        )
        acc = np.zeros((b - a, out.shape[1]), np.float32)
        for t, wgt in enumerate(k):
            acc += cols[t : t + 2 * (b - a) - 1 : 2, ::2] * wgt
        out[a:b] = acc
    return out


def _grey(image: object) -> tuple[np.ndarray | None, str]:
    """Input policy of the module docstring: any accepted array -> (H, W) uint8 grey, status."""
    if not isinstance(image, np.ndarray):
        return None, UNSUPPORTED_INPUT
    if (
        image.dtype.kind == "f"
        and image.size
        and not (np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0)
    ):
        return None, FLOAT_OUT_OF_RANGE  # ambiguous scale ([0, 255]?): never guess
    try:
        img = image if image.dtype == np.uint8 and image.ndim in (2, 3) else to_uint8(image)
        if img.ndim == 3 and img.shape[2] != 3:
            img = to_uint8(img)
    except ValueError:
        return None, UNSUPPORTED_INPUT
    if img.ndim == 3:
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2GRAY)
    img = np.ascontiguousarray(img)  # views (crops, flips) become plain arrays for OpenCV
    if min(img.shape) < MIN_SIDE:
        return None, TOO_SMALL
    lo, hi = cv2.minMaxLoc(img)[:2]
    if lo == hi:
        return None, FLAT_IMAGE
    return img, OK


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
        Arithmetic of the local mean and variance (:data:`featnorm.options.BRISQUE_PRECISIONS`, default
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
    greys: list[np.ndarray | None] = []
    status: list[str] = []
    for image in images:
        grey, st = _grey(image)
        greys.append(grey)
        status.append(st)
    sums1, sums2 = _all_sums(greys, precision)
    ok = np.array([s == OK for s in status], dtype=bool)
    if ok.any():
        f = np.concatenate([features_from_sums(sums1[ok]), features_from_sums(sums2[ok])], axis=1)
        feats[ok] = f
        for k, row, active in zip(np.flatnonzero(ok), f, sums1[ok, 3], strict=True):
            h, w = greys[k].shape
            if active < MIN_ACTIVE_FRACTION * _interior_pixels(h, w):
                status[k] = NEAR_FLAT_IMAGE
            elif not np.isfinite(row).all():
                status[k] = DEGENERATE_FEATURES
            if status[k] != OK:
                feats[k] = np.nan
    return feats, status


def _all_sums(greys: list[np.ndarray | None], precision: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale-1 and scale-2 sums, two (N, N_SUMS) arrays (NaN rows where ``greys[k]`` is None).

    Images of one size are batched (``_chunk_sums``); images above ``STRIP_PIXELS`` go through
    row strips, one at a time.
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for k, grey in enumerate(greys):
        if grey is not None:
            groups.setdefault(grey.shape, []).append(k)
    sums1 = np.full((len(greys), N_SUMS), np.nan)
    sums2 = np.full((len(greys), N_SUMS), np.nan)
    ws = _Workspace(precision)
    for (h, w), members in groups.items():
        whole: list[int] = []
        for k in members:
            if h * w > STRIP_PIXELS:
                strip_rows = max(STRIP_PIXELS // w, 2 * len(HALF_SCALE_TAPS))
                sums1[k] = _strip_sums(ws, greys[k], strip_rows, count_active=True)
                half = _half_scale_strips(greys[k], strip_rows)
                sums2[k] = _strip_sums(ws, half, strip_rows, count_active=False)
                ws = _Workspace(
                    precision
                )  # strip buffers are large; do not keep them for the next image
            else:
                whole.append(k)
        per_chunk = max(CHUNK_PIXELS // (h * w), 1)
        for a in range(0, len(whole), per_chunk):
            idx = whole[a : a + per_chunk]
            sums1[idx], sums2[idx] = _chunk_sums(ws, [greys[k] for k in idx])
    return sums1, sums2


def features(images: Sequence[np.ndarray], *, precision: str = DEFAULT_PRECISION) -> np.ndarray:
    """The (N, 36) float64 BRISQUE features (see :func:`features_and_status`); NaN rows: no score."""
    return features_and_status(images, precision=precision)[0]
