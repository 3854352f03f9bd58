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
* values on the 0..255 scale, float64 throughout the per-pixel stages;
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
uint16 is scaled by 1/257, float32/float64 are taken as [0, 1] and scaled by 255 (clipped), then
rounded. Any other dtype or shape gives NaN with status ``unsupported_input``.

Outcome policy (a NaN score always comes with a status other than ``ok``):

* ``too_small``: either side below :data:`MIN_SIDE` (32 px). At that size the second scale is
  16 px, of which the 3-px zero-padded band of the 7x7 window covers 6 rows and 6 columns; below
  it the scores are dominated by the border (reference README: 16x16 gives 2.9 vs about 150
  depending on the implementation) and mean nothing.
* ``flat_image``: the grey image is constant. MSCN is 0 everywhere but in the zero-padded border
  band, and the fit describes the padding, not the image. (OpenCV returns a "perfect" 0 here.)
* ``near_flat_image``: fewer than :data:`MIN_ACTIVE_FRACTION` of the pixels away from the border
  band lie in a non-flat 7x7 window (a window whose pixels are all equal has MSCN exactly 0), so
  the statistics describe a few edges and the padding (e.g. two flat halves, a flat image with a
  logo).
* ``degenerate_features``: a fit was not defined (e.g. no negative neighbour product), so a
  feature is NaN or infinite.
