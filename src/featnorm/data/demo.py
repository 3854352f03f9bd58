"""The embedded demo dataset: synthetic identities with a long-tailed class-size law.

Each identity is a parametric face drawn with OpenCV, roughly aligned to the 5-point 112x112
template that AdaFace crops use (eyes near y = 52). As in real faces, identity lives mostly in
shape and fine detail: head and jaw shape, hairstyle, eye size, tilt and spacing, irises, arched
brows, nose and nostrils, mouth and lips, 4 to 9 moles, forehead wrinkles, glasses, beard. Skin
and hair tone differ too, but each image's illumination and colour (gain, a gradient, a
white-balance cast per channel, 15 % grey scale) varies so much that colour alone does not
identify a person. Each image adds pose nuisance (in-plane rotation, yaw-like shift of the inner
features, scale, translation), expression (smile, eye opening) and background, and then a
degradation drawn independently of the identity and of the class size:

* ``blur_sigma``  Gaussian blur sigma in pixels (0 = none; else log-uniform 0.5..5);
* ``downup_factor``  downscale by this factor (area), then upscale back (bilinear); 1 = none,
  else log-uniform 1.5..16, recorded as 112 / the whole-pixel side actually used (at 16 the
  eyes are 2 to 3 pixels apart);
* ``occlusion``  ``none``, ``eyes`` (sunglasses) or ``mouth`` (a mask over nose, mouth and chin);
* ``noise_sigma``  additive Gaussian noise sigma on the 0..255 scale (0 = none);
* ``jpeg_quality``  JPEG quality of the saved file (100 = lossless PNG or no recompression).

Each degradation is absent with probability 0.75 (blur, down-up), 0.85 (occlusion) or 0.5
(noise, JPEG), so about half of the images are sharp and unoccluded.

``true_quality`` combines them into one ground-truth score in (0, 1], higher = better, 1 =
undegraded: the product of four retention factors, each the share of genuine matches that
degradation leaves, fitted to the demo model's dose-response (docs/demo.md):

    sigma   = sqrt(blur_sigma^2 + 1.5 (downup_factor^2 - 1) / 4)   (px; see equivalent_blur)
    q_res   = 1 / (1 + (sigma / 5)^6)                 (1/2 at 5 px: blur 5, or down-up 8.2)
    q_occ   = 1, 0.6, 0.35 for none, eyes, mouth
    q_noise = 1 / (1 + (noise_sigma / 100)^2)        (0.94 at sigma 25: noise costs little)
    q_jpeg  = 1 / (1 + ((100 - jpeg_quality) / 250)^2) (0.89 at quality 10: JPEG costs little)

Down-up sampling by f blurs like a Gaussian of variance (f^2 - 1) / 4 (:func:`equivalent_blur`);
it costs recognition more than that blur alone (aliasing), hence the weight 1.5.

Class sizes follow a truncated power law (Zipf-like), n(rank) = round(max_images * rank^-a),
clipped below at ``min_images``, like the long tail of CASIA-WebFace.
Everything is drawn from ``numpy.random.default_rng`` streams seeded per identity and per image,
so the same seed gives byte-identical files regardless of generation order.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from featnorm.config.demo_params import DemoParams, class_sizes, image_count
from featnorm.tableio import atomic_path

__all__ = [
    "DEGRADATION_COLUMNS",
    "OCCLUSIONS",
    "SPLITS",
    "DemoParams",
    "class_sizes",
    "degrade",
    "equivalent_blur",
    "generate",
    "identity_traits",
    "image_count",
    "image_file",
    "render_identity_image",
    "true_quality",
]

logger = logging.getLogger(__name__)

IMAGE_SIZE_PX = 112
_SUPERSAMPLE = 2  # draw at 2x and area-downsample: anti-aliased edges without blurring the face
_CANVAS_PX = IMAGE_SIZE_PX * _SUPERSAMPLE
_SAVE_JPEG_QUALITY = 95  # quality of undegraded JPEG files (the "no JPEG degradation" level)

SPLITS = ("train", "holdout")  # values of the manifest's `split` column

# the ground-truth degradation columns of the manifest, in order (true_quality's arguments)
DEGRADATION_COLUMNS = ("blur_sigma", "downup_factor", "occlusion", "noise_sigma", "jpeg_quality")
OCCLUSIONS = ("none", "eyes", "mouth")  # values of the manifest's `occlusion` column
# probability that an image escapes each degradation; keeps a healthy share of clean images
_P_CLEAN = {"blur": 0.75, "downup": 0.75, "occlusion": 0.85, "noise": 0.5, "jpeg": 0.5}
_BLUR_RANGE = (0.5, 5.0)  # px, Gaussian sigma of a blurred image (log-uniform)
_DOWNUP_RANGE = (1.5, 16.0)  # down-up factor of a down-sampled image (log-uniform)
_CAST_SIGMA = 0.15  # sd of the log gain of each colour channel (white balance)
_P_GREY = 0.15  # share of grey-scale images

# true_quality's retention factors: half points and steepness, fitted to the default demo model's
# dose-response (docs/demo.md, tests/scripts/demo_dose_response.py)
_RES_HALF_SIGMA, _RES_STEEPNESS = 5.0, 6.0  # px of equivalent blur where half the matches are lost
_DOWNUP_WEIGHT = 1.5  # down-up sampling costs 1.5x the variance of its equivalent blur (aliasing)
_OCCLUSION_RETAINED = {"none": 1.0, "eyes": 0.6, "mouth": 0.35}
_NOISE_HALF_SIGMA = 100.0  # grey levels
_JPEG_HALF_LOSS = 250.0  # 100 - JPEG quality (beyond the scale: JPEG costs little)


def equivalent_blur(blur_sigma, downup_factor) -> np.ndarray:
    """Gaussian sigma (px) equivalent to a blur followed by down-up sampling; 0 = sharp.

    Down-sampling by f with area averaging (a box of width f, variance f^2 / 12) and bilinear
    up-sampling back (a triangle of half-width f, variance f^2 / 6) blur like a Gaussian of
    variance f^2 / 4, less the 1/4 that f = 1 (no change) would count; variances add.
    """
    f = np.asarray(downup_factor, float)
    return np.sqrt(np.asarray(blur_sigma, float) ** 2 + (f**2 - 1.0) / 4.0)


def true_quality(blur_sigma, downup_factor, occlusion, noise_sigma, jpeg_quality) -> np.ndarray:
    """Ground-truth quality in (0, 1], higher = better (module docstring gives the formula).

    Arguments are scalars or arrays: blur sigma (px, >= 0), down-up factor (>= 1), occlusion
    (``none``, ``eyes`` or ``mouth``), noise sigma (0..255 grey levels, >= 0) and JPEG quality
    (1..100); 1.0 means undegraded.
    """
    f = np.asarray(downup_factor, float)
    sigma = np.sqrt(np.asarray(blur_sigma, float) ** 2 + _DOWNUP_WEIGHT * (f**2 - 1.0) / 4.0)
    q_res = 1.0 / (1.0 + (sigma / _RES_HALF_SIGMA) ** _RES_STEEPNESS)
    kinds = np.asarray(occlusion, dtype=object)
    if not np.isin(kinds, OCCLUSIONS).all():
        raise ValueError(f"occlusion must be one of {', '.join(OCCLUSIONS)}")
    q_occ = np.vectorize(_OCCLUSION_RETAINED.__getitem__, otypes=[float])(kinds)
    q_noise = 1.0 / (1.0 + (np.asarray(noise_sigma, float) / _NOISE_HALF_SIGMA) ** 2)
    q_jpeg = 1.0 / (1.0 + ((100.0 - np.asarray(jpeg_quality, float)) / _JPEG_HALF_LOSS) ** 2)
    return q_res * q_occ * q_noise * q_jpeg


_SKIN_DARK_BGR = np.array([45.0, 65.0, 100.0])
_SKIN_LIGHT_BGR = np.array([175.0, 200.0, 238.0])
_HAIR_DARK_BGR = np.array([15.0, 18.0, 22.0])
_HAIR_LIGHT_BGR = np.array([110.0, 175.0, 215.0])
_MARKS = (4, 10)  # moles per identity: at least 4, fewer than 10
_WRINKLES = 4  # forehead lines per identity: 0..3


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def identity_traits(seed: int, label: int) -> dict:
    """The fixed appearance of identity ``label`` under generator ``seed`` (what
    :func:`render_identity_image` draws): shape and fine detail (moles, wrinkles, brows,
    nostrils, lips); skin and hair tone too, but each image's colour cast swamps them."""
    rng = np.random.default_rng([seed, label, 0])
    skin = _lerp(_SKIN_DARK_BGR, _SKIN_LIGHT_BGR, rng.uniform()) + rng.normal(0, 6, 3)
    hair = _lerp(_HAIR_DARK_BGR, _HAIR_LIGHT_BGR, rng.uniform() ** 2) + rng.normal(0, 8, 3)
    n_marks = int(rng.integers(*_MARKS))
    # moles: position on the unit face disc, radius (px), darkness (multiplies the skin)
    angle, radius = rng.uniform(0, 2 * math.pi, n_marks), np.sqrt(rng.uniform(0.05, 0.8, n_marks))
    return {
        "skin": skin,
        "hair": np.clip(hair, 0, 255),
        "face_w": rng.uniform(34, 44),
        "face_h": rng.uniform(46, 58),
        "jaw": rng.uniform(0.75, 1.0),  # chin narrowing
        "hair_style": int(rng.integers(0, 4)),  # 0 short, 1 fringe, 2 long, 3 bald
        "hair_volume": rng.uniform(2, 12),
        "eye_dx": rng.uniform(15, 21),
        "eye_y": rng.uniform(-3, 3),
        "eye_w": rng.uniform(4.5, 8.0),
        "eye_h": rng.uniform(2.0, 4.0),
        "eye_tilt": rng.uniform(-10, 10),  # degrees, outer corner up for positive
        "iris": np.array([rng.uniform(20, 160), rng.uniform(30, 140), rng.uniform(10, 120)]),
        "brow_dy": rng.uniform(6, 11),
        "brow_tilt": rng.uniform(-3, 3),
        "brow_arch": rng.uniform(-1.0, 3.0),
        "brow_thick": rng.uniform(1.0, 3.0),
        "nose_len": rng.uniform(12, 22),
        "nose_w": rng.uniform(4, 9),
        "nostril_dx": rng.uniform(1.5, 4.0),
        "mouth_y": rng.uniform(36, 44),
        "mouth_w": rng.uniform(10, 17),
        "mouth_curve": rng.uniform(-4, 5),
        "lip_thick": rng.uniform(1.0, 3.0),
        "lip": np.array([rng.uniform(60, 140), rng.uniform(60, 120), rng.uniform(120, 200)]),
        "marks": np.column_stack(
            [
                radius * np.cos(angle),
                radius * np.sin(angle),
                rng.uniform(1.0, 2.0, n_marks),
                rng.uniform(0.35, 0.65, n_marks),
            ]
        ),
        "wrinkles": rng.uniform(4, 14, int(rng.integers(0, _WRINKLES))),  # px above the brows
        "glasses": bool(rng.random() < 0.2),
        "beard": bool(rng.random() < 0.2),
    }


