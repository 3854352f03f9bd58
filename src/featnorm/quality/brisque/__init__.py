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
with :func:`featnorm.data.images.to_uint8` (the same policy as decoding files): (H, W, 4) BGRA drops
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
maps of the MSCN image with its shifted selves, corrected along the edges (see ``SUM_MAPS`` and
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

The LIVE model parameters ship in ``featnorm/quality/brisque/brisque_live.npz`` with the LIVE notice
(``featnorm/quality/brisque/LIVE_NOTICE.txt``). Copyright (c) 2011 The University of Texas at Austin; cite
Mittal, Moorthy & Bovik, "BRISQUE Software Release" (2011) and "No Reference Image Quality
Assessment in the Spatial Domain" (IEEE TIP 21(12), 2012, doi:10.1109/TIP.2012.2214050) when
publishing results.

Modules: ``mscn`` (constants, input policy, per-pixel stages, the 36 features), ``ggd`` (the
GGD and AGGD fits of the per-scale sums), ``svr`` (the libsvm model and the shipped LIVE model), ``driver`` (``score`` and the per-shard table). Thread
control (OpenCV, OpenBLAS) lives with every other step's in ``featnorm.threads``.
"""

from featnorm.quality.brisque.driver import output_params, score, score_table
from featnorm.quality.brisque.mscn import (
    DEFAULT_PRECISION,
    FEATURE_NAMES,
    FLAVOUR,
    MIN_SIDE,
    features,
    features_and_status,
)
from featnorm.quality.brisque.svr import SvrModel, live_model, load_libsvm_model

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
]