* Exactly flat windows inside an otherwise textured image (saturated areas, flat JPEG blocks)
  are left as the reference implementations leave them: the filter sum differs from the pixel
  value by float residue (about 1e-12 grey levels here, 1e-5 in pyiqa's float32), so their MSCN
  is a tiny non-zero number and their neighbour products count on one side of the AGGD fit
  (mostly the positive one: neighbours in one flat area share the residue's sign). Setting them to
  exactly 0 instead would be cleaner, but it moves JPEG q10 scores by up to 2 points away from
  pyiqa (MATLAB's double-precision conv2 leaves the same kind of residue).

Memory: images are scored in chunks of the same size holding at most :data:`CHUNK_PIXELS`
pixels; an image larger than :data:`STRIP_PIXELS` is processed in row strips (a 3-row halo for the
window, 4 rows for the half-scale kernel, the wrap-around partner row carried between strips), so
the working memory is bounded by the strip size whatever the image size; only the half-scale grey
image (a quarter of the pixels, float64) is held whole, besides the caller's uint8 image.

Remaining differences to the MATLAB release: grey weights (above); ``imresize`` computes its kernel
weights per output pixel while we use the exact closed-form 8 taps (identical up to rounding).
Against pyiqa (float32) the shape grid occasionally flips to a neighbour, which moves a score by up
to about 3 points (reference README, "float32 vs float64").

The LIVE model parameters ship in ``featnorm/data/brisque_live.npz`` with the LIVE notice
(``featnorm/data/LIVE_NOTICE.txt``). Copyright (c) 2011 The University of Texas at Austin; cite
Mittal, Moorthy & Bovik, "BRISQUE Software Release" (2011) and "No Reference Image Quality
Assessment in the Spatial Domain" when publishing results.
"""

from __future__ import annotations

import logging
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
    "score",
    "score_table",
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

# --- our policy ---------------------------------------------------------------------------------
MIN_SIDE = 32  # px; see the module docstring (second scale 16 px, 3-px padded band on each side)
MIN_ACTIVE_FRACTION = 0.05  # share of interior pixels in non-flat windows below which: near-flat
# |MSCN| at or below this counts as a flat window for the near-flat test only: an exactly flat window
# leaves float residue of the filter sum (|I - mu| ~ 1e-12 grey levels), real structure >= ~1e-6.
FLAT_MSCN = 1e-9
CHUNK_PIXELS = 1 << 19  # pixels per same-size chunk: ~8 images of 250x250, arrays stay in cache
STRIP_PIXELS = 1 << 22  # images above ~4 MP go through row strips of about this many pixels

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
# [sum p^2, sum_{p>0} p^2, sum p, sum_{p>0} p, n_{p>0}, n_{p!=0}].
_N_BASE = 4
_N_PAIR = 6
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
def _window_1d() -> np.ndarray:
    x = np.arange(WINDOW_SIZE) - WINDOW_HALF
    g = np.exp(-(x**2) / (2.0 * WINDOW_SIGMA**2))
    return g / g.sum()  # outer(g, g) is fspecial's normalised 7x7 window


def _mscn(x: np.ndarray, top: int = 0, bottom: int = 0) -> np.ndarray:
    """MSCN coefficients of rows ``top .. R-bottom-1`` of an (R, W) grey block -> float32.

    Rows outside the block count as zeros (MATLAB ``filter2(..., 'same')``), so ``top`` and
    ``bottom`` are halo rows (real neighbours, or zeros past the image border) of a strip.
    The local mean and variance are float64 (the variance E[I^2] - mu^2 cancels digits: in float32
    it is off by ~0.01 grey level^2, which is what moves pyiqa's float32 scores); the quotient is
    stored as float32 (relative error 6e-8).
    """
    x = x.astype(np.float64, copy=False)
    g = _window_1d()
    mu = cv2.sepFilter2D(x, cv2.CV_64F, g, g, borderType=cv2.BORDER_CONSTANT)
    sq = cv2.sepFilter2D(x * x, cv2.CV_64F, g, g, borderType=cv2.BORDER_CONSTANT)
    rows = slice(top, x.shape[0] - bottom)
    x, mu, sq = x[rows], mu[rows], sq[rows]
    num = (x - mu).astype(np.float32)
    np.multiply(mu, mu, out=mu)
    np.subtract(sq, mu, out=sq)
    sigma = np.abs(sq).astype(np.float32)
    np.sqrt(sigma, out=sigma)
    sigma += np.float32(MSCN_C)
    np.divide(num, sigma, out=num)
    return num


# The sums over neighbour products p = s * s' are dot products of six maps of s with their
# shifted selves, T(X) = sum_x X(x) X(partner(x)):
#   sum p = T(s),  sum |p| = T(|s|),  sum p^2 = T(s^2),  sum sign(p) p^2 = T(s |s|),
#   n_{p != 0} = T([s != 0]),  n_{p>0} - n_{p<0} = T(sign s),
# and the one-sided sums follow as halves of sums and differences (sum_{p>0} p = (sum p +
# sum |p|) / 2, ...). T is one BLAS dot over the flattened map at the shift's flat offset,
# corrected on the first row (partner in the row above, cyclically) and on the first and last
# columns (wrap-around instead of the neighbouring row).
_MAPS = ("s", "abs", "sq", "sabs", "nz", "sign")


def _map(name: str, s: np.ndarray, out: np.ndarray) -> np.ndarray:
    """One of :data:`_MAPS` of ``s``, written into ``out`` (same shape and dtype)."""
    if name == "s":
        np.copyto(out, s)
    elif name == "abs":
        np.abs(s, out=out)
    elif name == "sq":
        np.multiply(s, s, out=out)
    elif name == "sabs":
        np.abs(s, out=out)
        np.multiply(out, s, out=out)
    elif name == "sign":
        np.sign(s, out=out)
    else:  # "nz"
        np.not_equal(s, 0.0, out=out)
    return out


def _shift_dots(s: np.ndarray, above: np.ndarray) -> np.ndarray:
    """T(X) for each map X of :data:`_MAPS` and the 4 partners -> (4, 6) float64.

    ``s`` (h, W) MSCN block, ``above`` (W,) the MSCN row before its first row (cyclically).
    Partners of (i, j): (i, j-1), (i-1, j), (i-1, j-1), (i-1, j+1); columns wrap around.
    One map at a time, so the block and one map stay in the CPU cache; the corrections use the
    maps of the first row, first and last columns and the row above, in float64.
    """
    h, w = s.shape
    n = h * w
    buf = np.empty_like(s)
    edge = np.concatenate([s[:, 0], s[:, -1], s[0], above]).astype(np.float64)
    edge_buf = np.empty_like(edge)
    out = np.empty((4, len(_MAPS)))
    for k, name in enumerate(_MAPS):
        f = _map(name, s, buf).reshape(n)
        e = _map(name, edge, edge_buf)
        first, last, top, a = e[:h], e[h : 2 * h], e[2 * h : 2 * h + w], e[2 * h + w :]
        same = first @ last  # (i, 0) with (i, W-1)
        prev = first[1:] @ last[:-1]  # (i, 0) with (i-1, W-1)
        prev2 = first[2:] @ last[:-2]  # (i, 0) with (i-2, W-1)
        prev_r = last[1:] @ first[:-1]  # (i, W-1) with (i-1, 0)
        diag = top[1:] @ a[:-1] + top[0] * a[-1]  # (0, j) with above (j-1), cyclic
        anti = top[:-1] @ a[1:] + top[-1] * a[0]  # (0, j) with above (j+1), cyclic
        out[0, k] = np.dot(f[1:], f[: n - 1]) - prev + same
        out[1, k] = np.dot(f[w:], f[: n - w]) + top @ a
        out[2, k] = np.dot(f[w + 1 :], f[: n - w - 1]) - prev2 + prev + diag
        out[3, k] = np.dot(f[w - 1 :], f[: n - w + 1]) - same + prev_r + anti
    return out


def _scale_sums(s: np.ndarray, above: np.ndarray, interior: tuple[slice, slice] | None) -> np.ndarray:
    """Additive statistics (_N_SUMS,) of an (h, W) MSCN block.

    ``above`` (W,): the MSCN row before the block's first row (cyclically: the image's last row
    for the first block). ``interior``: rows, columns of ``s`` farther than the window's reach
    from the image border, for the near-flat count (None: not counted).
    """
    out = np.empty(_N_SUMS)
    out[0] = s.size
    flat = s.reshape(-1)
    out[1] = np.dot(flat, flat)
    out[2] = np.abs(flat).sum(dtype=np.float64)
    out[3] = np.count_nonzero(np.abs(s[interior]) > FLAT_MSCN) if interior else np.nan
    t = _shift_dots(s, above)
    for k in range(4):
        ts = dict(zip(_MAPS, t[k], strict=True))
        base = _N_BASE + k * _N_PAIR
        out[base : base + _N_PAIR] = (
            ts["sq"], (ts["sq"] + ts["sabs"]) / 2, ts["s"], (ts["s"] + ts["abs"]) / 2,
            (ts["nz"] + ts["sign"]) / 2, ts["nz"],
        )
    return out


def _half_scale(x: np.ndarray) -> np.ndarray:
    """MATLAB ``imresize(x, 0.5)`` (antialiased bicubic) of an (H, W) float64 image.

    The 8-tap filter runs at full resolution with a mirror border (OpenCV's BORDER_REFLECT is
    MATLAB's 'symmetric'), then every second row and column is kept: ceil(H/2) x ceil(W/2).
    """
    k = HALF_SCALE_TAPS
    anchor = -HALF_SCALE_OFFSET
    return cv2.sepFilter2D(x.astype(np.float64, copy=False), cv2.CV_64F, k, k, anchor=(anchor, anchor),
                           borderType=cv2.BORDER_REFLECT)[::2, ::2]


def _image_sums(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale-1 and scale-2 sums of one (H, W) grey image held whole."""
    out = []
    x = grey
    for scale in (1, 2):
        s = _mscn(x)
        h, w = s.shape
        interior = (slice(WINDOW_HALF, h - WINDOW_HALF), slice(WINDOW_HALF, w - WINDOW_HALF))
        out.append(_scale_sums(s, s[-1], interior if scale == 1 else None))
        if scale == 1:
            x = _half_scale(x)
    return out[0], out[1]


def _strip_sums(image: np.ndarray, strip_rows: int, *, count_active: bool) -> np.ndarray:
    """Sums of one large (H, W) image, computed in row strips -> (_N_SUMS,)."""
    h, w = image.shape
    r = WINDOW_HALF

    def rows(a: int, b: int) -> np.ndarray:
        """MSCN rows a..b-1, with the window's zero padding outside the image."""
        lo, hi = max(a - r, 0), min(b + r, h)
        return _mscn(image[lo:hi], a - lo, hi - b)

    total = np.zeros(_N_SUMS)
    above = rows(h - 1, h)[0]  # circshift partner of row 0
    for a in range(0, h, strip_rows):
        b = min(a + strip_rows, h)
        s = rows(a, b)
        interior = (slice(max(r - a, 0), max(min(h - r, b) - a, 0)), slice(r, w - r))
        total += _scale_sums(s, above, interior if count_active else None)
        above = s[-1]
    return total


def _half_scale_strips(image: np.ndarray, strip_rows: int) -> np.ndarray:
    """imresize(image, 0.5) of a large (H, W) image, a bounded number of rows at a time."""
    h = image.shape[0]
    m = (h + 1) // 2
    out = np.empty((m, (image.shape[1] + 1) // 2))
    mirror = np.concatenate([np.arange(h), np.arange(h - 1, -1, -1)])  # symmetric extension
    step = max(strip_rows // 2, 1)
    k = HALF_SCALE_TAPS
    for a in range(0, m, step):
        b = min(a + step, m)
        src = np.arange(2 * a + HALF_SCALE_OFFSET, 2 * b + HALF_SCALE_OFFSET + 6)
        block = image[mirror[src % (2 * h)]].astype(np.float64)
        # rows: valid filtering only (the halo is already in the block); columns: mirror border
        cols = cv2.sepFilter2D(block, cv2.CV_64F, k, np.array([1.0]),
                               anchor=(-HALF_SCALE_OFFSET, 0), borderType=cv2.BORDER_REFLECT)
        acc = np.zeros((b - a, out.shape[1]))
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
            sp2, sp2_pos, sp, sp_pos, n_pos, n_nz = sums[:, _N_BASE + k * _N_PAIR :][:, :_N_PAIR].T
            n_neg = n_nz - n_pos
            lvar = (sp2 - sp2_pos) / n_neg
            rvar = sp2_pos / n_pos
            lstd, rstd = np.sqrt(lvar), np.sqrt(rvar)
            mean_abs = (2.0 * sp_pos - sp) / n
            rhat = mean_abs**2 / (sp2 / n)
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
    try:
        img = image if image.dtype == np.uint8 and image.ndim in (2, 3) else to_uint8(image)
        if img.ndim == 3 and img.shape[2] != 3:
            img = to_uint8(img)
    except ValueError:
        return None, "unsupported_input"
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if min(img.shape) < MIN_SIDE:
        return None, "too_small"
    lo, hi = cv2.minMaxLoc(img)[:2]
    if lo == hi:
        return None, "flat_image"
    return img, STATUS_OK


def _interior_pixels(h: int, w: int) -> int:
    return max(h - 2 * WINDOW_HALF, 0) * max(w - 2 * WINDOW_HALF, 0)


def features_and_status(images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """The 36 BRISQUE features of each image, and why a row is NaN.

    Parameters
    ----------
    images : sequence of ndarray
        Decoded images, (H, W) grey or (H, W, 3) BGR uint8 as ``cv2.imread`` gives them (other
        dtypes and channel counts: see the module's input policy).

    Returns
    -------
    feats : ndarray, shape (N, 36), float64
        Columns in :data:`FEATURE_NAMES` order (scale 1 then 2; MSCN shape and variance, then for
        h, v, d1, d2: shape, mean, left variance, right variance). A row is all NaN when its
        status is not ``ok``.
    status : list of str
        ``ok`` or the reason (module docstring).
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
    for (h, w), members in groups.items():
        for k in members:
            if h * w > STRIP_PIXELS:
                strip_rows = max(STRIP_PIXELS // w, 2 * len(HALF_SCALE_TAPS))
                sums1[k] = _strip_sums(greys[k], strip_rows, count_active=True)
                half = _half_scale_strips(greys[k], strip_rows)
                sums2[k] = _strip_sums(half, strip_rows, count_active=False)
            else:
                sums1[k], sums2[k] = _image_sums(greys[k])

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


def features(images: Sequence[np.ndarray]) -> np.ndarray:
    """The (N, 36) float64 BRISQUE features (see :func:`features_and_status`); NaN rows: no score."""
    return features_and_status(images)[0]


def score(images: Sequence[np.ndarray], *, model: SvrModel | None = None) -> np.ndarray:
    """BRISQUE score of each image with the LIVE model (flavour :data:`FLAVOUR`).

    Parameters
    ----------
    images : sequence of ndarray
        (H, W) grey or (H, W, 3) BGR uint8 arrays as ``cv2.imread`` gives them.
    model : SvrModel, optional
        Another SVR and range (:func:`load_libsvm_model`); default: the shipped LIVE model.

    Returns
    -------
    ndarray, shape (N,), float64
        Raw SVR output, lower is better (not clamped; clean images can go below 0). NaN where
        the score is not computable; :func:`features_and_status` says why.
    """
    return (model or live_model()).predict(features(images))


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


def score_table(
    shard: pd.DataFrame, *, threads: int, save_features: bool, batch_size: int = 256
) -> pd.DataFrame:
    """Score every image of a shard table (one row per manifest row, in the same order).

    Parameters
    ----------
    shard : DataFrame
        Manifest rows with at least ``sample_id`` (int64) and ``path`` (str, opened with
        :func:`featnorm.images.read_image`).
    threads : int
        OpenCV threads (``cv2.setNumThreads``); NumPy's per-pixel work here is single-threaded.
    save_features : bool
        Also return the 36 features as float64 columns named ``brisque_<feature>``.
    batch_size : int
        Images decoded and scored per call (bounds memory: a batch holds its decoded images).

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
            f, st = features_and_status([decoded[k].image for k in good])
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