_CX, _CY = 56.0, 62.0  # centre of the face on the 112-px template
_SHIFT = 4  # fractional bits of the fixed-point coordinates given to cv2 (see _pt)


def _pt(x: float, y: float) -> tuple[int, int]:
    """Canvas point in fixed-point coordinates (cv2 shift=4) from 112-scale coordinates."""
    scale = _SUPERSAMPLE * 16
    return int(round(x * scale)), int(round(y * scale))


def _len(v: float) -> int:
    return max(1, int(round(v * _SUPERSAMPLE * 16)))


def _col(c, g: float = 1.0) -> tuple[float, ...]:
    """A BGR colour for OpenCV: ``c`` scaled by ``g`` and clipped to [0, 255]."""
    return tuple(float(v) for v in np.clip(c * g, 0, 255))


def _draw_face(canvas: np.ndarray, t: dict, look: dict) -> None:
    """Draw identity ``t`` as seen in one image (``look``: yaw, expression, occluder) on
    ``canvas`` (2x supersampled), centred on the template."""
    fx = _CX + look["yaw"] * 0.6  # inner features shift with yaw; the outline moves less
    _draw_head(canvas, t, look["yaw"], fx)
    _draw_skin_detail(canvas, t, fx)
    _draw_hair_on_top(canvas, t, look["yaw"], fx)
    eye_y = 52.0 + t["eye_y"]
    _draw_eyes(canvas, t, look, fx, eye_y)
    _draw_nose_and_mouth(canvas, t, look, fx, eye_y)
    _draw_occluder(canvas, t, look, fx, eye_y)


def _draw_head(canvas: np.ndarray, t: dict, yaw: float, fx: float) -> None:
    """Hair behind the head (style 2), neck, head, jaw and beard."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    cx, cy = _CX, _CY
    if t["hair_style"] == 2:
        axes = (_len(t["face_w"] + 8), _len(t["face_h"] + 8))
        cv2.ellipse(canvas, _pt(cx, cy - 4), axes, 0, 0, 360, col(t["hair"]), -1, aa, sh)
    neck = (_pt(cx - 12, cy + 30), _pt(cx + 12, 112))
    cv2.rectangle(canvas, *neck, col(t["skin"], 0.85), -1, aa, sh)
    head = _pt(cx + yaw * 0.2, cy)
    axes = (_len(t["face_w"]), _len(t["face_h"]))
    cv2.ellipse(canvas, head, axes, 0, 0, 360, col(t["skin"]), -1, aa, sh)
    jaw_w = t["face_w"] * t["jaw"]
    jaw = (_len(jaw_w), _len(t["face_h"] * 0.85))
    cv2.ellipse(canvas, _pt(cx + yaw * 0.2, cy + 10), jaw, 0, 0, 180, col(t["skin"]), -1, aa, sh)
    if t["beard"]:
        beard = (_len(jaw_w * 0.8), _len(14))
        cv2.ellipse(canvas, _pt(fx, cy + 26), beard, 0, 0, 180, col(t["hair"]), -1, aa, sh)


def _draw_skin_detail(canvas: np.ndarray, t: dict, fx: float) -> None:
    """Fine detail that blur and low resolution erase: moles and forehead wrinkles."""
    aa, sh = cv2.LINE_AA, _SHIFT
    for u, v, radius, dark in t["marks"]:
        centre = _pt(fx + u * t["face_w"] * 0.8, _CY + v * t["face_h"] * 0.8)
        cv2.circle(canvas, centre, _len(radius), _col(t["skin"], dark), -1, aa, sh)
    brow_y = 52.0 + t["eye_y"] - t["brow_dy"]
    for above in t["wrinkles"]:
        xs = np.linspace(-0.5, 0.5, 7) * t["face_w"]
        line = np.array([_pt(fx + x, brow_y - above + 0.01 * x * x) for x in xs], np.int32)
        cv2.polylines(canvas, [line], False, _col(t["skin"], 0.72), _SUPERSAMPLE, aa, sh)


def _draw_hair_on_top(canvas: np.ndarray, t: dict, yaw: float, fx: float) -> None:
    """The hair over the forehead (none for hair style 3, a fringe for style 1)."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    if t["hair_style"] == 3:
        return
    top = _CY - t["face_h"] + 4
    axes = (_len(t["face_w"] + 2), _len(10 + t["hair_volume"]))
    cv2.ellipse(
        canvas, _pt(_CX + yaw * 0.2, top + 8), axes, 0, 180, 360, col(t["hair"]), -1, aa, sh
    )
    if t["hair_style"] == 1:
        fringe = (_len(18), _len(8))
        cv2.ellipse(canvas, _pt(fx - 8, top + 12), fringe, -15, 0, 180, col(t["hair"]), -1, aa, sh)


def _draw_eyes(canvas: np.ndarray, t: dict, look: dict, fx: float, eye_y: float) -> None:
    """Eyes (tilted, as open as ``look`` says), irises, arched brows and glasses, both sides."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    eye_h = t["eye_h"] * look["eye_open"]
    for side in (-1, 1):
        ex = fx + side * t["eye_dx"]
        eye = (_len(t["eye_w"]), _len(eye_h))
        cv2.ellipse(
            canvas, _pt(ex, eye_y), eye, -side * t["eye_tilt"], 0, 360, (245,) * 3, -1, aa, sh
        )
        iris = _pt(ex + look["yaw"] * 0.1, eye_y)
        cv2.circle(canvas, iris, _len(eye_h * 0.9), col(t["iris"]), -1, aa, sh)
        cv2.circle(canvas, iris, _len(eye_h * 0.4), (15, 15, 15), -1, aa, sh)
        s = np.linspace(-1, 1, 7)
        brow_x = ex + s * (t["eye_w"] + 1)
        brow_y = (
            eye_y - t["brow_dy"] - side * s * t["brow_tilt"] * 0.5 - t["brow_arch"] * (1 - s**2)
        )
        brow = np.array([_pt(x, y) for x, y in zip(brow_x, brow_y, strict=True)], np.int32)
        cv2.polylines(
            canvas, [brow], False, col(t["hair"], 0.8), _len(t["brow_thick"]) // 16, aa, sh
        )
        if t["glasses"]:
            rim = (_len(t["eye_w"] + 3.5), _len(t["eye_h"] + 3.5))
            cv2.ellipse(canvas, _pt(ex, eye_y), rim, 0, 0, 360, (30, 30, 30), _SUPERSAMPLE, aa, sh)


def _draw_nose_and_mouth(canvas: np.ndarray, t: dict, look: dict, fx: float, eye_y: float) -> None:
    """The nose (a filled triangle with nostrils) and the mouth (a curved line; ``look`` adds
    the image's smile)."""
    aa, sh, col = cv2.LINE_AA, _SHIFT, _col
    nose_top, nose_bot = eye_y + 4, eye_y + t["nose_len"]
    pts = np.array(
        [_pt(fx, nose_top), _pt(fx - t["nose_w"], nose_bot), _pt(fx + t["nose_w"], nose_bot)],
        np.int32,
    )
    cv2.fillConvexPoly(canvas, pts, col(t["skin"], 0.78), aa, sh)
    for side in (-1, 1):
        nostril = _pt(fx + side * t["nostril_dx"], nose_bot - 1.2)
        cv2.circle(canvas, nostril, _len(0.9), col(t["skin"], 0.4), -1, aa, sh)
    my = eye_y + t["mouth_y"]
    curve = t["mouth_curve"] + look["smile"]
    mouth = np.array(
        [
            _pt(fx + x, my + curve * (1 - (x / t["mouth_w"]) ** 2))
            for x in np.linspace(-t["mouth_w"], t["mouth_w"], 9)
        ],
        np.int32,
    )
    width = max(1, int(round(t["lip_thick"] * _SUPERSAMPLE)))
    cv2.polylines(canvas, [mouth], False, col(t["lip"]), width, aa, sh)


def _draw_occluder(canvas: np.ndarray, t: dict, look: dict, fx: float, eye_y: float) -> None:
    """The image's occlusion: sunglasses over the eyes or a mask over nose, mouth and chin."""
    aa, sh, colour = cv2.LINE_AA, _SHIFT, _col(look["occluder_bgr"])
    if look["occlusion"] == "eyes":
        for side in (-1, 1):
            lens = (_len(t["eye_w"] + 6.0), _len(t["eye_h"] + 6.0))
            cv2.ellipse(
                canvas, _pt(fx + side * t["eye_dx"], eye_y), lens, 0, 0, 360, colour, -1, aa, sh
            )
        bridge = (_pt(fx - t["eye_dx"], eye_y - 2), _pt(fx + t["eye_dx"], eye_y - 2))
        cv2.line(canvas, *bridge, colour, 2 * _SUPERSAMPLE, aa, sh)
    elif look["occlusion"] == "mouth":
        top = eye_y + 0.55 * t["nose_len"]
        axes = (_len(t["face_w"] * 0.95), _len(_CY + t["face_h"] * 0.9 - top))
        cv2.ellipse(canvas, _pt(fx, top), axes, 0, 0, 180, colour, -1, aa, sh)
        band = (_pt(fx - t["face_w"] * 0.95, top - 1), _pt(fx + t["face_w"] * 0.95, top + 2))
        cv2.rectangle(canvas, *band, colour, -1, aa, sh)


def _look(rng: np.random.Generator, occlusion: str) -> dict:
    """Per-image appearance of a face: yaw, expression and the occluder's colour (sunglasses
    dark, masks light or dark). The draws are the same for every ``occlusion``, so the rest of
    the image does not depend on it."""
    look = {"yaw": rng.uniform(-4, 4), "smile": rng.normal(0, 1.5)}
    look["eye_open"] = rng.uniform(0.75, 1.1)
    light_mask, dark, light = rng.random() < 0.5, rng.uniform(10, 70, 3), rng.uniform(150, 250, 3)
    look["occluder_bgr"] = light if occlusion == "mouth" and light_mask else dark
    look["occlusion"] = occlusion
    return look


def render_identity_image(
    traits: dict, rng: np.random.Generator, occlusion: str = "none"
) -> np.ndarray:
    """One 112x112 BGR uint8 image of an identity with random nuisance and ``occlusion``
    (``none``, ``eyes`` or ``mouth``); blur, resolution, noise and JPEG come later."""
    bg = rng.uniform(30, 230, size=3)
    canvas = np.empty((_CANVAS_PX, _CANVAS_PX, 3), np.uint8)
    canvas[:] = np.clip(bg, 0, 255).astype(np.uint8)
    for _ in range(3):  # a soft background texture: a few random blobs
        c = tuple(float(v) for v in np.clip(bg + rng.normal(0, 25, 3), 0, 255))
        centre = tuple(int(v) for v in rng.integers(0, _CANVAS_PX, 2))
        cv2.circle(canvas, centre, int(rng.integers(20, 70)), c, -1, cv2.LINE_AA)
    _draw_face(canvas, traits, _look(rng, occlusion))
    image = cv2.resize(canvas, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=cv2.INTER_AREA)
    # pose and scale: similarity warp about the template centre
    angle, scale = rng.uniform(-4, 4), rng.uniform(0.96, 1.04)
    m = cv2.getRotationMatrix2D((56.0, 60.0), angle, scale)
    m[:, 2] += rng.uniform(-1.5, 1.5, 2)
    image = cv2.warpAffine(
        image,
        m,
        (IMAGE_SIZE_PX, IMAGE_SIZE_PX),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT101,
    )
    return _light(image, rng)


def _light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-image illumination and colour: gain, a linear gradient, a white-balance cast per
    channel and, for some images, grey scale; strong enough that colour does not identify."""
    gain = rng.uniform(0.55, 1.3)
    cast = np.exp(rng.normal(0.0, _CAST_SIGMA, 3)).astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:IMAGE_SIZE_PX, 0:IMAGE_SIZE_PX].astype(np.float32) / IMAGE_SIZE_PX - 0.5
    ramp = 1.0 + rng.uniform(0.0, 0.6) * (np.cos(direction) * xx + np.sin(direction) * yy)
    lit = image.astype(np.float32) * (gain * ramp)[..., None] * cast
    out = np.clip(np.rint(lit), 0, 255).astype(np.uint8)
    if rng.random() < _P_GREY:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    return out


def _draw_degradation(rng: np.random.Generator) -> dict:
    """One image's degradation, independent of its identity and class size (module docstring)."""
    clean = {k: rng.random() < p for k, p in _P_CLEAN.items()}
    # blur and resolution: log-uniform, so mild levels are common and the severe tail is real
    blur = math.exp(rng.uniform(*np.log(_BLUR_RANGE)))
    small = int(round(IMAGE_SIZE_PX / math.exp(rng.uniform(*np.log(_DOWNUP_RANGE)))))
    return {
        "blur_sigma": 0.0 if clean["blur"] else blur,
        # the factor actually applied: 112 px over the whole-pixel side it is sampled down to
        "downup_factor": 1.0 if clean["downup"] else IMAGE_SIZE_PX / small,
        "occlusion": "none" if clean["occlusion"] else OCCLUSIONS[1 + int(rng.integers(0, 2))],
        "noise_sigma": 0.0 if clean["noise"] else float(rng.uniform(2.0, 25.0)),
        "jpeg_quality": 100 if clean["jpeg"] else int(rng.integers(10, 91)),
    }


def degrade(image: np.ndarray, rng: np.random.Generator, d: dict) -> np.ndarray:
    """Apply blur, down-up sampling and noise of ``d`` (JPEG happens when the file is encoded;
    the occlusion when the face is drawn).

    ``image``: 112x112 BGR uint8; ``d``: the degradation columns (units in the module docstring).
    Returns a new uint8 image of the same shape; ``rng`` draws the noise.
    """
    out = image
    if d["blur_sigma"] > 0:
        out = cv2.GaussianBlur(out, (0, 0), d["blur_sigma"], borderType=cv2.BORDER_REFLECT101)
    if d["downup_factor"] > 1:
        small = max(1, int(round(IMAGE_SIZE_PX / d["downup_factor"])))
        out = cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(out, (IMAGE_SIZE_PX, IMAGE_SIZE_PX), interpolation=cv2.INTER_LINEAR)
    if d["noise_sigma"] > 0:
        noisy = out.astype(np.float32) + rng.normal(0.0, d["noise_sigma"], out.shape).astype(
            np.float32
        )
        out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return out


def _encode(image: np.ndarray, jpeg_quality: int, image_format: str) -> tuple[bytes, str]:
    """Encode to the file format; a JPEG degradation always gives a JPEG file."""
    if jpeg_quality < 100 or image_format == "jpg":
        quality = jpeg_quality if jpeg_quality < 100 else _SAVE_JPEG_QUALITY
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        ext = "jpg"
    else:
        ok, buf = cv2.imencode(".png", image)
        ext = "png"
    if not ok:
        raise RuntimeError("OpenCV failed to encode a demo image")
    return buf.tobytes(), ext


def image_file(
    seed: int, label: int, index: int, traits: dict, image_format: str
) -> tuple[bytes, str, dict]:
    """Image ``index`` of identity ``label`` (``traits = identity_traits(seed, label)``): the
    encoded file, its extension and its degradation columns. Its own random stream makes it the
    same whichever images are made before it, so other tools (benchmarks/scale.py) make the same
    images in parallel."""
    rng = np.random.default_rng([seed, label, 1, index])
    d = _draw_degradation(rng)
    image = degrade(render_identity_image(traits, rng, d["occlusion"]), rng, d)
    data, ext = _encode(image, d["jpeg_quality"], image_format)
    return data, ext, d


def generate(params: DemoParams, image_dir: str | Path) -> pd.DataFrame:
    """Write the demo images under ``image_dir/<class_name>/`` and return their table.

    Returns one row per image with ``path`` (as ``image_dir`` was given, joined with the file
    name), ``label``, ``class_name``, the four degradation columns, ``true_quality`` and
    ``split``. Identity ``label`` gets ``class_sizes(params)[label]`` training images (``split``
    ``train``, files 0000..n-1) and then ``params.holdout`` held-out images (``holdout``, files
    n..n+holdout-1) drawn the same way; the demo model never trains on them. The held-out images
    are extra: the training images, and so the class sizes, are the same for any ``holdout``.
    """
    image_dir = Path(image_dir)
    sizes = class_sizes(params)
    rows = []
    for label, n_images in enumerate(sizes):
        class_name = f"id{label:05d}"
        traits = identity_traits(params.seed, label)
        (image_dir / class_name).mkdir(parents=True, exist_ok=True)
        for i in range(int(n_images) + params.holdout):
            data, ext, d = image_file(params.seed, label, i, traits, params.image_format)
            path = image_dir / class_name / f"{i:04d}.{ext}"
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            rows.append(
                {
                    "path": str(path),
                    "label": label,
                    "class_name": class_name,
                    **d,
                    "split": SPLITS[0] if i < n_images else SPLITS[1],
                }
            )
        if label % 50 == 0:
            logger.info("demo: identity %d/%d (%d images so far)", label, len(sizes), len(rows))
    table = pd.DataFrame(rows)
    table["true_quality"] = true_quality(*(table[c] for c in DEGRADATION_COLUMNS))
    table["occlusion"] = table["occlusion"].astype("string")
    split = table.pop("split")
    table["split"] = split.astype("string")
    return table
